"""What the door tests share: a relay whose driver faults, a store with one person enrolled, waiting for
something another thread or process does."""
from __future__ import annotations

import time
import types

import numpy as np

from facegate.edge_runtime.store import Store


class FaultyRelay:
    """gpiozero.OutputDevice whose on() raises (a relay driver fault); `value` 0 = locked.
    `FaultyRelay.last` is the most recent instance."""

    last = None

    def __init__(self, pin, active_high=True, initial_value=False):
        self.value = 1 if initial_value else 0
        FaultyRelay.last = self

    def on(self):
        raise OSError("relay driver fault")

    def off(self):
        self.value = 0

    def close(self):
        pass


class NoFaceRecognizer:
    """A Recognizer stand-in that sees no face in any frame (the door loop's work without models; liveness off)."""

    liveness_on = False

    def __init__(self, bundle_id: str = "fake-bundle"):
        self.bundle = types.SimpleNamespace(id=bundle_id, metric="cosine", liveness=None)
        self.templates = None
        self.operating = types.SimpleNamespace(describe=lambda: "fake operating point")

    def analyze(self, frame, live=True):
        return []


def store_with_ana(path, busy_timeout_ms: int = 200) -> Store:
    """A store at `path` whose writes give up after `busy_timeout_ms` of another process's lock, with
    "Ana" enrolled (one 4-value template of a fake bundle)."""
    s = Store(path, busy_timeout_ms=busy_timeout_ms)
    s.enroll("Ana", np.ones((1, 4), np.float32), "fake-bundle", "fake")
    return s


def wait_until(cond, timeout: float = 3.0, step: float = 0.01) -> bool:
    """Poll `cond()` every `step` s until it is true or `timeout` s passed; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()
