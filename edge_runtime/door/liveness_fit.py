"""Setting `[liveness] threshold` on the door's own camera: the liveness scores of real people's faces
depend on the camera, its light and its distance (a fine-tuned model moves them more: docs/liveness.md), so
the threshold is best read off real frames of the door's camera: the one that refuses at most a share
`bpcer` of them (BPCER, ISO/IEC 30107-3). Torch-free; `facegate fit-liveness` is its command."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..recognizer import Recognizer, door_candidate
from .liveness_gate import frame_live


def threshold_at_bpcer(bona_fide, bpcer: float = 0.05) -> float:
    """The highest threshold whose BPCER on these bona fide scores (float (N,)) is <= bpcer: a presentation is
    bona fide when score >= threshold, so at most floor(bpcer * N) scores may lie below it."""
    s = np.sort(np.asarray(bona_fide, np.float64))
    if s.size == 0:
        raise ValueError("no bona fide scores to set a threshold on")
    return float(s[int(np.floor(bpcer * s.size))])


def min_frames(bpcer: float) -> int:
    """The fewest scored frames for which a BPCER of `bpcer` allows at least one refused frame."""
    return math.ceil(1.0 / bpcer)


@dataclass(frozen=True)
class LivenessFit:
    """scores: float (N,) liveness of the door's face in each scored frame; threshold: threshold_at_bpcer of
    them; frames: frames read; configured: the config's threshold and the share of the scores below it."""

    scores: np.ndarray
    bpcer: float
    threshold: float
    frames: int
    configured: float

    @property
    def refused_at_configured(self) -> float:
        """Share of the real frames the configured threshold judges attacks (its BPCER on this camera)."""
        return float(np.mean([not frame_live(s, self.configured) for s in self.scores]))

    def summary(self) -> dict:
        q = np.quantile(self.scores, [0.0, 0.05, 0.5, 1.0]) if self.scores.size else [math.nan] * 4
        return {"threshold": round(self.threshold, 4), "bpcer": self.bpcer, "frames_read": self.frames,
                "frames_scored": int(self.scores.size), "configured_threshold": self.configured,
                "bpcer_at_configured": round(self.refused_at_configured, 4),
                "score_quantiles": {k: round(float(v), 4) for k, v in zip(("min", "q05", "median", "max"), q)}}


def fit_liveness(recognizer: Recognizer, frames: Iterable[np.ndarray], max_frames: int, bpcer: float) -> LivenessFit:
    """Score the door's face (the largest usable one) in up to `max_frames` frames (RGB uint8 (H, W, 3)) that
    have one, and the threshold giving BPCER `bpcer` on them. Every face shown must be a real person.
    Raises ValueError when liveness is not checked (no liveness model, or [liveness] enabled = false) or
    fewer than min_frames(bpcer) frames had a usable face."""
    if not recognizer.liveness_on:
        raise ValueError("liveness is not checked: the bundle has no liveness model or [liveness] enabled = false "
                         "(docs/liveness.md)")
    if not 0.0 < bpcer < 1.0:
        raise ValueError(f"bpcer must be between 0 and 1, not {bpcer}")
    scores, read = [], 0
    for frame in frames:
        read += 1
        face = door_candidate(recognizer.analyze(frame, live=True))
        if face is not None and face.liveness is not None and math.isfinite(face.liveness):
            scores.append(face.liveness)
            if len(scores) >= max_frames:
                break
    if len(scores) < min_frames(bpcer):
        raise ValueError(f"only {len(scores)} of {read} frames had a usable face; BPCER {bpcer:g} needs at least "
                         f"{min_frames(bpcer)} (more frames, or a person nearer the camera)")
    s = np.asarray(scores, np.float64)
    return LivenessFit(s, bpcer, threshold_at_bpcer(s, bpcer), read, recognizer.config.liveness.threshold)
