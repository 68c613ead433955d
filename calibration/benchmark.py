"""fp32 vs int8 measurements: file size, CPU latency per call, output drift on real inputs.

Latency is measured round-robin over the models (a few calls of each in turn, many rounds), so a
noisy shared machine slows every model alike; the median and the 10th percentile per call are given.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from facegate.edge_runtime.sessions import open_session


def latency_ms(paths: dict[str, str | Path], x: np.ndarray, threads: int = 1, rounds: int = 30,
               calls_per_round: int = 5, warmup: int = 5, settle_s: float = 0.05) -> dict[str, dict[str, float]]:
    """{name: {"median": ms, "p10": ms}} per call of each model on input `x`, interleaved.

    Each session has its own thread pool (sessions.open_session), whose threads spin for a while after
    a run; the loop sleeps `settle_s` before switching models so that spinning does not steal the cores
    of the next model's pool (without the pause the next model measures markedly slower)."""
    sessions = {k: open_session(p, threads) for k, p in paths.items()}
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(warmup):
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            time.sleep(settle_s)
            for _ in range(calls_per_round):
                t = time.perf_counter()
                s.run(None, feeds[k])
                times[k].append((time.perf_counter() - t) * 1e3)
    return {k: {"median": float(np.median(v)), "p10": float(np.percentile(v, 10))} for k, v in times.items()}


def outputs(path: str | Path, inputs: Sequence[np.ndarray], threads: int = 2) -> list[list[np.ndarray]]:
    """Every output of the model for each input (batch-1 arrays fed one at a time)."""
    s = open_session(path, threads)
    name = s.get_inputs()[0].name
    return [s.run(None, {name: x}) for x in inputs]


def embedding_drift(ref: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Cosine (min, mean) and max abs difference between two (N, D) embedding sets, plus the
    max abs difference relative to the reference's largest magnitude."""
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    cos = np.sum(ref * test, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(test, axis=1)
    d = np.abs(ref - test)
    return {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "max_abs": float(d.max()),
            "max_abs_rel": float(d.max() / np.abs(ref).max())}


def file_mb(path: str | Path) -> float:
    return Path(path).stat().st_size / 2**20
