"""`facegate bench liveness`: presentation-attack detection measured with the ISO/IEC 30107-3 figures on what
is available here (docs/liveness_benchmark.md):

- the three upstream samples (a smoke test, not a benchmark);
- bona fide presentations: frames of the two videos in $FACEGATE_DATA/videos/ (every `frame_step`-th frame,
  the largest face of at least `min_face` px: the door's subject) and, reported separately as a stress case,
  LFW photos of evaluation people (web photos are not camera frames);
- attack presentations: synthetic re-captures (eval/attacks.py, one PAI species each) of those bona fide
  frames and photos; the face is detected again in the attack frame and scored.

The scorer is any callable `score(image_rgb uint8 (H, W, 3), face: Face) -> float` (probability of a bona fide
face), so the bench runs the PyTorch module and the bundle's liveness model alike. A face the pipeline does not
find (or finds smaller than `min_face`) is a non-response: counted, never scored (30107-3 keeps non-responses
out of APCER and BPCER).

Figures (ISO/IEC 30107-3): APCER (attack presentation classification error rate) = the proportion of attack
presentations of one PAI species classified as bona fide; BPCER (bona fide presentation classification error
rate) = the proportion of bona fide presentations classified as attacks. A presentation is classified bona fide
when its score >= the threshold.
"""
from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..detection import central_face
from ..door.liveness_fit import threshold_at_bpcer  # noqa: F401  (also this module's name for the benches)
from ..face import Face
from ..imageio import load_image
from .attacks import ATTACKS, CAMERA_RANGES, MAX_SIDE, PRINT_RANGES, SCREEN_RANGES, frame_shape, make_attack
from .lfw import fold_halves, read_pairs

Scorer = Callable[[np.ndarray, Face], float]

VIDEOS = ("face_recognition/short_hamilton_clip.mp4", "facenet_pytorch/video.mp4")
SAMPLES = (("live/image_T1.jpg", "bona fide", None), ("spoof/image_F1.jpg", "attack", "print"),
           ("spoof/image_F2.jpg", "attack", "screen"))
TARGET_BPCER = 0.05
TARGET_APCER = 0.01
EXAMPLES_PER_SPECIES = 12
EXAMPLE_STRIDE = 8        # keep the images of every 8th presentation as example candidates
ISO_NAMES = {
    "APCER": "attack presentation classification error rate: proportion of attack presentations of one PAI "
             "species classified as bona fide presentations",
    "BPCER": "bona fide presentation classification error rate: proportion of bona fide presentations "
             "classified as attack presentations",
    "bona fide presentation": "the subject's own face in front of the camera (here: video frames; LFW photos)",
    "attack presentation": "a presentation attack instrument (PAI) in front of the camera (here: synthetic "
                           "re-captures of the bona fide frames and photos)",
    "PAI species": "a class of attack instrument made the same way: print (paper) and screen (replay)",
    "non-response": "no face of at least min_face px found where the presentation is: not classified, counted "
                    "apart (30107-3 non-response rates)",
}


# ---- the people: LFW's evaluation half under the training issue's rule ----

def lfw_halves(lfw_dir: str | Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(training, evaluation) {person: sorted relpaths}: evaluation = the people who appear only in folds 6-10
    of pairs.txt; training = everyone else (folds 1-5 and people in no fold; the rule of
    models/training/quality_data.split_people "first")."""
    lfw = Path(lfw_dir)
    evaluation = fold_halves(read_pairs(lfw / "pairs.txt"))[1]
    train, ev = {}, {}
    for d in sorted(p for p in lfw.iterdir() if p.is_dir()):
        rel = sorted(f"{d.name}/{f.name}" for f in d.iterdir() if f.suffix.lower() == ".jpg")
        if rel:
            (ev if d.name in evaluation else train)[d.name] = rel
    return train, ev


def sample_photos(people: dict[str, list[str]], n: int, seed: int) -> list[str]:
    """n relpaths drawn (seeded) from all photos of `people`, at most 2 per person, sorted."""
    pool = [r for rels in people.values() for r in random.Random(seed).sample(rels, min(2, len(rels)))]
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


# ---- faces ----

def door_face(detector, image_rgb: np.ndarray, min_face: float) -> Face | None:
    """The largest detected face whose shorter box side is >= min_face px (the door's subject), or None."""
    faces = [f for f in detector.detect(image_rgb) if min(f.width, f.height) >= min_face]
    return max(faces, key=lambda f: f.width * f.height, default=None)


def attack_face(detector, image_rgb: np.ndarray, expected_xyxy: np.ndarray, min_face: float) -> Face | None:
    """The detected face of an attack frame that is the presented one: the detection whose centre is nearest
    the expected box's centre (the source face mapped through the re-capture), within half the expected box's
    size, and of at least min_face px. None otherwise (a non-response)."""
    e = np.asarray(expected_xyxy, np.float32)
    centre, size = (e[:2] + e[2:]) / 2, float(max(e[2] - e[0], e[3] - e[1]))
    best, dist = None, 0.5 * size
    for f in detector.detect(image_rgb):
        d = float(np.linalg.norm(f.center - centre))
        if d <= dist:
            best, dist = f, d
    return best if best is not None and min(best.width, best.height) >= min_face else None


def attack_seed(seed: int, source: str, species: str, k: int) -> int:
    """The seed of one attack: fixed by the bench seed, the source's name, the species and the copy index."""
    return int(np.random.SeedSequence([seed, zlib.crc32(source.encode()), zlib.crc32(species.encode()), k])
               .generate_state(1)[0])


def video_frames(path: str | Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, uint8 RGB frame) of every `step`-th frame of a video file."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open the video {path}")
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % step == 0:
                yield i, np.ascontiguousarray(frame[..., ::-1])
            i += 1
    finally:
        cap.release()


# ---- error rates ----

def rate(errors: int, total: int) -> dict:
    """{"rate", "errors", "of"} (rate None when nothing was scored)."""
    return {"rate": errors / total if total else None, "errors": int(errors), "of": int(total)}


def apcer(attack_scores, threshold: float) -> dict:
    """APCER of one PAI species: attack presentations with score >= threshold (classified bona fide)."""
    a = np.asarray(attack_scores, np.float64)
    return rate(int((a >= threshold).sum()), a.size)


def bpcer(bona_fide_scores, threshold: float) -> dict:
    """BPCER: bona fide presentations with score < threshold (classified attacks)."""
    b = np.asarray(bona_fide_scores, np.float64)
    return rate(int((b < threshold).sum()), b.size)


# ---- the bench ----

class _Collector:
    """Scores of the bona fide and attack presentations of one source kind ("video" or "lfw"), per scorer."""

    def __init__(self, species: tuple[str, ...], scorers: tuple[str, ...]):
        self.scorers = scorers
        self.bona_fide: dict[str, list[float]] = {n: [] for n in scorers}
        self.bona_fide_names: list[str] = []
        self.no_face: list[str] = []
        self.attacks = {n: {s: [] for s in species} for n in scorers}
        self.attack_names = {s: [] for s in species}
        self.attack_no_face = {s: 0 for s in species}
        self.species = species


def _present(collector: _Collector, name: str, image: np.ndarray, face: Face, detector, scorers: dict[str, Scorer],
             copies: int, seed: int, min_face: float, examples: dict) -> None:
    """Score one bona fide presentation and `copies` attacks of each species made from it; every
    EXAMPLE_STRIDE-th presentation's images are kept in `examples` (bounded memory)."""
    keep = len(collector.bona_fide_names) % EXAMPLE_STRIDE == 0
    for n, score in scorers.items():
        collector.bona_fide[n].append(float(score(image, face)))
    collector.bona_fide_names.append(name)
    for species in collector.species:
        for k in range(copies):
            att = make_attack(species, image, attack_seed(seed, name, species, k), face.box)
            f = attack_face(detector, att.image, att.map_box(face.box), min_face)
            if f is None:
                collector.attack_no_face[species] += 1
            else:
                for n, score in scorers.items():
                    collector.attacks[n][species].append(float(score(att.image, f)))
                collector.attack_names[species].append(f"{name}#{k}")
            if k == 0 and keep:
                examples.setdefault(species, []).append((name, att.image))
    if keep:
        examples.setdefault("bona_fide", []).append((name, image if max(image.shape) <= MAX_SIDE else
                                                     cv2.resize(image, frame_shape(image.shape)[::-1])))


def run_bench(data_dir: str | Path, detector, scorers: dict[str, Scorer], *, frame_step: int = 2, video_copies: int = 2,
              lfw_photos: int = 300, lfw_copies: int = 1, seed: int = 0, min_face: float = 60.0,
              species: tuple[str, ...] = tuple(ATTACKS), lfw_people: dict[str, list[str]] | None = None,
              videos: tuple[str, ...] = VIDEOS, progress: Callable[[str], None] | None = None) -> dict:
    """Score the upstream samples, the bona fide video frames and LFW photos and their synthetic attacks.

    detector: anything with detect(image_rgb) -> list[Face] (the bundle's FaceDetector).
    scorers: {name: score(image_rgb, face) -> float}; every presentation is scored by each (same images).
    lfw_people: {person: relpaths} to draw LFW photos from (default: the evaluation people, lfw_halves).
    Returns the raw scores: {"samples": [...], "video": {...}, "lfw": {...}, "settings": {...},
    "examples": {kind: [(name, uint8 image)]}, "seconds": float}; `report` turns it into figures."""
    data = Path(data_dir)
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    samples = []
    for rel, truth, pai in SAMPLES:
        path = data / "antispoof_samples" / rel
        if not path.is_file():
            continue
        img = load_image(path)
        face = central_face(detector, img)
        samples.append({"file": rel, "truth": truth, "pai_species": pai,
                        "score": {n: None if face is None else float(sc(img, face)) for n, sc in scorers.items()}})
    examples: dict = {}
    video = _Collector(species, tuple(scorers))
    for v in videos:
        path = data / "videos" / v
        if not path.is_file():
            raise FileNotFoundError(f"video {path} not found (FACEGATE_DATA)")
        for i, frame in video_frames(path, frame_step):
            face = door_face(detector, frame, min_face)
            name = f"{v}#{i}"
            if face is None:
                video.no_face.append(name)
                continue
            _present(video, name, frame, face, detector, scorers, video_copies, seed, min_face, examples)
        say(f"{v}: {len(video.bona_fide_names)} bona fide frames so far")
    lfw = _Collector(species, tuple(scorers))
    people = lfw_people if lfw_people is not None else lfw_halves(data / "lfw")[1]
    rels = sample_photos(people, lfw_photos, seed) if lfw_photos else []
    lfw_examples: dict = {}
    for j, rel in enumerate(rels):
        img = load_image(data / "lfw" / rel)
        face = central_face(detector, img)
        if face is None or min(face.width, face.height) < min_face:
            lfw.no_face.append(rel)
            continue
        _present(lfw, rel, img, face, detector, scorers, lfw_copies, seed, min_face, lfw_examples)
        if (j + 1) % 50 == 0:
            say(f"LFW: {j + 1}/{len(rels)} photos")
    for k, v in lfw_examples.items():
        examples.setdefault(k, []).extend(v)
    return {"samples": samples, "video": video, "lfw": lfw, "examples": examples,
            "people": sorted({r.split("/")[0] for r in rels}),
            "settings": {"frame_step": frame_step, "video_copies": video_copies, "lfw_photos": lfw_photos,
                         "lfw_copies": lfw_copies, "seed": seed, "min_face_px": min_face, "species": list(species),
                         "videos": list(videos), "attack_frame_max_side": MAX_SIDE},
            "seconds": time.perf_counter() - t0}


def _keep(names: list[str], skip_video: str | None) -> np.ndarray:
    """bool mask of the presentations not made from the video `skip_video` (a scorer's training video)."""
    return np.array([skip_video is None or n.split("#")[0] != skip_video for n in names], bool)


def figures(video: _Collector, lfw: _Collector, scorer: str, threshold: float | None = None,
            skip_video: str | None = None) -> dict:
    """One scorer's error rates at `threshold` (None: the one giving BPCER 5% on the kept video frames):
    BPCER on video frames and LFW photos, APCER per species from video frames, LFW photos and all. Presentations
    made from `skip_video` are left out (held-out figures of a model trained on it)."""
    vb = np.asarray(video.bona_fide[scorer])[_keep(video.bona_fide_names, skip_video)]
    t = threshold_at_bpcer(vb) if threshold is None else threshold
    out = {"threshold": t, "video": {"BPCER": bpcer(vb, t), "APCER": {}},
           "lfw": {"BPCER": bpcer(lfw.bona_fide[scorer], t), "APCER": {}}, "APCER_all_sources": {}}
    for sp in video.species:
        va = np.asarray(video.attacks[scorer][sp])[_keep(video.attack_names[sp], skip_video)]
        la = np.asarray(lfw.attacks[scorer][sp])
        out["video"]["APCER"][sp] = apcer(va, t)
        out["lfw"]["APCER"][sp] = apcer(la, t)
        out["APCER_all_sources"][sp] = apcer(np.concatenate([va, la]), t)
    return out


def _met(at: dict) -> bool:
    rates = [r["rate"] for r in at["APCER_all_sources"].values()]
    return bool(rates) and all(r is not None and r <= TARGET_APCER for r in rates)


def union_masks(video: _Collector, lfw: _Collector, train_videos: list[str]) -> list[dict]:
    """Which presentations each of n fine-tuned models scores in the union (every presentation once, by a model
    that never saw it): a video presentation goes to the first model not trained on its video, an LFW one to
    model crc32(person) % n. Per model: {"video_bona_fide": bool mask, "video_attacks": {species: mask},
    "lfw_bona_fide": mask, "lfw_attacks": {species: mask}}."""
    n = len(train_videos)

    def owner_video(name: str) -> int:
        v = name.split("#")[0]
        return next((i for i, t in enumerate(train_videos) if t != v), -1)

    def owner_lfw(name: str) -> int:
        return zlib.crc32(name.split("/")[0].encode()) % n

    out = []
    for i in range(n):
        out.append({
            "video_bona_fide": np.array([owner_video(x) == i for x in video.bona_fide_names], bool),
            "video_attacks": {sp: np.array([owner_video(x) == i for x in video.attack_names[sp]], bool)
                              for sp in video.species},
            "lfw_bona_fide": np.array([owner_lfw(x) == i for x in lfw.bona_fide_names], bool),
            "lfw_attacks": {sp: np.array([owner_lfw(x) == i for x in lfw.attack_names[sp]], bool)
                            for sp in lfw.species}})
    return out


def union_figures(video: _Collector, lfw: _Collector, scorers: list[str], masks: list[dict]) -> dict:
    """Pooled error rates over the partitions of `union_masks`: partition i scored by scorers[i] at ITS threshold
    (BPCER 5% on its own video frames); errors and counts summed."""
    tot = {"video": [0, 0], "lfw": [0, 0], **{sp: [0, 0] for sp in video.species}}
    thresholds = []
    for name, m in zip(scorers, masks):
        vb = np.asarray(video.bona_fide[name])[m["video_bona_fide"]]
        t = threshold_at_bpcer(vb)
        thresholds.append(t)
        lb = np.asarray(lfw.bona_fide[name])[m["lfw_bona_fide"]]
        for key, b in (("video", vb), ("lfw", lb)):
            tot[key][0] += int((b < t).sum())
            tot[key][1] += b.size
        for sp in video.species:
            a = np.concatenate([np.asarray(video.attacks[name][sp])[m["video_attacks"][sp]],
                                np.asarray(lfw.attacks[name][sp])[m["lfw_attacks"][sp]]])
            tot[sp][0] += int((a >= t).sum())
            tot[sp][1] += a.size
    out = {"thresholds": thresholds, "video": {"BPCER": rate(*tot["video"])}, "lfw": {"BPCER": rate(*tot["lfw"])},
           "APCER_all_sources": {sp: rate(*tot[sp]) for sp in video.species}}
    out["target_met"] = _met(out)
    return out


def report(raw: dict, config_threshold: float, scorer: str, people_rule: str,
           finetuned: list[dict] | None = None) -> dict:
    """The JSON report of the first scorer: counts, APCER per PAI species and BPCER (videos, LFW) at the
    threshold giving BPCER 5% on the video frames and at the configured [liveness] threshold, a recommended
    threshold, the upstream samples, the settings and the people used.

    finetuned: per fine-tuned model {"scorer": name in raw's scorers, "description", "record": the training
    record (its config's train_video is left out of its held-out figures)}: adds "before_after", a list with
    the pretrained and the fine-tuned scorer on each model's held-out presentations, and, when the models were
    trained on different videos, "before_after_union": every presentation scored once by a model that never
    saw it, against the pretrained model on the same partitions."""
    video, lfw = raw["video"], raw["lfw"]
    main = video.scorers[0]
    at5, atc = figures(video, lfw, main), figures(video, lfw, main, config_threshold)
    counts = {kind: {"bona_fide_presentations": len(c.bona_fide_names), "bona_fide_non_responses": len(c.no_face),
                     "attack_presentations": {s: len(v) for s, v in c.attack_names.items()},
                     "attack_non_responses": dict(c.attack_no_face)}
              for kind, c in (("video", video), ("lfw", lfw))}
    out = {
        "scorer": scorer,
        "iso_iec_30107_3": ISO_NAMES,
        "target": {"APCER_max": TARGET_APCER, "BPCER_max": TARGET_BPCER, "met": _met(at5)},
        "at_bpcer_5pct_video": at5,
        "at_config_threshold": atc,
        "recommended_threshold": round(at5["threshold"], 3),
        "counts": counts,
        "upstream_samples": [dict(r, score=r["score"][main]) for r in raw["samples"]],
        "settings": raw["settings"],
        "people": {"rule": people_rule, "lfw_evaluation_people_used": raw["people"],
                   "videos": raw["settings"]["videos"]},
        "scores": {"video_bona_fide": video.bona_fide[main], "lfw_bona_fide": lfw.bona_fide[main],
                   "video_attacks": video.attacks[main], "lfw_attacks": lfw.attacks[main],
                   "video_bona_fide_names": video.bona_fide_names, "video_attack_names": video.attack_names},
        "seconds": round(raw["seconds"], 1),
    }
    if finetuned:
        out["before_after"] = [_before_after(video, lfw, raw, main, ft, config_threshold) for ft in finetuned]
        train_videos = [ft["record"]["config"]["train_video"] for ft in finetuned]
        if len(set(train_videos)) == len(train_videos) > 1:
            masks = union_masks(video, lfw, train_videos)
            out["before_after_union"] = {
                "rule": "each video presentation scored by the model not trained on its video, each LFW "
                        "presentation by model crc32(person) % n; each model at the threshold giving BPCER 5% "
                        "on its own video frames; errors pooled",
                "models": [ft["description"] for ft in finetuned], "train_videos": train_videos,
                "pretrained": union_figures(video, lfw, [main] * len(finetuned), masks),
                "fine-tuned": union_figures(video, lfw, [ft["scorer"] for ft in finetuned], masks)}
    return out


def _before_after(video: _Collector, lfw: _Collector, raw: dict, main: str, finetuned: dict,
                  config_threshold: float) -> dict:
    """The pretrained scorer and one fine-tuned one on the presentations not made from its training video."""
    cfg = finetuned["record"]["config"]
    skip = cfg["train_video"]
    rows = {}
    for name, label in ((main, "pretrained"), (finetuned["scorer"], "fine-tuned")):
        a5 = figures(video, lfw, name, None, skip)
        rows[label] = {"at_bpcer_5pct_held_out_video": a5, "target_met": _met(a5),
                       "at_config_threshold": figures(video, lfw, name, config_threshold, skip),
                       "upstream_samples": [dict(r, score=r["score"][name]) for r in raw["samples"]]}
    return {"finetuned": finetuned["description"], "held_out": f"video frames not of {skip}, LFW evaluation people",
            "trained_on": {"bona_fide": finetuned["record"]["bona_fide_rule"],
                           "lfw_training_people": len(finetuned["record"]["people"]["train"]),
                           "lfw_validation_people": len(finetuned["record"]["people"]["val"]),
                           "best_epoch": finetuned["record"].get("best_epoch"),
                           "samples": finetuned["record"]["samples"], "config": cfg},
            "held_out_counts": {"video_bona_fide": int(_keep(video.bona_fide_names, skip).sum()),
                                **{f"video_{sp}": int(_keep(video.attack_names[sp], skip).sum())
                                   for sp in video.species}},
            **rows}


def write_examples(examples: dict, out_dir: str | Path, per_kind: int = EXAMPLES_PER_SPECIES,
                   seed: int = 0) -> list[Path]:
    """Write up to `per_kind` example images of each kind (bona fide sources and each species), picked
    evenly over the run, as JPEG under out_dir/<kind>/. Research faces: never into the repository."""
    out, written = Path(out_dir), []
    for kind, items in examples.items():
        d = out / kind
        d.mkdir(parents=True, exist_ok=True)
        idx = np.linspace(0, len(items) - 1, min(per_kind, len(items))).round().astype(int) if items else []
        for i in sorted(set(int(k) for k in idx)):
            name, img = items[i]
            p = d / (name.removesuffix(".jpg").replace("/", "_").replace("#", "_f") + ".jpg")
            cv2.imwrite(str(p), np.ascontiguousarray(img[..., ::-1]))
            written.append(p)
    return written


def _ranges(ranges: dict) -> str:
    return ", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in ranges.items())


def _pct(r: dict) -> str:
    return "-" if r["rate"] is None else f"{100 * r['rate']:.2f}% ({r['errors']}/{r['of']})"


def markdown(rep: dict, json_name: str = "liveness_benchmark.json") -> str:
    """docs/liveness_benchmark.md from a report (numbers only, no pictures)."""
    s, c = rep["settings"], rep["counts"]
    t5, tc = rep["at_bpcer_5pct_video"], rep["at_config_threshold"]
    species = s["species"]
    lines = [
        "# Liveness benchmark (`facegate bench liveness`)", "",
        f"Generated by `facegate bench liveness` ({json_name} holds every score). Scorer: {rep['scorer']}. "
        "There is **no public real attack set here**: the attacks are synthetic re-captures "
        "(`edge_runtime/eval/attacks.py`, seeded) of the bona fide frames and photos below, so these numbers "
        "say how the model treats *these* simulated print and screen attacks, not real ones.", "",
        f"Settings: one video frame in {s['frame_step']}, the largest face of at least {s['min_face_px']:g} px "
        f"(the door's subject); {s['video_copies']} attack(s) of each species per frame, {s['lfw_copies']} per "
        f"LFW photo; {s['lfw_photos']} LFW photos drawn (seed {s['seed']}, at most 2 per person); attack frames "
        f"at most {s['attack_frame_max_side']} px on the longer side. Run time {rep['seconds']:.0f} s.", "",
        "## How the attacks are made", "",
        "Each attack is a re-capture of the whole bona fide frame or photo: the print or screen shows the part of "
        "the scene around the face that keeps the face at its size in a camera frame of the source's aspect ratio, "
        "placed in perspective in front of a synthetic room (grey-ish wall, blurred rectangles, grain: no other "
        "face), then the camera blurs, adds noise and JPEG-compresses; the face is detected again in that frame "
        "(the detection nearest where the source face lands) and scored. Every parameter is drawn uniformly from "
        "its range with a seed per presentation, species and copy:", "",
        "| stage | parameter ranges |", "|---|---|",
        f"| camera (both) | {_ranges(CAMERA_RANGES)} |",
        f"| print | {_ranges(PRINT_RANGES)} |",
        f"| screen | {_ranges(SCREEN_RANGES)} |", "",
        "## Figures (ISO/IEC 30107-3)", "",
        "| term | meaning here |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in rep["iso_iec_30107_3"].items()], "",
        f"## At the threshold giving BPCER 5% on the video frames: {t5['threshold']:.3f}", "",
        "| presentations | PAI species | figure | value |", "|---|---|---|---|",
        f"| bona fide, video frames | - | BPCER | {_pct(t5['video']['BPCER'])} |",
        f"| bona fide, LFW photos (stress case) | - | BPCER | {_pct(t5['lfw']['BPCER'])} |",
    ]
    for sp in species:
        lines += [f"| attack, from video frames | {sp} | APCER | {_pct(t5['video']['APCER'][sp])} |",
                  f"| attack, from LFW photos | {sp} | APCER | {_pct(t5['lfw']['APCER'][sp])} |",
                  f"| attack, all | {sp} | APCER | {_pct(t5['APCER_all_sources'][sp])} |"]
    met = rep["target"]["met"]
    lines += ["", f"Target APCER <= {100 * rep['target']['APCER_max']:g}% for each species at BPCER <= "
                  f"{100 * rep['target']['BPCER_max']:g}%: **{'met' if met else 'not met'}**.", "",
              f"## At the configured `[liveness] threshold` = {tc['threshold']:g}", "",
              "| presentations | PAI species | figure | value |", "|---|---|---|---|",
              f"| bona fide, video frames | - | BPCER | {_pct(tc['video']['BPCER'])} |",
              f"| bona fide, LFW photos | - | BPCER | {_pct(tc['lfw']['BPCER'])} |"]
    for sp in species:
        lines += [f"| attack, all | {sp} | APCER | {_pct(tc['APCER_all_sources'][sp])} |"]
    lines += ["", f"Recommended `[liveness] threshold` for this scorer: **{rep['recommended_threshold']:.3f}** "
                  "(BPCER 5% on the video frames).", "", "## Counts", "",
              "| source | bona fide presentations | bona fide non-responses | "
              + " | ".join(f"{sp} attacks | {sp} non-responses" for sp in species) + " |",
              "|---|---|---|" + "---|---|" * len(species)]
    for kind in ("video", "lfw"):
        k = c[kind]
        lines.append(f"| {kind} | {k['bona_fide_presentations']} | {k['bona_fide_non_responses']} | "
                     + " | ".join(f"{k['attack_presentations'][sp]} | {k['attack_non_responses'][sp]}"
                                  for sp in species) + " |")
    lines += ["", "A video frame without a face of the door's size is a frame without a subject (not a "
                  "presentation); an attack whose face is not found where the PAI shows it is a non-response.", "",
              "## Upstream samples (a smoke test, not a benchmark)", "",
              "| file | truth | PAI species | score (p bona fide) |", "|---|---|---|---|"]
    for r in rep["upstream_samples"]:
        sc = "no face" if r["score"] is None else f"{r['score']:.3f}"
        lines.append(f"| {r['file']} | {r['truth']} | {r['pai_species'] or '-'} | {sc} |")
    p = rep["people"]
    lines += ["", "## People", "", f"Videos: {', '.join(p['videos'])}.", "",
              f"LFW: {p['rule']}. {len(p['lfw_evaluation_people_used'])} people used: "
              + ", ".join(p["lfw_evaluation_people_used"]) + "."]
    if "before_after" in rep:
        lines += ["", "## Before / after fine-tuning (held-out presentations only)"]
        if "before_after_union" in rep:
            lines += ["", *_union_lines(rep["before_after_union"], species)]
        for ba in rep["before_after"]:
            lines += ["", *_before_after_lines(ba, species)]
    return "\n".join(lines) + "\n"


def _union_lines(u: dict, species: list[str]) -> list[str]:
    """The markdown of the union of the held-out halves (every presentation scored by a model that never saw it)."""
    lines = ["### Union: every presentation scored by a model that never saw its video or its person", "",
             f"Rule: {u['rule']}. Models: " + "; ".join(f"{d} (trained with {v})" for d, v in
                                                         zip(u["models"], u["train_videos"])) + ".", "",
             "| model | thresholds | BPCER video | BPCER LFW | " + " | ".join(f"APCER {sp}" for sp in species)
             + " | target met |", "|---|---|---|---|" + "---|" * len(species) + "---|"]
    for label in ("pretrained", "fine-tuned"):
        r = u[label]
        lines.append(f"| {label} | {' / '.join(f'{t:.3f}' for t in r['thresholds'])} | {_pct(r['video']['BPCER'])} | "
                     f"{_pct(r['lfw']['BPCER'])} | " + " | ".join(_pct(r["APCER_all_sources"][sp]) for sp in species)
                     + f" | {'yes' if r['target_met'] else 'no'} |")
    return lines


def _before_after_lines(ba: dict, species: list[str]) -> list[str]:
    """The markdown of the pretrained-vs-fine-tuned comparison on held-out presentations."""
    t = ba["trained_on"]
    c = t["config"]
    hc = ba["held_out_counts"]
    lines = [f"### Model trained with {c['train_video']}", "",
             f"Fine-tuned: {ba['finetuned']} (`facegate train liveness`, seed {c['seed']}, {c['epochs']} epochs, "
             f"lr {c['lr']:g}, anchor {c.get('anchor', 0):g}, weights of epoch {t.get('best_epoch', c['epochs'])}, "
             f"git {c['git_commit']}). Trained on: {t['bona_fide']}; {t['lfw_training_people']} "
             f"LFW training people ({t['lfw_validation_people']} more held out for validation), "
             f"{t['samples']['train']} training samples of which {t['samples']['train_attacks']} synthetic attacks "
             f"(seeds disjoint from the bench's). Held out here: {ba['held_out']} ({hc['video_bona_fide']} bona fide "
             "video frames, " + ", ".join(f"{hc['video_' + sp]} {sp} attacks from them" for sp in species)
             + "; the LFW rows as above). Each model's threshold gives BPCER 5% on the held-out video frames.", "",
             "| model | threshold | BPCER video | BPCER LFW | " + " | ".join(f"APCER {sp}" for sp in species)
             + " | target met |", "|---|---|---|---|" + "---|" * len(species) + "---|"]
    for label in ("pretrained", "fine-tuned"):
        r = ba[label]["at_bpcer_5pct_held_out_video"]
        lines.append(f"| {label} | {r['threshold']:.3f} | {_pct(r['video']['BPCER'])} | {_pct(r['lfw']['BPCER'])} | "
                     + " | ".join(_pct(r["APCER_all_sources"][sp]) for sp in species)
                     + f" | {'yes' if ba[label]['target_met'] else 'no'} |")
    lines += ["", "At the configured threshold:", "",
              "| model | threshold | BPCER video | BPCER LFW | " + " | ".join(f"APCER {sp}" for sp in species) + " |",
              "|---|---|---|---|" + "---|" * len(species)]
    for label in ("pretrained", "fine-tuned"):
        r = ba[label]["at_config_threshold"]
        lines.append(f"| {label} | {r['threshold']:.3f} | {_pct(r['video']['BPCER'])} | {_pct(r['lfw']['BPCER'])} | "
                     + " | ".join(_pct(r["APCER_all_sources"][sp]) for sp in species) + " |")
    lines += ["", "Upstream samples (score = p bona fide): " + "; ".join(
        f"{label}: " + ", ".join(f"{r['file']} {r['score']:.3f}" if r["score"] is not None else f"{r['file']} -"
                                 for r in ba[label]["upstream_samples"]) for label in ("pretrained", "fine-tuned"))
        + "."]
    return lines
