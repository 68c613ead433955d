"""`facegate bench photos`: the photo organiser on LFW against the true identities, and the OpenCV Zoo peer.

The set: every LFW person with >= MIN_PHOTOS photos plus DISTRACTORS one-photo people (fixed seed). Each
photo's labelled face is the face nearest its centre (LFW's rule); other faces in the photo (people in
the background) are clustered like any other but not scored. A labelled face the quality gate sends to
"unsorted" counts as a person of its own (it costs recall), and the fraction sorted is reported.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from ..face import Face, nearest_to_center
from .clustering_metrics import clustering_scores, dbscan_cosine, noise_as_singletons

MIN_PHOTOS = 10
DISTRACTORS = 1000
SEED = 0


def bench_photos(lfw_dir: str | Path, min_photos: int = MIN_PHOTOS, distractors: int = DISTRACTORS,
                 seed: int = SEED) -> tuple[list[str], list[str], list[str]]:
    """(photo paths, their true person, distractor names): every photo of each person with >= min_photos
    photos, and one photo each of `distractors` people drawn (seeded) from the one-photo people."""
    lfw = Path(lfw_dir).resolve()
    people = {d.name: sorted(str(f) for f in d.iterdir() if f.suffix.lower() == ".jpg")
              for d in sorted(lfw.iterdir()) if d.is_dir()}
    many = [n for n, ps in people.items() if len(ps) >= min_photos]
    ones = [n for n, ps in people.items() if len(ps) == 1]
    chosen = sorted(random.Random(seed).sample(ones, min(distractors, len(ones))))
    paths, labels = [], []
    for n in many + chosen:
        paths += people[n]
        labels += [n] * len(people[n])
    return paths, labels, chosen


def labelled_faces(boxes: list[np.ndarray], shape: tuple[int, int]) -> int | None:
    """Index of the face nearest the photo's centre (boxes: float32 (4,) each; shape: (H, W)), or None."""
    faces = [Face(b, np.zeros((5, 2), np.float32), 1.0) for b in boxes]
    best = nearest_to_center(faces, shape[1], shape[0])
    return None if best is None else next(i for i, f in enumerate(faces) if f is best)


def peer_embeddings(peer, paths: list[str], progress=None) -> tuple[np.ndarray, np.ndarray, float]:
    """The peer's embedding of each photo's central face: (float32 (N, 128), bool found (N,), photos/s)."""
    from ..imageio import load_image

    out, found = np.zeros((len(paths), 128), np.float32), np.zeros(len(paths), bool)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        img = load_image(p)
        f = nearest_to_center(peer.detect(img), img.shape[1], img.shape[0])
        if f is not None:
            out[i], found[i] = peer.embed(peer.align(img, f))[0], True
        if progress is not None:
            progress(i + 1, len(paths), p)
    return out, found, len(paths) / (time.perf_counter() - t0)


def labelled_face_ids(db, paths: list[str]) -> dict[str, int | None]:
    """{photo path: id of its face nearest the centre (any quality), None without a face}."""
    rows = db.read("SELECT ph.path, ph.width, ph.height, f.id, f.box FROM photos ph LEFT JOIN faces f "
                   "ON f.photo_id = ph.id ORDER BY ph.path, f.idx")
    by: dict[str, list] = {}
    for path, w, h, fid, box in rows:
        entry = by.setdefault(path, [(h, w), [], []])
        if fid is not None:
            entry[1].append(fid)
            entry[2].append(np.frombuffer(box, "<f4"))
    out = {}
    for p in paths:
        shape, ids, boxes = by.get(p, ((0, 0), [], []))
        i = labelled_faces(boxes, shape) if ids else None
        out[p] = None if i is None else ids[i]
    return out


def score_labels(truth: list[str], face_of_photo: list[int | None], label_of_face: dict[int, int]) -> dict:
    """Clustering scores over the bench photos: a photo whose labelled face is missing or unsorted counts as a
    person of its own. Adds `sorted_fraction` (photos whose labelled face is in a person) and the same scores
    over those photos only (`sorted_faces_only`: the clustering's own decisions, the quality gate aside)."""
    found = np.empty(len(truth), np.int64)
    nxt = max(label_of_face.values(), default=0) + 1
    for i, fid in enumerate(face_of_photo):
        if fid is not None and fid in label_of_face:
            found[i] = label_of_face[fid]
        else:
            found[i], nxt = nxt, nxt + 1
    done = np.array([f is not None and f in label_of_face for f in face_of_photo])
    _, t = np.unique(np.asarray(truth), return_inverse=True)
    out = clustering_scores(t, found)
    out["sorted_fraction"] = float(done.mean())
    out["sorted_faces_only"] = clustering_scores(t[done], found[done])
    return out


def moved(threshold: float, fraction: float) -> float:
    """The threshold moved by `fraction` of its size (-0.1: 10% lower, looser; +0.1: 10% higher, stricter)."""
    return threshold + fraction * abs(threshold)


def cluster_at(db, bundle_id: str, metric, threshold: float) -> tuple[dict[int, int], float]:
    """Every usable face clustered from scratch: ({face id: label}, seconds)."""
    from ..photos.cluster import average_linkage

    t = db.usable_faces(bundle_id)
    t0 = time.perf_counter()
    labels = average_linkage(t.embeddings, t.photo_ids, np.full(len(t.face_ids), -1), metric, threshold)
    return dict(zip(t.face_ids.tolist(), labels.tolist())), time.perf_counter() - t0


def ours(db, bundle_id: str, metric, threshold: float, truth: list[str], faces: list[int | None]) -> dict:
    """Our clustering at the threshold and at -10% / +10% of it."""
    out = {}
    for name, frac in (("at_threshold", 0.0), ("minus_10pct", -0.1), ("plus_10pct", 0.1)):
        t = moved(threshold, frac)
        labels, secs = cluster_at(db, bundle_id, metric, t)
        out[name] = {"threshold": t, "cluster_s": round(secs, 2), **score_labels(truth, faces, labels)}
    return out


def peer_scores(emb: np.ndarray, found: np.ndarray, truth: list[str], eps: float = 0.5) -> dict:
    """The peer's DBSCAN at eps and -10% / +10% of it (noise and missed faces = people of their own)."""
    _, t = np.unique(np.asarray(truth), return_inverse=True)
    out = {}
    for name, e in (("at_threshold", eps), ("eps_minus_10pct", eps * 0.9), ("eps_plus_10pct", eps * 1.1)):
        labels = np.full(len(truth), -1, np.int64)
        labels[found] = dbscan_cosine(emb[found], e)
        s = clustering_scores(t, noise_as_singletons(labels))
        s["sorted_fraction"] = float(np.mean(labels >= 0))
        out[name] = {"eps": e, **s}
    return out


def library_name(bundle_id: str, config) -> str:
    """File name of the bench's scanned library: keyed on the bundle id and the photo gate, so a new bundle or
    gate gets a library of its own (embeddings of different bundles or gates are never mixed)."""
    import dataclasses
    import hashlib

    from ..photos.scan import photo_gate

    key = f"{bundle_id}|{sorted(dataclasses.asdict(photo_gate(config)).items())}"
    return f"photos_{hashlib.sha256(key.encode()).hexdigest()[:16]}.db"


def vm_hwm_mb() -> float:
    """Peak resident memory of this process so far, MB: VmHWM of /proc/self/status (ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    from .speed import peak_rss_mb
    return peak_rss_mb()


def _vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scan_speed(bundle_path, threads: int, paths: list[str], work: str, checkpoints: int = 0) -> dict:
    """Scan `paths` into a fresh library in this (fresh) process: photos/s and the peak RSS (VmHWM, MB); with
    `checkpoints`, also the RSS (MB) after each of that many equal parts of the scan (flat = no leak)."""
    import tempfile

    from ..config import Config
    from ..enrollment import open_bundle
    from ..photos.db import PhotoDB
    from ..photos.scan import scan
    from ..recognizer import Recognizer
    from ..sessions import share_thread_pool

    share_thread_pool(threads)
    cfg = Config()
    rec = Recognizer(open_bundle(cfg, bundle_path, threads), cfg)
    every = max(1, len(paths) // checkpoints) if checkpoints else 0
    rss: list[tuple[int, float]] = []

    def progress(done: int, total: int, path: str) -> None:
        if every and (done % every == 0 or done == total):
            rss.append((done, round(_vm_rss_mb(), 1)))

    with tempfile.TemporaryDirectory(dir=work) as tmp, PhotoDB(Path(tmp) / "photos.db") as db:
        t0 = time.perf_counter()
        scan(db, rec, paths, progress)
        secs = time.perf_counter() - t0
    return {"photos": len(paths), "threads": threads, "photos_per_s": len(paths) / secs,
            "peak_rss_mb": vm_hwm_mb(), "rss_mb_after_photos": rss}


def peer_speed(threads: int, paths: list[str]) -> dict:
    """The peer's rate on `paths` in this (fresh) process: photos/s and peak RSS (VmHWM, MB)."""
    from .peers import OpenCVZooPeer

    _, _, rate = peer_embeddings(OpenCVZooPeer(threads=threads), paths)
    return {"photos": len(paths), "threads": threads, "photos_per_s": rate, "peak_rss_mb": vm_hwm_mb()}


def speed_sample(paths: list[str], n: int) -> list[str]:
    """`n` photos spread evenly over `paths` (all of them when n >= len(paths))."""
    return paths[:: max(1, len(paths) // n)][:n] if n < len(paths) else list(paths)


def peer_run(paths: list[str], truth: list[str], work: Path, threads: int, progress=None) -> dict:
    """OpenCV Zoo's YuNet + SFace on the same photos (embeddings cached in `work`), DBSCAN eps 0.5."""
    import hashlib

    from .peers import OpenCVZooPeer

    key = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    cache = work / f"peer_{key}.npz"
    if cache.is_file():
        z = np.load(cache)
        emb, found = z["emb"], z["found"]
    else:
        emb, found, rate = peer_embeddings(OpenCVZooPeer(threads=threads), paths, progress)
        np.savez(cache, emb=emb, found=found, rate=rate)
    return peer_scores(emb, found, truth)


def name_people(db, truth_of: dict[str, str]) -> dict[int, str]:
    """Name every person after the true identity most of its faces' photos have (as a user would); the same
    name twice gets ' 2', ' 3'. Returns {person id: name}."""
    from collections import Counter

    from ..photos.people import name_person

    votes: dict[int, Counter] = {}
    for pid, path in db.read("SELECT f.person_id, ph.path FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                             "WHERE f.person_id IS NOT NULL"):
        if path in truth_of:
            votes.setdefault(pid, Counter())[truth_of[path]] += 1
    used: Counter = Counter()
    out = {}
    for pid in sorted(votes):
        label = votes[pid].most_common(1)[0][0].replace("_", " ")
        used[label] += 1
        out[pid] = label if used[label] == 1 else f"{label} {used[label]}"
        name_person(db, pid, out[pid])
    return out


def incremental_check(db, recognizer, threshold: float, people_paths: list[str], truth_of: dict[str, str],
                      distractor_paths: list[str]) -> dict:
    """Scan and sort `people_paths`, name every person found, then scan and sort `distractor_paths`: which
    named people changed id or name, and how many distractor photos' faces joined a named person."""
    from ..photos.organize import organize
    from ..photos.scan import scan

    scan(db, recognizer, people_paths)
    organize(db, recognizer.bundle.id, recognizer.metric, threshold)
    named = name_people(db, truth_of)
    scan(db, recognizer, distractor_paths)
    organize(db, recognizer.bundle.id, recognizer.metric, threshold)
    after = dict(db.read("SELECT id, name FROM people WHERE name_source = 'user'"))
    changed = sorted(pid for pid, name in named.items() if after.get(pid) != name)
    joined = db.read("SELECT count(DISTINCT ph.id) FROM faces f JOIN photos ph ON ph.id = f.photo_id WHERE "
                     f"f.person_id IN ({','.join(map(str, named)) or 'NULL'}) AND ph.path IN "
                     f"({','.join('?' * len(distractor_paths)) or 'NULL'})", distractor_paths)[0][0]
    return {"named": len(named), "changed": changed, "distractor_photos_joining_named": joined,
            "distractor_photos": len(distractor_paths)}


def fresh_copy(src: Path, dest: Path, keep: list[str]):
    """A copy of the library `src` at `dest` holding only the photos `keep`, every face unsorted and no people
    (as if only those photos had been scanned): an open PhotoDB."""
    import sqlite3

    from ..photos.db import PhotoDB

    for suffix in ("", "-wal", "-shm"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)
    a.close()
    b.close()
    db = PhotoDB(dest)
    keep_set = set(keep)
    db.drop_photos([pid for path, pid in db.read("SELECT path, id FROM photos") if path not in keep_set])
    with db.write("reset the bench library") as c:
        c.execute("UPDATE faces SET person_id = NULL, pinned = 0")
        c.execute("DELETE FROM people")
    return db


def run_bench(args, progress_display) -> dict:
    """The whole bench (see the module docstring); prints the Markdown report and returns the JSON one."""
    from ..config import Config
    from ..enrollment import open_bundle
    from ..paths import data_dir
    from ..photos.cluster import linkage_threshold
    from ..recognizer import Recognizer

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    paths, truth, distractors = bench_photos(data_dir() / "lfw")
    cfg = Config()
    rec = Recognizer(open_bundle(cfg, args.bundle, args.threads), cfg)
    threshold = args.threshold if args.threshold is not None else \
        linkage_threshold(rec.bundle.score_model, args.false_merge_rate)
    library = work / library_name(rec.bundle.id, cfg)
    report = {"bundle": rec.bundle.id, "false_merge_rate": None if args.threshold is not None else args.false_merge_rate,
              "photos": len(paths), "people": len(set(truth)), "min_photos": MIN_PHOTOS, "distractors": len(distractors),
              "seed": SEED, "gate": dataclasses_dict(cfg.photos),
              "ours": _ours_on_library(library, rec, threshold, paths, truth, progress_display)}
    report["incremental"] = _incremental_step(library, work, rec, threshold, paths, truth, set(distractors))
    report.update(_speed_steps(args, paths, work, data_dir() / "lfw"))
    report["bench_peak_rss_mb"] = vm_hwm_mb()
    report["people_used"], report["distractors_used"] = sorted(set(truth) - set(distractors)), distractors
    if not args.no_peer:
        update, close = progress_display()
        report["peer"] = peer_run(paths, truth, work, 2, update)
        close()
    md = markdown(report)
    print(md)
    if getattr(args, "markdown", None):
        Path(args.markdown).write_text(md)
    return report


def dataclasses_dict(section) -> dict:
    """A config section as a plain dict (for the report)."""
    import dataclasses
    return dataclasses.asdict(section)


def _ours_on_library(library: Path, rec, threshold: float, paths, truth, progress_display) -> dict:
    """Scan the bench photos into `library` (kept: a second run reads nothing) and score our clustering."""
    from ..photos.db import PhotoDB
    from ..photos.scan import scan

    with PhotoDB(library) as db:
        update, close = progress_display()
        scan(db, rec, paths, update)
        close()
        faces = labelled_face_ids(db, paths)
        return ours(db, rec.bundle.id, rec.metric, threshold, truth, [faces[p] for p in paths])


def _incremental_step(library: Path, work: Path, rec, threshold: float, paths, truth, distractors: set) -> dict:
    """The issue's incremental check on a copy of the scanned library: the people first, named, then the
    distractors added."""
    people_paths = [p for p, t in zip(paths, truth) if t not in distractors]
    extra = [p for p, t in zip(paths, truth) if t in distractors]
    with fresh_copy(library, work / "incremental.db", people_paths) as db:
        return incremental_check(db, rec, threshold, people_paths, dict(zip(paths, truth)), extra)


def _speed_steps(args, paths: list[str], work: Path, lfw: Path) -> dict:
    """Our scan and the peer's on the same photos, each in a fresh process, and our peak RSS scanning
    `--rss-photos` LFW photos (all 13,233 by default) into a fresh library."""
    from .speed import fresh_process

    sample = speed_sample(paths, args.speed_photos)
    out = {"scan": fresh_process(scan_speed, args.bundle, 2, sample, str(work))}
    if not args.no_peer:
        out["peer_scan"] = fresh_process(peer_speed, 2, sample)
        out["speed_ratio"] = out["scan"]["photos_per_s"] / out["peer_scan"]["photos_per_s"]
    if args.rss_photos:
        every = sorted(str(f) for d in sorted(lfw.iterdir()) if d.is_dir() for f in d.iterdir()
                       if f.suffix.lower() == ".jpg")
        out["rss_scan"] = fresh_process(scan_speed, args.bundle, 2, speed_sample(every, args.rss_photos),
                                        str(work), 10)
        out["rss_scan"]["lfw_photos"] = len(every)
    return out


def _row(name: str, s: dict, what: str) -> str:
    so = s["sorted_faces_only"] if "sorted_faces_only" in s else None
    extra = (f" | {so['pairwise_precision']:.4f} / {so['pairwise_recall']:.4f} / {so['pairwise_f1']:.4f}"
             if so else " | -")
    return (f"| {name} | {what} | {s['pairwise_precision']:.4f} | {s['pairwise_recall']:.4f} | {s['pairwise_f1']:.4f} "
            f"| {s['bcubed_f1']:.4f} | {s['people_found']} | {s['sorted_fraction']:.3f}{extra} |")


def markdown(r: dict) -> str:
    """The report as a Markdown page (docs/photos_benchmark.md)."""
    o, g = r["ours"], r["gate"]
    lines = [
        "# Photo organiser benchmark (`facegate bench photos`)", "",
        f"LFW: {r['people'] - r['distractors']} people with >= {r['min_photos']} photos plus {r['distractors']} "
        f"one-photo distractors (seed {r['seed']}): {r['photos']} photos, {r['people']} true people. Bundle "
        f"`{r['bundle']}`. Photo gate ([photos]): faces under {g['min_face_px']} px, sharpness under "
        f"{g['min_sharpness']:g}, brightness under {g['min_brightness']:g} or yaw ratio over {g['max_yaw_ratio']:g} "
        "stay unsorted. Each photo's labelled face is the one nearest its centre. Two ways of scoring: "
        "**all photos**, where a labelled face left unsorted (or not found) counts as a person of its own, and "
        "**sorted only**, over the photos whose labelled face was placed in a person (the clustering's own "
        "decisions).", "",
        "| method | threshold | all: pairwise P | R | F1 | BCubed F1 | people found | sorted "
        "| sorted only: P / R / F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("ours", "at_threshold"), ("ours -10%", "minus_10pct"), ("ours +10%", "plus_10pct")):
        lines.append(_row(name, o[key], f"{o[key]['threshold']:.3f} ({o[key]['cluster_s']:.1f} s)"))
    if "peer" in r:
        for name, key in (("OpenCV Zoo + DBSCAN", "at_threshold"), ("peer eps -10%", "eps_minus_10pct"),
                          ("peer eps +10%", "eps_plus_10pct")):
            lines.append(_row(name, r["peer"][key], f"eps {r['peer'][key]['eps']:.2f}"))
    lines += [""] + _speed_lines(r) + [""] + _incremental_lines(r["incremental"])
    lines += ["", "People used: " + ", ".join(r["people_used"]) + ".", "",
              "Distractors: " + ", ".join(r["distractors_used"]) + ".", ""]
    return "\n".join(lines)


def _speed_lines(r: dict) -> list[str]:
    s = r["scan"]
    out = [f"Scan, ours: {s['photos_per_s']:.1f} photos/s at {s['threads']} threads ({s['photos']} photos spread "
           f"over the set, fresh library, fresh process), peak RSS {s['peak_rss_mb']:.0f} MB."]
    if "peer_scan" in r:
        p = r["peer_scan"]
        out.append(f"Scan, peer (YuNet + SFace, central face only): {p['photos_per_s']:.1f} photos/s at "
                   f"{p['threads']} threads on the same photos in the same run (fresh process). Ours / peer: "
                   f"**{r['speed_ratio']:.2f}x**.")
    if "rss_scan" in r:
        q = r["rss_scan"]
        steps = ", ".join(f"{n}: {mb:.0f}" for n, mb in q["rss_mb_after_photos"])
        out.append(f"Peak RSS scanning {q['photos']} of the {q['lfw_photos']} LFW photos into a fresh library: "
                   f"**{q['peak_rss_mb']:.0f} MB** (VmHWM; {q['photos_per_s']:.1f} photos/s). RSS (MB) after "
                   f"N photos: {steps}.")
    out.append(f"The whole bench process peaked at {r['bench_peak_rss_mb']:.0f} MB.")
    return out


def _incremental_lines(i: dict) -> list[str]:
    verdict = "no named person changed id or name" if not i["changed"] else \
        f"**{len(i['changed'])} named people changed** (ids {i['changed']})"
    return [f"Incremental: the people's photos sorted, each person found named after the true identity of most "
            f"of its photos ({i['named']} named), then the {i['distractor_photos']} distractor photos scanned and "
            f"sorted: {verdict}; {i['distractor_photos_joining_named']} distractor photos had a face put into a "
            f"named person."]
