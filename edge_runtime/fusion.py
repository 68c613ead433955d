"""Score fusion of several embedders: how the similarities of two models on one face become one score.

A fused embedding is the parts' raw embeddings side by side (float32 (sum of dims,)), so a fused
template is stored, loaded and searched like any other. Comparing two fused embeddings compares each
part with its own metric, z-normalises each similarity with that part's impostor statistics and takes
the weighted sum:

    score = sum_i weights[i] * (s_i - means[i]) / stds[i]

The weights, statistics and the threshold on this score are chosen when the bundle is built
(`facegate build-bundle`) and travel in bundle.json.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FacegateError

PART_METRICS = ("cosine", "euclidean")


def fuse_scores(scores, weights, means, stds) -> np.ndarray:
    """sum_i weights[i] * (scores[i] - means[i]) / stds[i]: per-part similarities (float arrays of one
    shape) -> their float32 fused score of that shape."""
    total = None
    for s, w, mu, sd in zip(scores, weights, means, stds):
        z = (np.asarray(s, np.float32) - np.float32(mu)) * np.float32(w / sd)
        total = z if total is None else total + z
    return total


class FusionError(FacegateError):
    """A fusion description is incomplete or inconsistent."""


@dataclass(frozen=True)
class ScoreFusion:
    """A weighted sum of z-normalised similarities.

    Attributes:
        parts: embedder names, in the order of their slices in a fused embedding.
        metrics: each part's metric ("cosine" or "euclidean", see matching.similarity).
        dims: each part's embedding size.
        weights: one weight per part, summing to 1.
        means, stds: each part's impostor similarity mean and standard deviation (std > 0).
    """

    parts: tuple[str, ...]
    metrics: tuple[str, ...]
    dims: tuple[int, ...]
    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self):
        n = len(self.parts)
        for label in ("metrics", "dims", "weights", "means", "stds"):
            if len(getattr(self, label)) != n:
                raise FusionError(f"fusion of {n} parts has {len(getattr(self, label))} {label}")
        if n < 2:
            raise FusionError("a fusion needs at least two embedders")
        bad = [m for m in self.metrics if m not in PART_METRICS]
        if bad:
            raise FusionError(f"unknown metric {bad[0]!r} in fusion; expected one of {PART_METRICS}")
        if any(int(d) < 1 for d in self.dims):
            raise FusionError(f"fusion part sizes must be >= 1; got {self.dims}")
        if any(not np.isfinite(s) or s <= 0 for s in self.stds) or not all(np.isfinite(self.means)):
            raise FusionError(f"fusion statistics must be finite with std > 0; got means {self.means}, "
                              f"stds {self.stds}")
        if any(w < 0 for w in self.weights) or abs(sum(self.weights) - 1) > 1e-6:
            raise FusionError(f"fusion weights must be >= 0 and sum to 1; got {self.weights}")
        for label, cast in (("parts", str), ("metrics", str), ("dims", int), ("weights", float),
                            ("means", float), ("stds", float)):
            object.__setattr__(self, label, tuple(cast(v) for v in getattr(self, label)))

    @property
    def name(self) -> str:
        """The fused embedder's name, e.g. "sface+dlib_resnet"."""
        return "+".join(self.parts)

    @property
    def embedding_size(self) -> int:
        return sum(self.dims)

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """float (N, sum(dims)) -> one float32 (N, dims[i]) view per part."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        if x.shape[-1] != self.embedding_size:
            raise ValueError(f"fused embeddings of {self.name} have {self.embedding_size} values; got {x.shape[-1]}")
        edges = np.cumsum((0,) + self.dims)
        return [x[:, edges[i]:edges[i + 1]] for i in range(len(self.dims))]

    def combine(self, scores) -> np.ndarray:
        """Per-part similarities (same shape each) -> float32 fused score of that shape."""
        return fuse_scores(scores, self.weights, self.means, self.stds)

    def to_json(self) -> dict:
        return {"parts": list(self.parts), "metrics": list(self.metrics), "dims": list(self.dims),
                "weights": list(self.weights), "means": list(self.means), "stds": list(self.stds)}

    @classmethod
    def from_json(cls, d: dict) -> "ScoreFusion":
        """Raises FusionError when a field is missing or bad."""
        try:
            return cls(tuple(d["parts"]), tuple(d["metrics"]), tuple(d["dims"]), tuple(d["weights"]),
                       tuple(d["means"]), tuple(d["stds"]))
        except (KeyError, TypeError, ValueError) as e:
            raise FusionError(f"fusion entry is incomplete: missing or bad field {e}") from None


def metric_label(metric) -> str:
    """A metric as plain text for JSON and pages: "cosine", "euclidean" or "fused"."""
    return "fused" if isinstance(metric, ScoreFusion) else str(metric)
