"""How well a clustering matches the true identities: pairwise precision/recall/F1 and BCubed F1, and
the DBSCAN baseline on cosine distance (what Immich and the OpenCV Zoo peer use). Plain numpy."""
from __future__ import annotations

import numpy as np

from ..matching import l2_normalize


def pair_counts(truth: np.ndarray, found: np.ndarray) -> tuple[int, int, int]:
    """(same-person pairs put together, pairs put together, true same-person pairs) for int label arrays (N,)."""
    def pairs(x):
        return int((x * (x - 1) // 2).sum())
    _, t = np.unique(truth, return_inverse=True)
    _, f = np.unique(found, return_inverse=True)
    joint = np.unique(t.astype(np.int64) * (f.max() + 1) + f, return_counts=True)[1]
    return pairs(joint), pairs(np.bincount(f)), pairs(np.bincount(t))


def clustering_scores(truth: np.ndarray, found: np.ndarray) -> dict:
    """Pairwise precision/recall/F1 and BCubed precision/recall/F1 of `found` against `truth` (labels (N,))."""
    tp, predicted, actual = pair_counts(truth, found)
    p = tp / predicted if predicted else 1.0
    r = tp / actual if actual else 1.0
    _, t = np.unique(truth, return_inverse=True)
    _, f = np.unique(found, return_inverse=True)
    key = t.astype(np.int64) * (f.max() + 1) + f
    _, inv, joint = np.unique(key, return_inverse=True, return_counts=True)
    both = joint[inv].astype(float)
    bp = float(np.mean(both / np.bincount(f)[f]))
    br = float(np.mean(both / np.bincount(t)[t]))
    return {"pairwise_precision": p, "pairwise_recall": r, "pairwise_f1": _f1(p, r),
            "bcubed_precision": bp, "bcubed_recall": br, "bcubed_f1": _f1(bp, br),
            "people_found": int(len(np.unique(found))), "people_true": int(len(np.unique(truth)))}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def dbscan_cosine(emb: np.ndarray, eps: float = 0.5, min_samples: int = 3) -> np.ndarray:
    """DBSCAN on cosine distance (what Immich runs): float (N, D) -> int64 labels (N,), -1 = noise.

    Holds the (N, N) similarity matrix: for evaluation sets only.
    """
    x = l2_normalize(emb)
    near = (1.0 - x @ x.T) <= eps
    core = near.sum(1) >= min_samples
    labels = np.full(len(x), -1, np.int64)
    cluster = 0
    for i in np.flatnonzero(core):
        if labels[i] >= 0:
            continue
        labels[i], stack = cluster, [i]
        while stack:
            j = stack.pop()
            if not core[j]:
                continue
            for k in np.flatnonzero(near[j] & (labels < 0)):
                labels[k] = cluster
                stack.append(k)
        cluster += 1
    return labels


def noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    """DBSCAN labels with each noise point (-1) made a cluster of its own."""
    out = labels.copy()
    noise = np.flatnonzero(out < 0)
    out[noise] = out.max(initial=-1) + 1 + np.arange(len(noise))
    return out
