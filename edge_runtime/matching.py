"""Matching: comparing embeddings (plain functions over numpy arrays) and the 1:N search of the
enrolled templates (TemplateGallery), which gives one Match per probe."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .fusion import ScoreFusion


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of float (N, D) scaled to unit length."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def json_score(x: float | None, digits: int = 4) -> float | None:
    """A score rounded for JSON; None for no score or -inf (nobody enrolled)."""
    return round(x, digits) if x is not None and math.isfinite(x) else None


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


METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class Match:
    """The best enrolled person for one probe.

    Attributes:
        name: the person, or None for unknown (nobody enrolled, or best score below the threshold).
        score: best template score of the best person (higher = more alike; cosine similarity,
            or minus the Euclidean distance); -inf when nobody is enrolled.
        second: best score of the runner-up person (-inf when fewer than two people).
        person_id: store id of `name`, or None.
        candidate: the best person regardless of the threshold (for logs), or None if no one enrolled.
    """

    name: str | None
    score: float
    second: float
    person_id: int | None = None
    candidate: str | None = None


@dataclass(frozen=True, eq=False)
class TemplateGallery:
    """The enrolled templates of one model bundle, searched 1:N: one row per template.

    Attributes:
        names: one person name per template, len T.
        person_ids: one person id per template, len T (same id -> same name).
        matrix: float32 (T, D) embeddings, all from one embedder.
        metric: "cosine", "euclidean", or a ScoreFusion for fused embeddings (each part compared
            with its own metric, the z-normalised scores summed with the fusion's weights).
    The search-ready forms (normalised or squared norms, rows grouped by person) are computed
    once at construction.
    """

    names: tuple[str, ...]
    person_ids: tuple[int, ...]
    matrix: np.ndarray
    metric: str | ScoreFusion = "cosine"
    _prep: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.metric, ScoreFusion) and self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {METRICS} or a ScoreFusion")
        names = tuple(str(n) for n in self.names)
        pids = tuple(int(p) for p in self.person_ids)
        m = np.asarray(self.matrix, np.float32)
        if m.size == 0 and not names:
            m = m.reshape(0, m.shape[-1] if m.ndim == 2 else 0)
        if m.ndim != 2 or m.shape[0] != len(names) or len(pids) != len(names):
            raise ValueError(f"templates need matrix (T, D) with T = len(names) = len(person_ids); got "
                             f"matrix {m.shape}, {len(names)} names, {len(pids)} person ids")
        if not np.all(np.isfinite(m)):
            raise ValueError("template matrix holds NaN or infinite values; re-enroll the affected people")
        if isinstance(self.metric, ScoreFusion) and m.shape[1] not in (0, self.metric.embedding_size):
            raise ValueError(f"fused templates of {self.metric.name} have {self.metric.embedding_size} values; "
                             f"this matrix has {m.shape[1]}")
        m = np.ascontiguousarray(m)
        m.setflags(write=False)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "person_ids", pids)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "_prep", {})
        # rows grouped by person (stable), so the best template per person is one reduceat
        order = np.argsort(np.asarray(pids, np.int64), kind="stable")
        sorted_ids = np.asarray(pids, np.int64)[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if len(pids) else np.zeros(0, np.int64)
        sorted_names = np.asarray(names, dtype=str)[order] if names else np.zeros(0, str)
        counts = np.diff(np.r_[starts, len(pids)])
        clash = np.flatnonzero(np.repeat(sorted_names[starts], counts) != sorted_names)
        if len(clash):
            raise ValueError(f"person id {sorted_ids[clash[0]]} carries several names; one name per person")
        group_names = tuple(str(n) for n in sorted_names[starts])
        self._prep.update(order=order, starts=starts, group_ids=tuple(int(i) for i in sorted_ids[starts]),
                          group_names=group_names)
        self._prepared(self.metric)

    @classmethod
    def empty(cls, metric: str | ScoreFusion = "cosine", dim: int = 0) -> "TemplateGallery":
        """No one enrolled."""
        return cls((), (), np.zeros((0, dim), np.float32), metric)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def people(self) -> tuple[str, ...]:
        """Distinct names, ordered by person id."""
        return self._prep["group_names"]

    def _prepared(self, metric: str | ScoreFusion) -> np.ndarray | list:
        """The grouped matrix in the form `metric` needs, computed once and kept (for a fusion: one
        (metric, prepared slice, squared norms or None) per part)."""
        key = "m_" + (metric.name if isinstance(metric, ScoreFusion) else metric)
        if key not in self._prep:
            g = self.matrix[self._prep["order"]]
            if isinstance(metric, ScoreFusion):
                prepared = []                    # an empty TemplateGallery is never searched
                for m, part in zip(metric.metrics, metric.split(g) if len(g) else []):
                    part = np.ascontiguousarray(part)
                    prepared.append((m, np.ascontiguousarray(l2_normalize(part)), None) if m == "cosine"
                                    else (m, part, np.einsum("ij,ij->i", part, part)))
            elif metric == "cosine":
                prepared = np.ascontiguousarray(l2_normalize(g))
            elif metric == "euclidean":
                self._prep["sq_" + metric] = np.einsum("ij,ij->i", g, g)
                prepared = g
            else:
                raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
            self._prep[key] = prepared
        return self._prep[key]

    def person_scores(self, probes: np.ndarray, metric: str | ScoreFusion | None = None) -> np.ndarray:
        """Best template score per person.

        Args:
            probes: float (N, D) or (D,).
            metric: defaults to the templates'.
        Returns:
            float32 (N, P), P = len(self.people), higher = more alike.
        """
        metric = metric or self.metric
        p = np.atleast_2d(np.asarray(probes, np.float32))
        if p.ndim != 2:
            raise ValueError(f"probes must be float (N, D); got shape {np.shape(probes)}")
        if len(self) == 0:
            return np.zeros((p.shape[0], 0), np.float32)
        if p.shape[1] != self.dim:
            raise ValueError(f"probe embeddings have {p.shape[1]} dimensions but the templates have {self.dim}: "
                             f"they come from different embedders; re-enroll with the current model")
        g = self._prepared(metric)
        starts = self._prep["starts"]
        if isinstance(metric, ScoreFusion):
            parts = []
            for (m, gp, sq), pp in zip(g, metric.split(p)):
                if m == "cosine":
                    parts.append(l2_normalize(pp) @ gp.T)
                else:
                    d2 = sq[None, :] - 2.0 * (pp @ gp.T) + np.einsum("ij,ij->i", pp, pp)[:, None]
                    parts.append(-np.sqrt(np.maximum(d2, 0.0)))
            return np.maximum.reduceat(metric.combine(parts), starts, axis=1)
        if metric == "cosine":
            s = l2_normalize(p) @ g.T
            return np.maximum.reduceat(s, starts, axis=1)
        # euclidean, expanded form: |p|^2 + |g|^2 - 2 p.g ; best = smallest distance
        d2 = self._prep["sq_euclidean"][None, :] - 2.0 * (p @ g.T)
        best = np.minimum.reduceat(d2, starts, axis=1) + np.einsum("ij,ij->i", p, p)[:, None]
        return -np.sqrt(np.maximum(best, 0.0))

    def nearest(self, probes: np.ndarray, metric: str | ScoreFusion | None = None,
                threshold: float | None = None) -> list[Match]:
        """The best person for each probe.

        Args:
            probes: float (N, D) or (D,) embeddings.
            metric: defaults to the templates' metric.
            threshold: when given, a best score below it gives name None (unknown).
        Returns:
            N Match objects, in probe order.
        """
        scores = self.person_scores(probes, metric)
        n, npeople = scores.shape
        if npeople == 0:
            return [Match(None, float("-inf"), float("-inf")) for _ in range(n)]
        best = np.argmax(scores, axis=1)
        rows = np.arange(n)
        top = scores[rows, best]
        if npeople > 1:
            rest = scores.copy()
            rest[rows, best] = -np.inf
            second = rest.max(axis=1)
        else:
            second = np.full(n, -np.inf, np.float32)
        ids, names = self._prep["group_ids"], self._prep["group_names"]
        out = []
        for i in range(n):
            j = int(best[i])
            known = threshold is None or float(top[i]) >= threshold
            out.append(Match(names[j] if known else None, float(top[i]), float(second[i]),
                             ids[j] if known else None, names[j]))
        return out
