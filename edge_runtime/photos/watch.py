"""`facegate photos watch`: keep the library up to date by running the incremental scan again and again.

Polling, not file-system events: a scan of unchanged photos only stats them, it needs no extra
library, and it works the same on network shares and SD cards where inotify misses changes. New photos
appear within one interval.
"""
from __future__ import annotations

import threading
from typing import Callable

DEFAULT_INTERVAL_S = 30.0


def watch(scan_once: Callable[[], object], interval_s: float = DEFAULT_INTERVAL_S,
          stop: threading.Event | None = None, rounds: int | None = None) -> int:
    """Call `scan_once()` now and then every `interval_s` seconds until `stop` is set or `rounds` ran.

    Returns the number of rounds run. Errors of `scan_once` propagate (ScanBusyError included).
    """
    if interval_s <= 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval_s}")
    stop = stop or threading.Event()
    done = 0
    while not stop.is_set() and (rounds is None or done < rounds):
        scan_once()
        done += 1
        if rounds is not None and done >= rounds:
            break
        stop.wait(interval_s)
    return done
