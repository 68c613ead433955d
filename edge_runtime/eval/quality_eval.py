"""Face-image quality measured by what it is for: the error-versus-discard curve (EDC, ISO/IEC
29794-5 style) of the shipped fused matcher on held-out LFW people.

Every image is described once (`describe_images`: detection, hand-made gate, fused raw embedding);
the quality measures compared are plain per-image scalars (higher = better), and the curve is the
FNMR at a fixed threshold (FMR 1e-3 with nothing discarded) as the genuine comparisons with the
lowest pair quality (the smaller of its two images' qualities) are discarded.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..config import DetectorConfig
from ..detection import central_face
from ..face import Face
from ..imageio import load_image
from ..matching import similarity
from ..quality import brightness, sharpness, yaw_ratio
from ..sessions import open_session

FRACTIONS = tuple(round(0.01 * i, 2) for i in range(21))   # 0 .. 20% of comparisons discarded
TARGET_FMR = 1e-3
NO_FACE = -np.inf                                          # quality of an image whose face was not found


def hand_gate_score(face: Face, chip_rgb: np.ndarray, cfg: DetectorConfig = DetectorConfig()) -> float:
    """Today's hand-made gate (edge_runtime/quality.py) as one scalar: the smallest log-margin of its
    four tests (size, sharpness, brightness, frontal pose); >= 0 exactly when the gate passes.

    face: the detection; chip_rgb: uint8 (S, S, 3) aligned chip. Returns a float (higher = better)."""
    eps = 1e-6
    margins = (np.log(max(min(face.width, face.height), eps) / cfg.min_face_px),
               np.log(max(sharpness(chip_rgb), eps) / cfg.min_sharpness),
               np.log(max(brightness(chip_rgb), eps) / cfg.min_brightness),
               np.log(cfg.max_yaw_ratio / max(yaw_ratio(face.landmarks), eps)))
    return float(min(margins))


def describe_images(lfw_dir: Path, relpaths: list[str], detector, embedder, progress: bool = True,
                    batch: int = 32) -> dict:
    """Detect the central face of each image and describe it for the quality study.

    Args:
        detector: FaceDetector; embedder: FusedEmbedder (or FaceEmbedder) of the shipped bundle.
    Returns:
        {"relpaths": list[str] (N), "found": bool (N,), "det_score": float32 (N,), "face_px": float32 (N,)
         (shorter box side), "hand_gate": float32 (N,), "landmarks": float32 (N, 5, 2),
         "box": float32 (N, 4), "embedding": float32 (N, D) raw (NaN rows where no face), "seconds": float}
    """
    from tqdm import tqdm

    n = len(relpaths)
    out = {"relpaths": list(relpaths), "found": np.zeros(n, bool), "det_score": np.zeros(n, np.float32),
           "face_px": np.zeros(n, np.float32), "hand_gate": np.full(n, NO_FACE, np.float32),
           "landmarks": np.zeros((n, 5, 2), np.float32), "box": np.zeros((n, 4), np.float32),
           "embedding": np.full((n, embedder.embedding_size), np.nan, np.float32)}
    t0, pending = time.perf_counter(), []

    def flush():
        if pending:
            idx, chips = zip(*pending)
            out["embedding"][list(idx)] = embedder.embed_sets(list(chips))
            pending.clear()

    for i, rel in enumerate(tqdm(relpaths, desc="describe", unit="img", disable=not progress)):
        img = load_image(Path(lfw_dir) / rel)
        face = central_face(detector, img)
        if face is None:
            continue
        chips = embedder.align_all(img, face)
        out["found"][i], out["det_score"][i] = True, face.score
        out["face_px"][i] = min(face.width, face.height)
        out["hand_gate"][i] = hand_gate_score(face, chips[0])
        out["landmarks"][i], out["box"][i] = face.landmarks, face.box
        pending.append((i, chips))
        if len(pending) >= batch:
            flush()
    flush()
    out["seconds"] = time.perf_counter() - t0
    return out


def save_description(desc: dict, path: Path) -> None:
    """Write a describe_images result as .npz (relpaths as a string array)."""
    arrays = {k: np.asarray(v) for k, v in desc.items()}
    np.savez(path, **arrays)


def load_description(path: Path) -> dict:
    """Read what save_description wrote."""
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    d["relpaths"] = [str(r) for r in d["relpaths"]]
    d["seconds"] = float(d["seconds"])
    return d


def sface_norm(desc: dict, dim: int = 128) -> np.ndarray:
    """float32 (N,) norm of the raw SFace embedding (the first `dim` values of the fused one); -inf where no face."""
    e = desc["embedding"][:, :dim]
    return np.where(desc["found"], np.linalg.norm(np.nan_to_num(e), axis=1), NO_FACE).astype(np.float32)


def impostor_threshold(emb: np.ndarray, people: np.ndarray, metric, fmr: float = TARGET_FMR,
                       block: int = 1024) -> tuple[float, int]:
    """Score at which a fraction `fmr` of all comparisons between different people's images match.

    emb: float32 (N, D) embeddings (faces found only); people: (N,) person labels.
    Returns (threshold, impostor comparisons counted)."""
    n = len(emb)
    k_max = int(fmr * n * (n - 1) / 2) + 2          # at most this many scores lie above the threshold
    tops, total = [], 0
    for s in range(0, n, block):
        rows = np.arange(s, min(s + block, n))
        sim = similarity(emb[rows], emb, metric)
        v = sim[(people[rows][:, None] != people[None, :]) & (np.arange(n)[None, :] > rows[:, None])]
        total += v.size
        tops.append(np.partition(v, -k_max)[-k_max:] if v.size > k_max else v)
    pool = np.sort(np.concatenate(tops))[::-1]
    k = int(np.floor(fmr * total))
    return float(pool[k]) + 1e-6, total


def edc(pair_quality: np.ndarray, miss: np.ndarray, fractions=FRACTIONS, tie_seed: int = 0) -> list[float]:
    """FNMR of the genuine comparisons kept after discarding the lowest-quality fraction of them.

    pair_quality: float (G,) (-inf = no face); miss: bool (G,) whether each genuine comparison is a
    non-match at the threshold (no face = a non-match). Ties are broken at random (seeded).
    Returns one FNMR per fraction."""
    g = len(miss)
    rng = np.random.default_rng(tie_seed)
    order = np.lexsort((rng.random(g), pair_quality))          # lowest quality first
    out = []
    for f in fractions:
        kept = order[int(round(f * g)):]
        out.append(float(miss[kept].mean()) if kept.size else float("nan"))
    return out


def random_edc(miss: np.ndarray, fractions=FRACTIONS, repeats: int = 200) -> list[float]:
    """The EDC of discarding at random: the mean over `repeats` seeded random orders."""
    curves = [edc(np.zeros(len(miss)), miss, fractions, tie_seed=r) for r in range(repeats)]
    return [float(v) for v in np.mean(curves, axis=0)]


def pair_min(quality: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """float (G,) pair quality: the smaller of the two images' qualities. pairs: int (G, 2) image indices."""
    return np.minimum(quality[pairs[:, 0]], quality[pairs[:, 1]])


def genuine_pairs(pairs, index: dict[str, int]) -> np.ndarray:
    """int (G, 2) image indices of the same-person pairs among `pairs` (lfw.Pair)."""
    return np.array([(index[p.a], index[p.b]) for p in pairs if p.same], np.int64).reshape(-1, 2)


def half_misses(desc: dict, people: np.ndarray, held: np.ndarray, gen: np.ndarray, metric) -> dict:
    """The fixed threshold and each genuine comparison's outcome for one held-out half.

    held: int (H,) indices of the held-out people's images; gen: int (G, 2) genuine pairs.
    Returns {"threshold", "impostor_comparisons", "miss": bool (G,), "images"}."""
    from ..matching import pair_similarity

    found = held[desc["found"][held]]
    thr, total = impostor_threshold(desc["embedding"][found], people[found], metric)
    ok = desc["found"][gen[:, 0]] & desc["found"][gen[:, 1]]
    scores = np.full(len(gen), -np.inf)
    scores[ok] = pair_similarity(desc["embedding"][gen[ok, 0]], desc["embedding"][gen[ok, 1]], metric)
    return {"threshold": thr, "impostor_comparisons": total, "miss": scores < thr, "images": int(len(held))}


def curves_for(measures: dict[str, np.ndarray], gen: np.ndarray, miss: np.ndarray) -> dict[str, list[float]]:
    """{measure name: EDC} for per-image qualities `measures` (float (N,) each) on genuine pairs gen (G, 2)."""
    out = {"random": random_edc(miss)}
    for name, q in measures.items():
        out[name] = edc(pair_min(q, gen), miss)
    return out


def run_quality_model(onnx_path: Path, embeddings: np.ndarray, found: np.ndarray, threads: int = 2) -> np.ndarray:
    """float32 (N,) quality from an exported quality model over raw fused embeddings float32 (N, D);
    -inf where no face was found."""
    run_ = open_session(onnx_path, threads)
    name = run_.get_inputs()[0].name
    q = np.full(len(embeddings), NO_FACE, np.float32)
    if found.any():
        q[found] = run_.run(None, {name: np.ascontiguousarray(embeddings[found], np.float32)})[0].reshape(-1)
    return q


def time_quality_model(onnx_path: Path, dim: int, threads: int = 2, repeats: int = 2000) -> dict:
    """Median and 90th-percentile milliseconds of one face (batch 1) through the quality model."""
    s = open_session(onnx_path, threads)
    name = s.get_inputs()[0].name
    x = np.random.default_rng(0).normal(size=(1, dim)).astype(np.float32)
    for _ in range(50):
        s.run(None, {name: x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1e3)
    return {"threads": threads, "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def read_quality_contract(onnx_path: Path) -> dict:
    """The quality model's contract (JSON in metadata "facegate.contract", kind "quality")."""
    meta = open_session(onnx_path, 1).get_modelmeta().custom_metadata_map
    c = json.loads(meta.get("facegate.contract", "{}"))
    if c.get("kind") != "quality":
        raise ValueError(f"{onnx_path} is not a facegate quality model (contract kind {c.get('kind')!r})")
    return c


def features_key(bundle) -> str:
    """What decides the faces and embeddings described: the sha256 of the detector file and of the embedder
    files in use (not the bundle id, which also covers thresholds, score models and the quality model)."""
    m = bundle.manifest
    fused = m.fusion is not None and bundle.embedder_entry.name == m.fusion.name
    parts = m.fusion.fusion.parts if fused else (bundle.embedder_entry.name,)
    return "|".join([m.detector_sha256, *(m.embedders[p].sha256 for p in parts)])


def cached_description(cache: Path, lfw_dir: Path, relpaths: list[str], bundle, progress: bool = True) -> dict:
    """describe_images of `relpaths` with the bundle's detector and embedder, read from / written to
    `cache` (keyed on the image list and the model files, `features_key`; training and the benchmark
    share it)."""
    import hashlib

    key = hashlib.sha256(("\n".join(relpaths) + features_key(bundle)).encode()).hexdigest()[:16]
    path = Path(cache) / f"describe_{key}.npz"
    if path.is_file():
        return load_description(path)
    desc = describe_images(Path(lfw_dir), relpaths, bundle.detector, bundle.embedder, progress)
    Path(cache).mkdir(parents=True, exist_ok=True)
    save_description(desc, path)
    return desc


HALVES = {"first": (5, 10), "second": (0, 5)}     # model trained on split S is tested on these fold indices


def all_relpaths(lfw_dir: Path) -> list[str]:
    """Every .jpg of an LFW folder as a sorted relpath list."""
    return sorted(f"{d.name}/{f.name}" for d in Path(lfw_dir).iterdir() if d.is_dir()
                  for f in d.iterdir() if f.suffix.lower() == ".jpg")


def at_threshold(q: np.ndarray, found: np.ndarray, gen: np.ndarray, miss: np.ndarray, threshold: float) -> dict:
    """What a quality threshold refuses: the share of photos with a detected face whose quality q (float (N,))
    is below it, the share of genuine pairs gen (G, 2) with a refused photo, and the FNMR (miss bool (G,))
    of the genuine pairs kept."""
    refused = found & (q < threshold)
    pair_refused = refused[gen[:, 0]] | refused[gen[:, 1]]
    kept = ~pair_refused & found[gen[:, 0]] & found[gen[:, 1]]
    return {"threshold": float(threshold), "photos": int(found.sum()), "photos_refused": int(refused.sum()),
            "photos_refused_share": float(refused.sum() / max(found.sum(), 1)),
            "pairs_refused_share": float(pair_refused.mean()) if len(gen) else 0.0,
            "fnmr_kept": float(miss[kept].mean()) if kept.any() else float("nan")}


def half_report(desc: dict, person: np.ndarray, pairs: list, folds: tuple[int, int], model_q: np.ndarray,
                metric, threshold: float | None = None) -> dict:
    """EDCs of every measure on the pairs.txt folds [folds[0], folds[1]) (their people held out)."""
    index = {r: i for i, r in enumerate(desc["relpaths"])}
    sel = [p for p in pairs if folds[0] <= p.fold < folds[1] and p.a in index and p.b in index]
    names = {r.split("/")[0] for p in sel for r in (p.a, p.b)}
    held = np.flatnonzero(np.isin(person, list(names)))
    gen = genuine_pairs(sel, index)
    m = half_misses(desc, person, held, gen, metric)
    measures = image_measures(desc, model_q)
    out = {"folds": f"{folds[0] + 1}-{folds[1]}", "people": len(names), "images": int(len(held)),
           "genuine_pairs": int(len(gen)), "threshold": m["threshold"],
           "impostor_comparisons": m["impostor_comparisons"], "curves": curves_for(measures, gen, m["miss"]),
           "_gen": gen, "_miss": m["miss"], "_measures": measures}
    if threshold is not None:
        in_half = np.zeros(len(model_q), bool)
        in_half[held] = True
        out["at_quality_threshold"] = at_threshold(model_q, desc["found"] & in_half, gen, m["miss"], threshold)
    return out


def image_measures(desc: dict, model_q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image quality under every measure compared (float32 (N,) each, -inf where no face)."""
    found = desc["found"]
    return {"face size": np.where(found, desc["face_px"], NO_FACE),
            "detector score": np.where(found, desc["det_score"], NO_FACE),
            "hand-made gate": np.where(found, desc["hand_gate"], NO_FACE),
            "SFace norm": sface_norm(desc), "quality model": model_q}


def union_curves(halves: list[dict]) -> dict:
    """EDCs over the genuine pairs of every half together, each pair at its own half's threshold and
    scored by its own half's model."""
    miss = np.concatenate([h["_miss"] for h in halves])
    out = {"random": random_edc(miss)}
    for name in halves[0]["_measures"]:
        pq = np.concatenate([pair_min(h["_measures"][name], h["_gen"]) for h in halves])
        out[name] = edc(pq, miss)
    return {"genuine_pairs": int(len(miss)), "curves": out}


def bench_quality(lfw_dir: Path, runs: Path, cache: Path, bundle_dir: Path | None = None,
                  progress: bool = True) -> dict:
    """The EDC report: for each half, the model trained without its people (runs/quality_<split>.onnx)
    against random discard, face size, detector score, the hand-made gate and the SFace norm; their union;
    the model's time per face at 2 threads. Private arrays are dropped from the returned JSON-able dict."""
    from ..bundle import load_bundle
    from .lfw import read_pairs

    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    desc = cached_description(Path(cache), Path(lfw_dir), all_relpaths(lfw_dir), bundle, progress)
    person = np.array([r.split("/")[0] for r in desc["relpaths"]])
    pairs = read_pairs(Path(lfw_dir) / "pairs.txt")
    halves, trained = {}, {}
    min_quality = bundle.manifest.quality.threshold if bundle.manifest.quality is not None else None
    for split, folds in HALVES.items():
        onnx_path = Path(runs) / f"quality_{split}.onnx"
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} is missing; run `facegate train quality --split {split}`")
        contract = read_quality_contract(onnx_path)
        m = bundle.manifest
        if contract.get("part_sha256") != {p: m.embedders[p].sha256 for p in contract.get("parts", [])}:
            raise ValueError(f"{onnx_path} was trained on other embedder files than bundle {m.id}'s")
        meta = open_session(onnx_path, 1).get_modelmeta().custom_metadata_map
        trained[split] = json.loads(meta.get("facegate.provenance", "{}")).get("config", {})
        q = run_quality_model(onnx_path, desc["embedding"], desc["found"])
        halves[f"tested on folds {folds[0] + 1}-{folds[1]}"] = half_report(desc, person, pairs, folds, q, bundle.metric,
                                                                            min_quality)
    union = union_curves(list(halves.values()))
    shipped = None
    if bundle.quality is not None:          # the bundle's own model (trained on everyone) on every photo
        q = np.full(len(desc["found"]), NO_FACE, np.float32)
        q[desc["found"]] = bundle.quality.score(desc["embedding"][desc["found"]])
        refused = desc["found"] & (q < min_quality)
        shipped = {"threshold": min_quality, "meaning": bundle.manifest.quality.meaning,
                   "trained": json.loads(open_session(bundle.path / bundle.manifest.quality.file, 1).get_modelmeta()
                                         .custom_metadata_map.get("facegate.provenance", "{}")).get("config", {}),
                   "photos": int(desc["found"].sum()), "photos_refused": int(refused.sum()),
                   "photos_refused_share": float(refused.sum() / max(desc["found"].sum(), 1)),
                   "quantiles": {str(p): float(np.percentile(q[desc["found"]], p)) for p in (1, 5, 10, 50)}}
    timing = time_quality_model(Path(runs) / "quality_first.onnx", desc["embedding"].shape[1])
    for h in halves.values():
        for k in ("_gen", "_miss", "_measures"):
            h.pop(k)
    return {"bundle_id": bundle.manifest.id, "fractions": list(FRACTIONS), "target_fmr": TARGET_FMR,
            "images": len(desc["relpaths"]), "no_face": int((~desc["found"]).sum()), "halves": halves,
            "union": union, "trained": trained, "quality_model_time": timing, "shipped_model": shipped,
            "describe_seconds": round(float(desc["seconds"]), 1), "seconds": round(time.perf_counter() - t0, 1)}


def targets_met(curves: dict[str, list[float]], fractions=FRACTIONS) -> dict:
    """Issue 14's two curve targets for the quality model: the lowest (or tied-lowest) area under the EDC
    (mean FNMR over the fractions) of all measures, and FNMR at 10% discarded <= half the FNMR with nothing discarded."""
    area = {n: float(np.mean(c)) for n, c in curves.items()}
    q = curves["quality model"]
    i10 = list(fractions).index(0.1)
    others = min(v for n, v in area.items() if n != "quality model")
    return {"area": area, "lowest_curve": area["quality model"] <= others,
            "fnmr_0": q[0], "fnmr_10": q[i10], "halved_at_10": q[i10] <= 0.5 * q[0]}


def plot_edc(report: dict, path: Path) -> None:
    """One panel per held-out half and one for their union: FNMR (log) against the fraction discarded."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*report["halves"].items(), ("union of both halves", report["union"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=110, sharey=True)
    x = 100 * np.asarray(report["fractions"])
    for ax, (title, half) in zip(axes, panels):
        for name, curve in half["curves"].items():
            style = {"lw": 2.5, "color": "k"} if name == "quality model" else {"lw": 1.2}
            ax.plot(x, 100 * np.asarray(curve), label=name, **({"ls": "--"} if name == "random" else {}), **style)
        ax.set_title(f"{title} ({half['genuine_pairs']} genuine pairs)", fontsize=9)
        ax.set_xlabel("genuine comparisons discarded, lowest quality first (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"FNMR at FMR {report['target_fmr']:g} (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"error-versus-discard, fused SFace+dlib matcher, bundle {report['bundle_id']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _curve_rows(curves: dict, fractions) -> list[str]:
    idx = [list(fractions).index(f) for f in (0.0, 0.05, 0.1, 0.15, 0.2)]
    rows = ["| measure | 0% | 5% | 10% | 15% | 20% | mean 0-20% |", "|---|---|---|---|---|---|---|"]
    for name, c in sorted(curves.items(), key=lambda kv: np.mean(kv[1])):
        cells = " | ".join(f"{100 * c[i]:.2f}" for i in idx)
        rows.append(f"| {name} | {cells} | {100 * np.mean(c):.2f} |")
    return rows


def _target_words(cfg: dict) -> str:
    """What a quality model was trained towards, from its QualityTrainConfig (as a dict)."""
    if cfg.get("loss") == "pairwise":
        return ("pairwise: the soft minimum of a genuine pair's two qualities towards the pair's fused score minus "
                "the FMR 1e-3 score")
    return f"{cfg.get('genuine', 'mean')} genuine score minus the {cfg.get('impostor_quantile')} impostor quantile"


def markdown_report(report: dict) -> str:
    """The benchmark as Markdown tables: per half and the union, FNMR (%) at 0-20% discarded per measure,
    the targets, the people used and the model's time per face."""
    lines = [f"Bundle `{report['bundle_id']}`; {report['images']} LFW photos described "
             f"({report['no_face']} without a detected face); benchmark wall time {report['seconds']} s "
             f"(describing the photos, cached under build/, took {report['describe_seconds']} s).", ""]
    for split, cfg in report["trained"].items():
        lines.append(f"- model `{split}`: trained on {cfg.get('train_people')} ({cfg.get('train_images')} photos, "
                     f"list sha256 {cfg.get('train_list_sha256')}), tested on {cfg.get('test_people')} "
                     f"({cfg.get('test_images')} photos, list sha256 {cfg.get('test_list_sha256')}); commit "
                     f"{cfg.get('git_commit')}")
    for title, half in [*report["halves"].items(), ("union of both halves", report["union"])]:
        t = targets_met(half["curves"], report["fractions"])
        lines += ["", f"### {title}", ""]
        if "threshold" in half:
            lines.append(f"{half['people']} people, {half['images']} photos, {half['genuine_pairs']} genuine pairs "
                         f"of pairs.txt; threshold {half['threshold']:.3f} = FMR {report['target_fmr']:g} over "
                         f"{half['impostor_comparisons']:,} comparisons of different held-out people.")
        else:
            lines.append(f"{half['genuine_pairs']} genuine pairs, each at its own half's threshold and model.")
        lines += ["", "FNMR (%) with the lowest-quality share of genuine comparisons discarded:", "",
                  *_curve_rows(half["curves"], report["fractions"]), "",
                  f"Targets: lowest curve of all: **{'met' if t['lowest_curve'] else 'not met'}**; FNMR at 10% "
                  f"discarded {100 * t['fnmr_10']:.2f}% vs {100 * t['fnmr_0']:.2f}% at 0%: "
                  f"**{'met' if t['halved_at_10'] else 'not met'}** (needs <= half)."]
        a = half.get("at_quality_threshold")
        if a:
            lines += ["", f"At the bundle's quality threshold {a['threshold']:g} (this half's model): "
                          f"{a['photos_refused']} of {a['photos']} held-out photos with a face refused "
                          f"({100 * a['photos_refused_share']:.2f}%), {100 * a['pairs_refused_share']:.2f}% of the genuine "
                          f"pairs lose a photo, FNMR of the pairs kept {100 * a['fnmr_kept']:.2f}%."]
    sm = report.get("shipped_model")
    if sm:
        cfg = sm["trained"]
        lines += ["", "### The shipped model", "",
                  f"Trained on {cfg.get('train_people')} ({cfg.get('train_images')} photos, list sha256 "
                  f"{cfg.get('train_list_sha256')}; target: {_target_words(cfg)}; commit {cfg.get('git_commit')}). "
                  "Threshold "
                  f"{sm['threshold']:g} ({sm['meaning']}): it refuses {sm['photos_refused']} of the {sm['photos']} LFW "
                  f"photos with a detected face ({100 * sm['photos_refused_share']:.2f}%; these are its training "
                  "photos, the held-out rates are above). Quality quantiles over those photos: "
                  + ", ".join(f"{k}%: {v:.3f}" for k, v in sm["quantiles"].items()) + "."]
    tm = report["quality_model_time"]
    lines += ["", f"Quality model time per face (batch 1, {tm['threads']} threads, onnxruntime): median "
                  f"{tm['median_ms']:.3f} ms, p90 {tm['p90_ms']:.3f} ms: **{'met' if tm['median_ms'] <= 1 else 'not met'}** "
                  f"(<= 1 ms)."]
    return "\n".join(lines) + "\n"
