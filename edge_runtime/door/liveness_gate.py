"""The door's side of liveness: whether a frame's face counts as live, and the one line that says
whether liveness is checked at all (door start, `facegate doctor`, the admin settings page)."""
from __future__ import annotations

import math

NO_LIVENESS_MODEL = "liveness: off — this bundle has no liveness model; see README"


def frame_live(liveness: float | None, threshold: float | None) -> bool | None:
    """Whether a face with liveness score `liveness` (probability real, 0..1) is judged live at
    `threshold`: True at or above it, False below it (a presentation attack is suspected), None when
    it was not checked (no score or no threshold). A score that is not a finite number is False
    (fail-secure: a broken liveness model never helps to open the door)."""
    if liveness is None or threshold is None:
        return None
    liveness = float(liveness)
    return math.isfinite(liveness) and liveness >= threshold


def liveness_line(on: bool, threshold: float | None = None, has_model: bool = False) -> str:
    """"liveness: on (threshold 0.50)" when the faces are checked; otherwise why not: the bundle has no
    liveness model (NO_LIVENESS_MODEL), or it has one and [liveness] enabled = false."""
    if on:
        return f"liveness: on (threshold {threshold:.2f})"
    if has_model:
        return "liveness: off — disabled by [liveness] enabled = false in the config"
    return NO_LIVENESS_MODEL
