"""Score a detector + embedder on LFW's 10-fold pairs protocol. Backend-agnostic: PyTorch, fp32 or
int8 ONNX models all go through the same FaceDetector / FaceEmbedder classes and this code."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..detection import FaceDetector, central_face
from ..embedding import FaceEmbedder
from ..imageio import load_image
from ..matching import pair_similarity
from ..quality_model import QualityModel
from ..recognizer import quality_gate
from .lfw import read_pairs, tar_at_far, ten_fold_accuracy


@dataclass(frozen=True)
class QualityGate:
    """A bundle's quality gate, as `Recognizer.analyze` applies it: `model` scores the raw embeddings of the
    embedder `features_of` (the bundle's fusion); a face below `threshold` is unusable."""

    model: QualityModel
    threshold: float
    features_of: str


def embed_images(lfw_dir: Path, relpaths: list[str], detector: FaceDetector,
                 embedders: dict[str, FaceEmbedder], progress: bool = True, batch: int = 32,
                 gate: QualityGate | None = None) -> dict:
    """Detect the face nearest each image's centre, align and embed it with every embedder.

    A fused embedder whose parts are all in `embedders` (by name) is not run again: its embeddings
    are the parts' embeddings side by side, exactly what it would compute.
    gate: the bundle's quality gate (`gate.features_of` must be in `embedders`); a face it refuses is
        unusable for every embedder, like a photo without a face: absent from every table.
    Returns:
        {"embeddings": {name: {relpath: float32 (D,)}}, "no_face": [relpath, ...],
         "low_quality": {relpath: its quality, for the faces the gate refused}, "seconds": float}
    """
    if gate is not None and gate.features_of not in embedders:
        raise ValueError(f"the quality gate reads {gate.features_of!r} embeddings; embed with it "
                         f"(embedders: {', '.join(embedders)})")
    from tqdm import tqdm

    reused = {n: e.fusion.parts for n, e in embedders.items()
              if getattr(e, "fusion", None) is not None and all(p in embedders for p in e.fusion.parts)}
    run = {n: e for n, e in embedders.items() if n not in reused}
    out = {name: {} for name in run}
    no_face, pending = [], {name: [] for name in run}
    t0 = time.perf_counter()

    def flush(name):
        if pending[name]:
            keys, chip_sets = zip(*pending[name])
            for k, e in zip(keys, run[name].embed_sets(list(chip_sets))):
                out[name][k] = e
            pending[name].clear()

    for rel in tqdm(relpaths, desc="lfw", unit="img", disable=not progress):
        img = load_image(Path(lfw_dir) / rel)
        face = central_face(detector, img)
        if face is None:
            no_face.append(rel)
            continue
        for name, emb in run.items():
            pending[name].append((rel, emb.align_all(img, face)))
            if len(pending[name]) >= batch:
                flush(name)
    for name in run:
        flush(name)
    for name, parts in reused.items():
        out[name] = {k: np.concatenate([out[p][k] for p in parts]) for k in out[parts[0]]}
    low = apply_quality_gate(out, gate) if gate is not None else {}
    return {"embeddings": out, "no_face": no_face, "low_quality": low, "seconds": time.perf_counter() - t0}


def apply_quality_gate(tables: dict[str, dict], gate: QualityGate) -> dict[str, float]:
    """Score the faces of `tables[gate.features_of]` ({relpath: raw fused float32 (D,)}) with the bundle's quality
    gate (`recognizer.quality_gate`) and drop the refused ones from every table of {name: {relpath: vector}}, in
    place. Returns {relpath: quality} of the refused faces, in relpath order."""
    keys = sorted(tables[gate.features_of])
    if not keys:
        return {}
    q, usable = quality_gate(gate.model, gate.threshold, np.stack([tables[gate.features_of][k] for k in keys]))
    refused = {k: float(v) for k, v, ok in zip(keys, q, usable) if not ok}
    for table in tables.values():
        for k in refused:
            table.pop(k, None)
    return refused


def evaluate_lfw(lfw_dir: Path, detector: FaceDetector, embedders: dict[str, FaceEmbedder],
                 progress: bool = True, limit: int | None = None, gate: QualityGate | None = None) -> dict:
    """The 10-fold LFW verification report for each embedder.

    Args:
        limit: use only the first `limit` pairs of each fold (quick checks); None = all 6,000.
        gate: the bundle's quality gate (embed_images); a pair with a refused photo counts as wrong, like a
            pair without a face.
    Returns:
        {"pairs": n, "images": n, "no_face": [...], "low_quality": {relpath: quality},
         "results": {name: {...accuracy, tar...}}, "scores": {name: float (N,) list}, "same": bool list}
    """
    pairs = read_pairs(Path(lfw_dir) / "pairs.txt")
    if limit:
        pairs = [p for i, p in enumerate(pairs) if i % 300 < limit]   # same and different alike
    relpaths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    emb = embed_images(lfw_dir, relpaths, detector, embedders, progress, gate=gate)
    report = {"pairs": len(pairs), "images": len(relpaths), "no_face": emb["no_face"],
              "low_quality": emb["low_quality"],
              "seconds": round(emb["seconds"], 1), "results": {}, "scores": {},
              "same": [p.same for p in pairs]}
    for name, e in embedders.items():
        r, scores = pair_report(pairs, emb["embeddings"][name], e.metric)
        report["results"][name] = r
        report["scores"][name] = [None if not np.isfinite(s) else float(s) for s in scores]
    return report


def pair_scores(pairs: list, table: dict, metric) -> np.ndarray:
    """float64 (N,) similarity of each pair from {relpath: float32 (D,)}; NaN where a face is missing."""
    scores = np.full(len(pairs), np.nan)
    ok = [i for i, p in enumerate(pairs) if p.a in table and p.b in table]
    if ok:
        a = np.stack([table[pairs[i].a] for i in ok])
        b = np.stack([table[pairs[i].b] for i in ok])
        scores[ok] = pair_similarity(a, b, metric)
    return scores


def scores_report(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, metric) -> dict:
    """10-fold accuracy, TAR and threshold at FAR 1e-3 and 1e-2, and the FAR the 1e-3 threshold gives.

    scores: float (N,) pair similarities (NaN = no face: counted wrong); same: bool (N,); folds: int (N,)."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    acc = ten_fold_accuracy(scores, same, np.asarray(folds))
    r = {"metric": metric if isinstance(metric, str) else metric.to_json(), "accuracy": acc["accuracy"],
         "std": acc["std"], "fold_accuracies": acc["fold_accuracies"], "thresholds": acc["thresholds"],
         "pairs_without_face": int(np.sum(~np.isfinite(scores)))}
    for far in (1e-3, 1e-2):
        tar, t = tar_at_far(scores, same, far)
        r[f"tar_at_far_{far:g}"] = tar
        r[f"threshold_at_far_{far:g}"] = t
    neg = np.where(np.isfinite(scores), scores, -np.inf)[~same]
    r["far_at_threshold_1e-3"] = float(np.mean(neg >= r["threshold_at_far_0.001"]))
    return r


def pair_report(pairs: list, table: dict, metric) -> tuple[dict, np.ndarray]:
    """(scores_report of the pairs, their float64 (N,) scores) from {relpath: embedding}."""
    scores = pair_scores(pairs, table, metric)
    return scores_report(scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]),
                         metric), scores


def plot_roc(report: dict, path: Path) -> None:
    """Save ROC curves (TAR vs FAR, log x axis) of every embedder in `report` as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    same = np.asarray(report["same"], bool)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, raw in report["scores"].items():
        s = np.array([-np.inf if v is None else v for v in raw])
        neg = np.sort(s[~same])[::-1]
        fars, tars = [], []
        for k in range(1, len(neg) + 1):
            fars.append(k / len(neg))
            tars.append(np.mean(s[same] >= neg[k - 1]))
        acc = report["results"][name]["accuracy"]
        ax.plot(fars, tars, label=f"{name} ({acc * 100:.2f}%)")
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW pairs ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
