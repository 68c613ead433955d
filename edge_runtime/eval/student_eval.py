"""Scoring the distilled student against its teacher on LFW people never seen in training.

Held out: folds 6-10 of pairs.txt (fold indices 5-9) and the people in them (quality_data.split_people
"first" trains on the others). Two measures, each from a {relpath: embedding} table:

- pair accuracy: the LFW 10-fold protocol restricted to folds 6-10 (each of the 5 folds scored with
  the threshold chosen on the other 4; lfw.ten_fold_accuracy), plus TAR at FAR 1e-3;
- open-set 1:N (openset.py's protocol on the held-out people only): each held-out person with >= 2
  photos enrols the first and probes with the others, each with 1 photo is a non-mated search;
  FNIR at FPIR 1% and 0.1%.

Plain numpy (no torch): the tables come from PyTorch, fp32 or int8 ONNX models alike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .lfw import Pair, read_pairs
from .lfw_eval import pair_report
from .openset import build_searches, evaluate_openset

HELD_OUT_FOLDS = (5, 10)           # fold indices [5, 10): folds 6-10 of pairs.txt


def heldout_pairs(lfw_dir: Path, limit_per_fold: int | None = None) -> list[Pair]:
    """The pairs of folds 6-10 (limit_per_fold: only the first N same and N different pairs of each fold)."""
    pairs = [p for p in read_pairs(Path(lfw_dir) / "pairs.txt") if HELD_OUT_FOLDS[0] <= p.fold < HELD_OUT_FOLDS[1]]
    if limit_per_fold:
        pairs = [p for i, p in enumerate(pairs) if i % 300 < limit_per_fold]
    return pairs


def pair_accuracy(table: dict, pairs: list[Pair]) -> dict:
    """lfw_eval.scores_report of `pairs` (cosine) from {relpath: float32 (D,)}: "accuracy", "std",
    "tar_at_far_0.001", ... A pair with a photo missing from the table counts as wrong."""
    return pair_report(pairs, table, "cosine")[0]


def openset_heldout(table: dict, people: dict[str, list[str]], fpirs=(0.01, 0.001)) -> dict:
    """openset.evaluate_openset over the held-out `people` ({person: sorted relpaths}): enrol each
    multi-photo person's first photo, probe with the rest; one-photo people are non-mated searches."""
    enrol, mated, nonmated = [], [], []
    for name in sorted(people):
        rel = sorted(people[name])
        if len(rel) >= 2:
            enrol.append(rel[0])
            mated.extend(rel[1:])
        else:
            nonmated.extend(rel)
    return evaluate_openset(build_searches(table, enrol, mated, nonmated, "cosine"), fpirs)


def agreement(student: np.ndarray, teacher: np.ndarray) -> float:
    """Mean cosine between matching rows of two float (N, D) embedding sets (1 = the student reproduces
    the teacher's directions exactly)."""
    a = student / np.linalg.norm(student, axis=1, keepdims=True)
    b = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    return float(np.mean(np.sum(a * b, axis=1)))


def markdown(report: dict) -> str:
    """The student-vs-teacher table of `student_train.evaluate_final`'s report, as Markdown."""
    lines = ["| model | precision | params | file MB | pair accuracy (folds 6-10) | TAR @ FAR 1e-3 | "
             "FNIR @ FPIR 1% | FNIR @ FPIR 0.1% | rank-1 | embed ms (batch 1, 2 threads) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["models"].items():
        p, o = r["pairs"], r["openset"]
        ms = r.get("latency_ms")
        lines.append(f"| {name} | {r['precision']} | {r.get('params') or '-'} | {r['file_mb']:.2f} | "
                     f"{p['accuracy'] * 100:.2f} ± {p['std'] * 100:.2f} | {p['tar_at_far_0.001'] * 100:.2f} | "
                     f"{o['at_fpir']['0.01']['fnir'] * 100:.2f} | {o['at_fpir']['0.001']['fnir'] * 100:.2f} | "
                     f"{o['rank1'] * 100:.2f} | {'-' if ms is None else f'{ms:.2f}'} |")
    return "\n".join(lines) + "\n"
