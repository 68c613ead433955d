"""Grouping faces into people: average-linkage agglomerative clustering on the bundle's metric, with the
rule that two faces of one photo are never the same person. Plain functions over numpy arrays.

Why average linkage: two groups merge only when the *mean* score over every pair of their faces
reaches the threshold, so one lookalike pair cannot chain two people together (what sinks DBSCAN and
single linkage), and a person's group is not split by one bad photo (what complete linkage does).

The threshold comes from the bundle's impostor score model (operating_point.ScoreModel): the score a
comparison of two different people reaches with probability `false_merge_rate`. It is a rate, not a
raw score, so it carries over to another bundle or embedder with its own model.

Scale: no all-pairs matrix. Each new face's K best neighbours at or above the threshold are found in
blocks (memory ~ block x N); average linkage then runs on that sparse candidate graph, each cluster
pair's mean score computed exactly from its members when first needed and updated by the
Lance-Williams rule after a merge (a merge needs some pair at or above the threshold, so pairs with no
candidate edge could never merge).
"""
from __future__ import annotations

import heapq

import numpy as np

from ..fusion import ScoreFusion
from ..matching import l2_normalize
from ..operating_point import ScoreModel

DEFAULT_FALSE_MERGE_RATE = 1e-5   # per comparison of two different people (see docs/photos.md)
NEIGHBOURS = 20                   # candidate edges kept per face
BLOCK_CELLS = 1 << 21             # scores computed at once when finding neighbours (float32 cells)


def linkage_threshold(model: ScoreModel, false_merge_rate: float = DEFAULT_FALSE_MERGE_RATE) -> float:
    """The mean score two groups need to merge: the impostor score exceeded with `false_merge_rate`."""
    return float(model.quantile(false_merge_rate))


def neighbour_edges(emb: np.ndarray, rows: np.ndarray, metric: str | ScoreFusion, threshold: float,
                    k: int = NEIGHBOURS, block_cells: int = BLOCK_CELLS,
                    scorer: _TileScorer | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each face of `rows`' k most similar other faces that score >= threshold.

    The scores are computed tile by tile (about `block_cells` float32 cells each, never N x N), only the
    cells at or above the threshold are kept, and each row's list is cut to its k best whenever the
    kept cells grow past a few times k per row. When `rows` is every face, only the tiles on and above
    the diagonal are computed (the score is symmetric) and each serves both of its faces.

    Args:
        emb: float32 (N, D) embeddings; rows: int (R,) indices into emb.
        scorer: emb and metric already prepared (average_linkage shares its own).
    Returns:
        (a, b, score): int64 (E,), int64 (E,), float32 (E,) with a in rows, b != a, score >= threshold,
        at most k edges per a.
    """
    n = len(emb)
    k = min(k, n - 1)
    rows = np.asarray(rows, np.int64)
    if k < 1 or len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    scorer = scorer or _TileScorer(emb, metric)
    symmetric = len(rows) == n and bool((rows == np.arange(n)).all())
    tile = max(64, int(np.sqrt(block_cells)))
    cols = min(n, max(tile, block_cells // min(tile, len(rows))))
    kept = _TopK(k, limit=max(2 * k * len(rows), 1 << 16))
    for i in range(0, len(rows), tile):
        r = rows[i:i + tile]
        for j in range(i if symmetric else 0, n, cols):
            c = np.arange(j, min(n, j + cols))
            s = scorer.raw(r, c)
            hit_r, hit_c = np.nonzero(s >= threshold - scorer.offset)
            a, b, hs = r[hit_r], c[hit_c], s[hit_r, hit_c] + np.float32(scorer.offset)
            own = a != b
            kept.add(a[own], b[own], hs[own])
            if symmetric:
                mirror = own & (b >= i + tile)        # cells below the diagonal, never computed
                kept.add(b[mirror], a[mirror], hs[mirror])
    return kept.result()


class _TileScorer:
    """The bundle's metric on tiles of faces, each part's embeddings prepared once and each part's
    z-normalisation folded into its matrix product, so a tile costs one product per part and a few
    in-place passes. `raw(r, c) + offset` is the score matching.similarity gives (the fused score for a
    ScoreFusion).

    A cosine part is kept as unit rows u: it adds scale * u_a . u_b. A euclidean part is kept as rows
    [b, 1, s^2 |b|^2] (s = its scale): it adds -sqrt([-2 s^2 a, s^2 |a|^2, 1] . [b, 1, s^2 |b|^2]) =
    -s |a - b|, the squared norms riding in the same product.
    """

    def __init__(self, emb: np.ndarray, metric: str | ScoreFusion):
        """emb: float (N, D); metric: "cosine", "euclidean" or a ScoreFusion."""
        emb = np.asarray(emb, np.float32)
        if isinstance(metric, ScoreFusion):
            parts = list(zip(metric.split(emb), metric.metrics, metric.weights, metric.means, metric.stds))
        else:
            parts = [(emb, metric, 1.0, 0.0, 1.0)]
        self.parts: list[tuple[str, np.ndarray, np.float32]] = []
        self.offset = 0.0
        for x, m, w, mu, sd in parts:
            scale = w / sd                     # this part adds scale * (similarity - mu)
            self.offset -= scale * mu
            if m == "cosine":
                self.parts.append((m, np.ascontiguousarray(l2_normalize(x)), np.float32(scale)))
            elif m == "euclidean":
                x = np.asarray(x, np.float32)
                sq = (x * x).sum(1, keepdims=True) * np.float32(scale ** 2)
                self.parts.append((m, np.hstack([x, np.ones_like(sq), sq]), np.float32(-2 * scale ** 2)))
            else:
                raise ValueError(f"unknown metric {m!r}; expected 'cosine' or 'euclidean'")

    def raw(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """float32 (len(r), len(c)): the scores of faces r (int (R,)) against faces c (int (C,)) less offset."""
        total = None
        for m, x, factor in self.parts:
            if m == "cosine":
                s = (x[r] * factor) @ x[c].T
                total = s if total is None else np.add(total, s, out=total)
                continue
            d = x.shape[1] - 2
            left = x[r][:, [*range(d), d + 1, d]]          # [a, s^2 |a|^2, 1]
            left[:, :d] *= factor
            s = left @ x[c].T                              # s^2 |a - b|^2
            np.maximum(s, 0, out=s)
            np.sqrt(s, out=s)
            total = np.negative(s, out=s) if total is None else np.subtract(total, s, out=total)
        return total

    def mean(self, a: list[int], b: list[int]) -> float:
        """Mean score over every pair of faces of index lists a and b."""
        return float(self.raw(np.asarray(a), np.asarray(b)).mean(dtype=np.float64) + self.offset)


class _TopK:
    """Edges (a, b, score) collected in pieces, each a's list cut to its k best once `limit` are held."""

    def __init__(self, k: int, limit: int):
        self.k, self.limit, self.held = k, limit, 0
        self.pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> None:
        """a, b: int (E,); s: float32 (E,)."""
        if len(a):
            self.pieces.append((a.astype(np.int32), b.astype(np.int32), s.astype(np.float32)))
            self.held += len(a)
        if self.held > self.limit:
            self.pieces = [self.result()]
            self.held = len(self.pieces[0][0])

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, score): int64 (E,), int64 (E,), float32 (E,), at most k per a, best first per a."""
        if not self.pieces:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        a, b, s = (np.concatenate(p) for p in zip(*self.pieces))
        order = np.lexsort((b, -s, a))
        a, b, s = a[order], b[order], s[order]
        start = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        rank = np.arange(len(a)) - np.repeat(start, np.diff(np.r_[start, len(a)]))
        keep = rank < self.k
        return a[keep].astype(np.int64), b[keep].astype(np.int64), s[keep]


def average_linkage(emb: np.ndarray, photo_ids: np.ndarray, initial: np.ndarray, metric: str | ScoreFusion,
                    threshold: float, k: int = NEIGHBOURS) -> np.ndarray:
    """Cluster faces, keeping the groups that already exist.

    Args:
        emb: float32 (N, D) embeddings.
        photo_ids: int (N,) photo of each face: faces of one photo never share a cluster.
        initial: int (N,) existing group of each face (>= 0; kept whole, never merged with another
            existing group, new faces may join it), -1 for a face to place.
        threshold: mean pair score at or above which two clusters merge.
    Returns:
        int64 (N,) labels: existing faces keep theirs, new groups are numbered from initial.max() + 1.
    """
    initial = np.asarray(initial, np.int64)
    state = _State(emb, photo_ids, initial, metric)
    a, b, s = neighbour_edges(emb, np.flatnonzero(initial < 0), metric, threshold, k, scorer=state.scorer)
    cluster_of = state.cluster_of.tolist()     # one int object per cluster, shared by its edges and heap entries
    for i, j, score in zip(a.tolist(), b.tolist(), s.tolist()):
        state.add_edge(cluster_of[i], cluster_of[j], score)
    state.run(threshold)
    return state.labels(initial)


class _State:
    """Clusters (member lists, photo sets), the candidate graph with exact mean scores, the merge heap."""

    def __init__(self, emb, photo_ids, initial, metric):
        self.emb, self.metric, self.scorer = emb, metric, _TileScorer(emb, metric)
        existing = np.unique(initial[initial >= 0])
        self.cluster_of = np.empty(len(emb), np.int64)
        self.members: dict[int, list[int]] = {}
        self.frozen: dict[int, int] = {}          # cluster -> existing label it carries
        for c, label in enumerate(existing.tolist()):
            self.members[c], self.frozen[c] = np.flatnonzero(initial == label).tolist(), label
        for i in np.flatnonzero(initial < 0).tolist():
            self.members[len(self.members)] = [i]
        for c, m in self.members.items():
            self.cluster_of[m] = c
        self.photos = {c: set(np.asarray(photo_ids)[m].tolist()) for c, m in self.members.items()}
        self.nbr: dict[int, dict[int, float]] = {c: {} for c in self.members}
        self.version = dict.fromkeys(self.members, 0)
        self.heap: list = []

    def mean_score(self, a: list[int], b: list[int]) -> float:
        """Mean score over every pair of faces of member lists a and b."""
        return self.scorer.mean(a, b)

    def add_edge(self, a: int, b: int, score: float) -> None:
        """A candidate edge between clusters a and b (its exact mean score when either holds several faces)."""
        if a == b or b in self.nbr[a] or (a in self.frozen and b in self.frozen):
            return
        if len(self.members[a]) > 1 or len(self.members[b]) > 1:
            score = self.mean_score(self.members[a], self.members[b])
        self._set(a, b, score)

    def _set(self, a: int, b: int, score: float) -> None:
        self.nbr[a][b] = self.nbr[b][a] = score
        heapq.heappush(self.heap, (-score, a, b, self.version[a], self.version[b]))

    def run(self, threshold: float) -> None:
        """Merge the best pair while its mean score reaches `threshold` (stale heap entries skipped)."""
        while self.heap:
            neg, a, b, va, vb = heapq.heappop(self.heap)
            if -neg < threshold:
                break
            if a not in self.members or b not in self.members or (va, vb) != (self.version[a], self.version[b]):
                continue
            if self.photos[a] & self.photos[b]:
                continue          # cannot-link: the two clusters share a photo
            self.merge(a, b)

    def merge(self, a: int, b: int) -> None:
        """Merge the smaller-ranked cluster into the one that survives (an existing group always does)."""
        if b in self.frozen or (a not in self.frozen and len(self.members[b]) > len(self.members[a])):
            a, b = b, a
        mem_a, mem_b = self.members[a], self.members.pop(b)
        na, nb = len(mem_a), len(mem_b)
        na_nbr, nb_nbr = self.nbr.pop(a), self.nbr.pop(b)
        self.photos[a] |= self.photos.pop(b)
        self.version[a] += 1
        self.nbr[a] = {}
        others = sorted((set(na_nbr) | set(nb_nbr)) - {a, b})
        for c in others:
            self.nbr[c].pop(a, None)
            self.nbr[c].pop(b, None)
        others = [c for c in others if not (a in self.frozen and c in self.frozen)]
        # Lance-Williams for average linkage; a side with no edge to c is measured (the small one, mostly)
        for c, sa, sb in zip(others, self.side_means(mem_a, na_nbr, others), self.side_means(mem_b, nb_nbr, others)):
            self._set(a, c, (na * sa + nb * sb) / (na + nb))
        self.members[a] = mem_a + mem_b

    def side_means(self, mem: list[int], known: dict[int, float], clusters: list[int]) -> list[float]:
        """Mean score of faces `mem` with each cluster of `clusters`: from `known` where there, the others
        measured in one product (their members side by side, then a sum per cluster)."""
        missing = [c for c in clusters if c not in known]
        if not missing:
            return [known[c] for c in clusters]
        sizes = np.array([len(self.members[c]) for c in missing])
        cols = np.fromiter((i for c in missing for i in self.members[c]), np.int64, int(sizes.sum()))
        sums = np.add.reduceat(self.scorer.raw(np.asarray(mem), cols).sum(0, dtype=np.float64),
                               np.r_[0, np.cumsum(sizes)[:-1]])
        measured = dict(zip(missing, (sums / (sizes * len(mem)) + self.scorer.offset).tolist()))
        return [known[c] if c in known else measured[c] for c in clusters]

    def labels(self, initial: np.ndarray) -> np.ndarray:
        """int64 (N,) labels: existing groups keep theirs, new ones numbered on from initial.max() + 1."""
        out = np.empty(len(self.emb), np.int64)
        nxt = int(initial.max(initial=-1)) + 1
        for c in sorted(self.members, key=lambda c: min(self.members[c])):
            if c in self.frozen:
                out[self.members[c]] = self.frozen[c]
            else:
                out[self.members[c]] = nxt
                nxt += 1
        return out
