"""Comparing embeddings: plain functions over numpy arrays."""
from __future__ import annotations

import numpy as np

from .fusion import ScoreFusion


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of float (N, D) scaled to unit length."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def similarity(a: np.ndarray, b: np.ndarray, metric: str | ScoreFusion) -> np.ndarray:
    """Similarity matrix, higher = more alike.

    Args:
        a: float (N, D); b: float (M, D); metric: "cosine" (cosine similarity),
            "euclidean" (negative Euclidean distance, dlib's convention) or a ScoreFusion
            (fused embeddings: each part with its metric, z-normalised, weighted sum).
    Returns:
        float32 (N, M).
    """
    a = np.atleast_2d(np.asarray(a, np.float32))
    b = np.atleast_2d(np.asarray(b, np.float32))
    if isinstance(metric, ScoreFusion):
        return metric.combine([similarity(x, y, m) for x, y, m in zip(metric.split(a), metric.split(b),
                                                                        metric.metrics)])
    if metric == "cosine":
        return l2_normalize(a) @ l2_normalize(b).T
    if metric == "euclidean":
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return -np.sqrt(np.maximum(d2, 0))
    raise ValueError(f"unknown metric {metric!r}; expected 'cosine' or 'euclidean'")


def pair_similarity(a: np.ndarray, b: np.ndarray, metric: str | ScoreFusion) -> np.ndarray:
    """Row-wise similarity of float (N, D) a and b; float32 (N,). metric as in `similarity`."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if isinstance(metric, ScoreFusion):
        return metric.combine([pair_similarity(x, y, m) for x, y, m in zip(metric.split(a), metric.split(b),
                                                                             metric.metrics)])
    if metric == "cosine":
        return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)
    if metric == "euclidean":
        return -np.linalg.norm(a - b, axis=1)
    raise ValueError(f"unknown metric {metric!r}; expected 'cosine' or 'euclidean'")
