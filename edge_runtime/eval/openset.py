"""Open-set 1:N identification on LFW, as a door sees it: FNIR at a fixed FPIR, and score fusion.

Protocol (`openset_relpaths`): every person with >= 2 photos enrols their first photo (by file
name) and probes with the others (mated searches); every person with exactly 1 photo is never
enrolled and their photo is a non-mated search (an impostor at the door).

A search's score is its best similarity over the enrolled photos. A mated search is a hit at threshold t
when its top candidate is the right person and the score is >= t. FPIR(t) = fraction of non-mated
searches with score >= t; FNIR(t) = fraction of mated searches that are not hits at t.

Missing faces (the detector found none):
- a mated probe without a face is a miss at every threshold;
- a non-mated probe without a face is correctly rejected at every threshold (it stays in the count);
- an enrolment photo without a face: that person is not enrolled, so all their mated probes are
  misses (they can never be the top candidate); they stay in the mated count.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fusion import fuse_scores
from ..matching import similarity


def person(relpath: str) -> str:
    """'Name/Name_0001.jpg' -> 'Name'."""
    return relpath.split("/")[0]


def openset_relpaths(lfw_dir: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(enrol, mated, nonmated) relpaths under the LFW folder, following the module's protocol."""
    enrol, mated, nonmated = [], [], []
    for d in sorted(p for p in Path(lfw_dir).iterdir() if p.is_dir()):
        files = sorted(f.name for f in d.iterdir() if f.suffix.lower() == ".jpg")
        rel = [f"{d.name}/{f}" for f in files]
        if len(rel) >= 2:
            enrol.append(rel[0])
            mated.extend(rel[1:])
        elif len(rel) == 1:
            nonmated.append(rel[0])
    return enrol, mated, nonmated


@dataclass(frozen=True)
class Searches:
    """A batch of 1:N searches.

    scores: float32 (P, G) similarity of every probe to every enrolled template (higher = more
        alike); a row of NaN = probe without a face. probe_ids: str (P,) the probe's person.
    enrolled_ids: str (G,) enrolled people. mated: bool (P,) the probe's person should be enrolled.
    """

    scores: np.ndarray
    probe_ids: np.ndarray
    enrolled_ids: np.ndarray
    mated: np.ndarray

    def with_scores(self, scores: np.ndarray) -> "Searches":
        return Searches(np.asarray(scores, np.float32), self.probe_ids, self.enrolled_ids, self.mated)


def build_searches(embeddings: dict, enrol: list[str], mated: list[str], nonmated: list[str],
                   metric: str) -> Searches:
    """Score every probe against the enrolled photos.

    Args:
        embeddings: {relpath: float (D,)}; relpaths without a face are simply absent.
        enrol, mated, nonmated: from `openset_relpaths` (or a subset of it).
        metric: "cosine" or "euclidean" (see matching.similarity).
    """
    enrolled = [r for r in enrol if r in embeddings]
    probes = list(mated) + list(nonmated)
    have = np.array([r in embeddings for r in probes], bool)
    dim = len(next(iter(embeddings.values()))) if embeddings else 0
    scores = np.full((len(probes), len(enrolled)), np.nan, np.float32)
    if enrolled and have.any():
        g = np.stack([embeddings[r] for r in enrolled])
        p = np.stack([embeddings[r] for r, h in zip(probes, have) if h]).reshape(-1, dim)
        scores[have] = similarity(p, g, metric)
    return Searches(scores, np.array([person(r) for r in probes]), np.array([person(r) for r in enrolled]),
                    np.arange(len(probes)) < len(mated))


def best_candidates(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float (P, G) -> (float64 (P,) best score, -inf where no face/nobody enrolled; int64 (P,) argmax)."""
    s = np.where(np.isnan(scores), -np.inf, scores).astype(np.float64)
    if s.shape[1] == 0:
        return np.full(s.shape[0], -np.inf), np.zeros(s.shape[0], np.int64)
    top = np.argmax(s, axis=1)
    return s[np.arange(len(s)), top], top


def threshold_at_fpir(nonmated_best: np.ndarray, fpir: float) -> float:
    """Smallest threshold t with FPIR(t) = mean(nonmated_best >= t) <= fpir (ties fall below t)."""
    v = np.sort(np.asarray(nonmated_best, np.float64))[::-1]
    k = int(np.floor(fpir * len(v) + 1e-9))
    return float(np.nextafter(v[k], np.inf)) if k < len(v) else float("-inf")


def fnir_fpir(searches: Searches, threshold: float) -> tuple[float, float]:
    """(FNIR, FPIR) at one threshold."""
    best, top = best_candidates(searches.scores)
    m = searches.mated
    if len(searches.enrolled_ids):
        right = searches.enrolled_ids[top] == searches.probe_ids
    else:
        right = np.zeros(len(m), bool)
    passed = np.isfinite(best) & (best >= threshold)        # a search without a face never passes
    hit = right & passed
    fnir = float(1 - hit[m].mean()) if m.any() else float("nan")
    fpir = float(passed[~m].mean()) if (~m).any() else float("nan")
    return fnir, fpir


def det_curve(searches: Searches) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR), float64 (K,) each, at every threshold just above a non-mated search's best score,
    from the strictest (FPIR 0) down; the points of a DET plot."""
    best, top = best_candidates(searches.scores)
    m = searches.mated
    right = (searches.enrolled_ids[top] == searches.probe_ids) if len(searches.enrolled_ids) else np.zeros(len(m), bool)
    imp = np.sort(best[~m])[::-1]
    imp = imp[np.isfinite(imp)]
    hits = np.sort(best[m & right & np.isfinite(best)])
    ts = np.nextafter(imp, np.inf)
    fpir = np.arange(len(imp)) / max(int((~m).sum()), 1)
    fnir = 1 - (len(hits) - np.searchsorted(hits, ts, side="left")) / max(int(m.sum()), 1)
    return fpir, fnir


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str = "open-set 1:N on LFW") -> None:
    """Save DET curves (FNIR vs FPIR, both log) of {label: det_curve(...)} as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    for label, (fpir, fnir) in curves.items():
        keep = fpir > 0
        ax.plot(fpir[keep], np.maximum(fnir[keep], 1e-4), label=label)
    for x in (1e-3, 1e-2):
        ax.axvline(x, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (never-enrolled people accepted)")
    ax.set_ylabel("FNIR (enrolled people missed)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_openset(searches: Searches, fpirs=(0.01, 0.001)) -> dict:
    """FNIR at each target FPIR, with the thresholds and counts.

    Returns:
        {"mated": n, "nonmated": n, "enrolled": n, "mated_without_face": n, "nonmated_without_face": n,
         "rank1": fraction of mated searches whose top candidate is right (FNIR at t = -inf),
         "at_fpir": {"0.01": {"fnir", "fpir" (achieved), "threshold"}, ...}}
    """
    best, _ = best_candidates(searches.scores)
    m = searches.mated
    noface = np.isnan(searches.scores).all(axis=1) if searches.scores.shape[1] else np.ones(len(m), bool)
    report = {"mated": int(m.sum()), "nonmated": int((~m).sum()), "enrolled": len(searches.enrolled_ids),
              "mated_without_face": int((noface & m).sum()), "nonmated_without_face": int((noface & ~m).sum()),
              "rank1": 1 - fnir_fpir(searches, float("-inf"))[0], "at_fpir": {}}
    for f in fpirs:
        t = threshold_at_fpir(best[~m], f)
        fnir, fpir = fnir_fpir(searches, t)
        report["at_fpir"][f"{f:g}"] = {"fnir": fnir, "fpir": fpir, "threshold": t}
    return report


def subset(searches: Searches, people: set[str]) -> Searches:
    """The searches of `people` against enrolled photos of only `people` (an independent half-split)."""
    rows = np.isin(searches.probe_ids, list(people))
    cols = np.isin(searches.enrolled_ids, list(people))
    return Searches(searches.scores[np.ix_(rows, cols)], searches.probe_ids[rows], searches.enrolled_ids[cols],
                    searches.mated[rows])


def split_people(searches: Searches) -> tuple[set[str], set[str]]:
    """(people at even, people at odd positions) of the sorted list of everyone in `searches`."""
    everyone = sorted(set(searches.probe_ids) | set(searches.enrolled_ids))
    return set(everyone[0::2]), set(everyone[1::2])


def znorm_stats(searches: Searches, reference: str = "nonmated") -> tuple[float, float]:
    """(mean, std) of the scores used to z-normalise a matrix.

    reference: "nonmated" = every enrolled-photo score of the non-mated searches (impostor comparisons);
        "all" = every finite score in the matrix.
    """
    s = searches.scores[~searches.mated] if reference == "nonmated" else searches.scores
    s = s[np.isfinite(s)].astype(np.float64)
    if s.size < 2:
        raise ValueError("too few scores to z-normalise")
    return float(s.mean()), float(max(s.std(), 1e-12))


def fuse(a: Searches, b: Searches, w: float, stats_a: tuple[float, float],
         stats_b: tuple[float, float]) -> Searches:
    """w * z(a) + (1 - w) * z(b), with z(x) = (x - mean) / std from each side's stats.

    a and b must hold the same probes and enrolled photos in the same order (one detector, two embedders).
    """
    if not (np.array_equal(a.probe_ids, b.probe_ids) and np.array_equal(a.enrolled_ids, b.enrolled_ids)):
        raise ValueError("fusion needs both score matrices over the same probes and enrolled photos")
    return a.with_scores(fuse_scores((a.scores, b.scores), (w, 1 - w), (stats_a[0], stats_b[0]),
                                     (stats_a[1], stats_b[1])))


def pair_scores(table: dict, relpaths: list[str], metric) -> tuple[np.ndarray, np.ndarray]:
    """(impostor, genuine): float64 similarities of every unordered pair of images of different people,
    and of the same person, among `relpaths` (labelled by their folder).

    table: {relpath: float32 (D,)}; relpaths without an embedding are skipped. metric: as in
    matching.similarity."""
    rels = [r for r in relpaths if r in table]
    if len(rels) < 2:
        raise ValueError("need at least two embedded images to compare")
    x = np.stack([table[r] for r in rels])
    s = similarity(x, x, metric).astype(np.float64)
    who = np.array([person(r) for r in rels])
    diff = who[:, None] != who[None, :]
    upper = np.triu(np.ones_like(diff), k=1)
    return s[diff & upper], s[~diff & upper]


def impostor_stats(table: dict, relpaths: list[str], metric: str) -> tuple[float, float, int]:
    """(mean, std, count) of the similarities of every pair of different people among `relpaths`
    (the z-normalisation a bundle's fusion ships: it needs no enrolled photos, only labelled images).

    table: {relpath: float32 (D,)}; relpaths without an embedding are skipped."""
    v, _ = pair_scores(table, relpaths, metric)
    if v.size < 2:
        raise ValueError("need images of at least two people for impostor statistics")
    return float(v.mean()), float(max(v.std(), 1e-12)), int(v.size)


def fnir_at(searches: Searches, fpir: float) -> float:
    """FNIR at the threshold that gives `fpir` on these searches' non-mated searches."""
    best, _ = best_candidates(searches.scores)
    return fnir_fpir(searches, threshold_at_fpir(best[~searches.mated], fpir))[0]


def pick_fusion_weight(a: Searches, b: Searches, fpir: float = 0.01, weights=None,
                       reference: str = "nonmated", stats=None) -> tuple[float, dict[float, float]]:
    """The weight w in `weights` (default 0, 0.05, ..., 1) minimising FNIR at `fpir` on these searches.

    stats: ((mean, std) of a, (mean, std) of b) for the z-normalisation; None = taken from these
    searches (`znorm_stats` with `reference`). Returns (w, {w: fnir}); ties go to the w closest to 0.5.
    """
    weights = np.round(np.linspace(0, 1, 21), 4) if weights is None else np.asarray(weights, float)
    sa, sb = stats if stats is not None else (znorm_stats(a, reference), znorm_stats(b, reference))
    table = {float(w): fnir_at(fuse(a, b, float(w), sa, sb), fpir) for w in weights}
    low = min(table.values())
    w = min((k for k, v in table.items() if v == low), key=lambda k: abs(k - 0.5))
    return w, table


def fusion_report(a: Searches, b: Searches, fpirs=(0.01, 0.001), reference: str = "nonmated",
                  stats=None) -> dict:
    """Two-fold check of fusion: pick w (at the first FPIR) on the even-position people, evaluate a, b
    and the fusion on the odd-position people, and the other way round.

    stats: fixed ((mean, std) of a, (mean, std) of b), e.g. a bundle's; None = z-stats of the tuning half.
    Returns:
        {"even->odd": {"w", "weights": {w: fnir}, "a": report, "b": report, "fused": report},
         "odd->even": {...}}, each report from evaluate_openset on the held-out half.
    """
    even, odd = split_people(a)
    out = {}
    for name, tune, test in (("even->odd", even, odd), ("odd->even", odd, even)):
        ta, tb = subset(a, tune), subset(b, tune)
        st = stats if stats is not None else (znorm_stats(ta, reference), znorm_stats(tb, reference))
        w, table = pick_fusion_weight(ta, tb, fpirs[0], stats=st)
        ea, eb = subset(a, test), subset(b, test)
        fused = fuse(ea, eb, w, *st)
        out[name] = {"w": w, "weights": table, "a": evaluate_openset(ea, fpirs),
                     "b": evaluate_openset(eb, fpirs), "fused": evaluate_openset(fused, fpirs)}
    return out
