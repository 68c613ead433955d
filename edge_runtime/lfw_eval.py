"""Score a detector + embedder on LFW's 10-fold pairs protocol. Backend-agnostic: PyTorch, fp32 or
int8 ONNX models all go through the same FaceDetector / FaceEmbedder classes and this code."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .face import nearest_to_center
from .imageio import load_image
from .lfw import read_pairs, tar_at_far, ten_fold_accuracy
from .matching import pair_similarity
from .pipeline import FaceDetector, FaceEmbedder


def embed_images(lfw_dir: Path, relpaths: list[str], detector: FaceDetector,
                 embedders: dict[str, FaceEmbedder], progress: bool = True, batch: int = 32) -> dict:
    """Detect the face nearest each image's centre, align and embed it with every embedder.

    Returns:
        {"embeddings": {name: {relpath: float32 (D,)}}, "no_face": [relpath, ...], "seconds": float}
    """
    from tqdm import tqdm

    out = {name: {} for name in embedders}
    no_face, pending = [], {name: [] for name in embedders}
    t0 = time.perf_counter()

    def flush(name):
        if pending[name]:
            keys, chip_sets = zip(*pending[name])
            for k, e in zip(keys, embedders[name].embed_sets(list(chip_sets))):
                out[name][k] = e
            pending[name].clear()

    for rel in tqdm(relpaths, desc="lfw", unit="img", disable=not progress):
        img = load_image(Path(lfw_dir) / rel)
        face = nearest_to_center(detector.detect(img), img.shape[1], img.shape[0])
        if face is None:
            no_face.append(rel)
            continue
        for name, emb in embedders.items():
            pending[name].append((rel, emb.align_all(img, face)))
            if len(pending[name]) >= batch:
                flush(name)
    for name in embedders:
        flush(name)
    return {"embeddings": out, "no_face": no_face, "seconds": time.perf_counter() - t0}


def evaluate_lfw(lfw_dir: Path, detector: FaceDetector, embedders: dict[str, FaceEmbedder],
                 progress: bool = True, limit: int | None = None) -> dict:
    """The 10-fold LFW verification report for each embedder.

    Args:
        limit: use only the first `limit` pairs of each fold (quick checks); None = all 6,000.
    Returns:
        {"pairs": n, "images": n, "no_face": [...], "results": {name: {...accuracy, tar...}},
         "scores": {name: float (N,) list}, "same": bool list}
    """
    pairs = read_pairs(Path(lfw_dir) / "pairs.txt")
    if limit:
        pairs = [p for i, p in enumerate(pairs) if i % 300 < limit]   # same and different alike
    relpaths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    emb = embed_images(lfw_dir, relpaths, detector, embedders, progress)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    report = {"pairs": len(pairs), "images": len(relpaths), "no_face": emb["no_face"],
              "seconds": round(emb["seconds"], 1), "results": {}, "scores": {},
              "same": same.tolist()}
    for name, e in embedders.items():
        table = emb["embeddings"][name]
        scores = np.full(len(pairs), np.nan)
        ok = [i for i, p in enumerate(pairs) if p.a in table and p.b in table]
        if ok:
            a = np.stack([table[pairs[i].a] for i in ok])
            b = np.stack([table[pairs[i].b] for i in ok])
            scores[ok] = pair_similarity(a, b, e.metric)
        acc = ten_fold_accuracy(scores, same, folds)
        r = {"metric": e.metric if isinstance(e.metric, str) else e.metric.to_json(), "accuracy": acc["accuracy"], "std": acc["std"],
             "fold_accuracies": acc["fold_accuracies"], "thresholds": acc["thresholds"],
             "pairs_without_face": int(np.sum(~np.isfinite(scores)))}
        for far in (1e-3, 1e-2):
            tar, t = tar_at_far(scores, same, far)
            r[f"tar_at_far_{far:g}"] = tar
            r[f"threshold_at_far_{far:g}"] = t
        report["results"][name] = r
        report["scores"][name] = [None if not np.isfinite(s) else float(s) for s in scores]
    return report


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
