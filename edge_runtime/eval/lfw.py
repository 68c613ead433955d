"""LFW protocol: parsing pairs.txt, the 10-fold verification accuracy, TAR at a fixed FAR.

Plain numpy, so the same code scores PyTorch, fp32 ONNX and int8 ONNX models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Pair:
    """One LFW pair: two image paths relative to the lfw folder, and whether they are one person."""

    a: str
    b: str
    same: bool
    fold: int


def image_relpath(name: str, index: int) -> str:
    return f"{name}/{name}_{index:04d}.jpg"


def read_pairs(path: Path) -> list[Pair]:
    """Parse View-2 `pairs.txt` (first line: folds<TAB>pairs-per-class; then same/different lines)."""
    lines = Path(path).read_text().splitlines()
    folds, per = (int(v) for v in lines[0].split())
    rows = [ln.split("\t") for ln in lines[1:] if ln.strip()]
    if len(rows) != folds * per * 2:
        raise ValueError(f"{path}: expected {folds * per * 2} pairs, found {len(rows)}")
    pairs = []
    for i, r in enumerate(rows):
        fold = i // (2 * per)
        if len(r) == 3:
            pairs.append(Pair(image_relpath(r[0], int(r[1])), image_relpath(r[0], int(r[2])), True, fold))
        elif len(r) == 4:
            pairs.append(Pair(image_relpath(r[0], int(r[1])), image_relpath(r[2], int(r[3])), False, fold))
        else:
            raise ValueError(f"{path}: line {i + 2} has {len(r)} fields; expected 3 or 4")
    return pairs


def people_outside_pairs(lfw_dir: Path, pairs: list[Pair]) -> list[str]:
    """Names of the people who appear in no pair: the clean pool for calibration and tuning."""
    used = {p.a.split("/")[0] for p in pairs} | {p.b.split("/")[0] for p in pairs}
    return sorted(d.name for d in Path(lfw_dir).iterdir() if d.is_dir() and d.name not in used)


def fold_halves(pairs: list[Pair]) -> tuple[set[str], set[str]]:
    """(people of folds 1-5, people of folds 6-10) of pairs.txt (the folds are person-disjoint): the data
    rule of every training script and of the liveness benchmark (docs/quality.md)."""
    folds: dict[str, set[int]] = {}
    for p in pairs:
        for rel in (p.a, p.b):
            folds.setdefault(rel.split("/")[0], set()).add(p.fold)
    return ({n for n, f in folds.items() if max(f) < 5}, {n for n, f in folds.items() if min(f) >= 5})


def lfw_people(lfw_dir: str | Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(calibration, evaluation): {person: sorted relpaths of their .jpg photos} of the people in no pair
    of pairs.txt (people_outside_pairs: what calibration, score models and z-statistics are measured on)
    and of everyone in pairs.txt (what is scored). Person folders without a photo are left out; both
    dicts are in name order."""
    lfw = Path(lfw_dir)
    calib = set(people_outside_pairs(lfw, read_pairs(lfw / "pairs.txt")))
    cal, ev = {}, {}
    for d in sorted(p for p in lfw.iterdir() if p.is_dir()):
        rel = sorted(f"{d.name}/{f.name}" for f in d.iterdir() if f.suffix.lower() == ".jpg")
        if rel:
            (cal if d.name in calib else ev)[d.name] = rel
    return cal, ev


def calibration_photos(lfw_dir: str | Path) -> list[Path]:
    """Every photo of the calibration people (lfw_people's first half) as a path under `lfw_dir`, person by
    person in name order, each person's photos sorted."""
    calibration, _ = lfw_people(lfw_dir)
    return [Path(lfw_dir) / r for photos in calibration.values() for r in photos]


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold on similarity scores (higher = more alike) that maximises accuracy.

    Candidates are midpoints between consecutive sorted scores, plus both ends.
    """
    s = np.sort(np.unique(scores))
    cands = np.concatenate([[s[0] - 1e-6], (s[:-1] + s[1:]) / 2, [s[-1] + 1e-6]])
    # accuracy for every candidate in one pass: count of same >= t and different < t
    order = np.argsort(scores)
    ss, yy = scores[order], same[order]
    pos_below = np.concatenate([[0], np.cumsum(yy)])            # same pairs with score < cand
    neg_below = np.concatenate([[0], np.cumsum(~yy)])
    k = np.searchsorted(ss, cands, side="left")
    correct = (yy.sum() - pos_below[k]) + neg_below[k]
    return float(cands[int(np.argmax(correct))])


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """Standard LFW protocol: per fold, pick the threshold on the other 9 folds, apply it to this one.

    Args:
        scores: float (N,) similarity (NaN = a pair whose face was not found: counted as wrong).
        same: bool (N,). folds: int (N,).
    Returns:
        {"accuracy": mean, "std": std over folds, "fold_accuracies": [...], "thresholds": [...]}.
    """
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    valid = np.isfinite(scores)
    accs, ths = [], []
    for f in np.unique(folds):
        train = (folds != f) & valid
        t = best_threshold(scores[train], same[train])
        test = folds == f
        pred = np.where(valid[test], scores[test] >= t, ~same[test])   # a missing face is always wrong
        accs.append(float(np.mean(pred == same[test])))
        ths.append(t)
    return {"accuracy": float(np.mean(accs)), "std": float(np.std(accs)),
            "fold_accuracies": accs, "thresholds": ths}


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """True-accept rate at the smallest threshold whose false-accept rate is <= far.

    Returns (tar, threshold). Missing scores (NaN) count as rejected.
    """
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    if same.all() or not same.any():
        raise ValueError("TAR at FAR needs both same-person and different-person pairs")
    neg = np.sort(scores[~same])[::-1]
    k = int(np.floor(far * len(neg)))
    t = neg[k] + 1e-9 if k < len(neg) else -np.inf
    return float(np.mean(scores[same] >= t)), float(t)
