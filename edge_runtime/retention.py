"""Retention: how long audit rows are kept, applied by the running door at start and once a day.

The event files rotate and age out on their own (event_log.py); the audit rows in the store are
removed by `Store.prune_audit`, queued through the door's AuditWriter so the frame loop never waits.
"""
from __future__ import annotations

import time
from typing import Callable

DAY_S = 86400.0


def cutoff(keep_days: float, now: float) -> float:
    """The Unix time before which rows are older than `keep_days` days at Unix time `now`."""
    if keep_days <= 0:
        raise ValueError(f"keep_days must be positive, got {keep_days!r}")
    return now - keep_days * DAY_S


class Every:
    """A cheap timer for a loop: `due()` is True the first time, then once per `period_s` seconds.

    Args:
        period_s: seconds between two due checks (a day for retention).
        clock: monotonic seconds (time.monotonic); injectable for tests.
    """

    def __init__(self, period_s: float = DAY_S, clock: Callable[[], float] = time.monotonic):
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s!r}")
        self.period_s, self._clock, self._next = float(period_s), clock, None

    def due(self) -> bool:
        now = self._clock()
        if self._next is not None and now < self._next:
            return False
        self._next = now + self.period_s
        return True
