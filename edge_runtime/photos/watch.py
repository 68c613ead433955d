"""`facegate photos watch`: keep the library up to date as photos arrive.

Two ways, both explicit:

- `follow` (the default): file-system events from watchdog (pip install 'facegate[watch]'; inotify on
  Linux) trigger the incremental scan of just the changed paths. Debounced: a burst of new files becomes
  one scan once no event has come for `debounce_s` (or a path has waited `max_wait_s`), and a file is
  scanned only when its size and mtime stayed the same for `debounce_s` (a file still being copied
  waits). A deleted or moved-away photo makes its folder be scanned (the scan drops what is gone). The
  roots are scanned in full once at the start, to catch up on what changed while nobody watched.
- `poll` (`--poll SECONDS`): the incremental scan of the roots again and again. An unchanged photo costs
  one stat; it sees changes that inotify misses (network shares, SD cards swapped under a mount).

watchdog is imported only inside `follow` (device code; optional library).
"""
from __future__ import annotations

import importlib.util
import os
import stat
import threading
import time
from typing import Callable

from ..errors import FacegateError
from .lock import ScanBusyError
from .walk import photo_suffixes

DEFAULT_INTERVAL_S = 30.0      # --poll default
DEFAULT_DEBOUNCE_S = 2.0       # quiet time before a burst is scanned, and how long a file must not change
MAX_WAIT_S = 60.0              # a path waits at most this long for the whole folder to go quiet
OPEN_WAIT_S = 60.0             # a file left open for writing but unchanged this long is scanned anyway
INSTALL_HINT = "pip install 'facegate[watch]'"


class WatchUnavailable(FacegateError):
    """File events were asked for and watchdog is not installed."""


def watchdog_available() -> bool:
    """Whether the optional watchdog library (facegate[watch]) is installed."""
    return importlib.util.find_spec("watchdog") is not None


def poll(scan_once: Callable[[], object], interval_s: float = DEFAULT_INTERVAL_S,
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


def _stat_key(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file; (-1, -1) for a folder (its mtime moves with every file added, and those
    files have events of their own); None when it does not exist (or cannot be stat'ed)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (-1, -1) if stat.S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime_ns)


class Pending:
    """Paths changed since the last scan, with when each last changed, its stat then, and whether a writer
    still has it open (thread-safe: the observer thread adds, the watch loop takes).

    track_closes: the observer reports a writer closing a file (inotify's IN_CLOSE_WRITE, watchdog's
    "closed" event), so a file written to and not yet closed waits (at most OPEN_WAIT_S unchanged).
    """

    def __init__(self, debounce_s: float = DEFAULT_DEBOUNCE_S, max_wait_s: float = MAX_WAIT_S,
                 clock: Callable[[], float] = time.monotonic, track_closes: bool = False):
        self.debounce_s, self.max_wait_s, self.clock = debounce_s, max_wait_s, clock
        self.track_closes = track_closes
        self.lock = threading.Lock()
        self.paths: dict[str, list] = {}   # path -> [first seen, last event, stat at last event, open to write]
        self.last_event = float("-inf")

    def add(self, path: str, writing: bool | None = None) -> None:
        """Note a change of `path` (a photo file or a folder) now; writing: True when a writer changed it
        (created, modified), False when it closed it, None to keep what was known."""
        now, key = self.clock(), _stat_key(path)
        with self.lock:
            first, _, _, was_open = self.paths.get(path, [now, now, None, False])
            is_open = was_open if writing is None else writing and self.track_closes
            self.paths[path] = [first, now, key, is_open]
            self.last_event = now

    def take_ready(self) -> list[str]:
        """The paths to scan now, removed from the pending set, sorted; [] while a burst goes on.

        A burst is over when no event came for debounce_s, or some path has waited max_wait_s. A path is
        ready when it had no event for debounce_s (OPEN_WAIT_S while a writer has it open) and its (size,
        mtime) is still what it was then; one that changed meanwhile waits another round.
        """
        now = self.clock()
        with self.lock:
            oldest = min((v[0] for v in self.paths.values()), default=now)
            if now - self.last_event < self.debounce_s and now - oldest < self.max_wait_s:
                return []
            ready = []
            for path, (first, last, key, is_open) in list(self.paths.items()):
                if now - last < (OPEN_WAIT_S if is_open else self.debounce_s):
                    continue
                current = _stat_key(path)
                if current != key:
                    self.paths[path] = [first, now, current, is_open]     # still being written
                    continue
                ready.append(path)
                del self.paths[path]
            return sorted(ready)

    def put_back(self, paths: list[str]) -> None:
        """Paths whose scan could not run (another scan held the library): try them again later."""
        for p in paths:
            self.add(p)

    def __len__(self) -> int:
        with self.lock:
            return len(self.paths)


def scan_targets(paths: list[str], roots: list[str]) -> list[str]:
    """What to scan for changed `paths`: each existing path itself; for a path gone (deleted, moved away),
    its nearest existing folder inside its watched root (the scan drops the photos gone from it)."""
    roots = [os.path.abspath(r) for r in roots]
    out = []
    for p in paths:
        p = os.path.abspath(p)
        root = max((r for r in roots if p == r or p.startswith(r.rstrip("/") + "/")), key=len, default=None)
        while not os.path.exists(p) and root is not None and p != root:
            p = os.path.dirname(p)
        out.append(p)
    out = sorted(set(out))
    return [p for p in out if not any(p.startswith(q.rstrip("/") + "/") for q in out if q != p)]


def _handler(pending: Pending, files: set[str] | None):
    """A watchdog event handler feeding `pending` with photo files and folders (files: the single files
    watched through their folder, None to take every photo)."""
    from watchdog.events import FileSystemEventHandler

    suffixes = photo_suffixes()

    def wanted(path: str, is_dir: bool) -> bool:
        """A folder, or a photo file (one of `files` when given)."""
        if files is not None and path not in files:
            return False
        return is_dir or path.lower().endswith(suffixes)

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            """watchdog FileSystemEvent -> the paths to scan, in `pending`."""
            if event.event_type in ("opened", "closed_no_write") or (event.is_directory and event.event_type
                                                                     in ("modified", "closed")):
                return
            src = os.fsdecode(event.src_path)
            writing = {"created": True, "modified": True, "closed": False}.get(event.event_type)
            if event.is_directory:
                writing = None
            if event.event_type in ("deleted", "moved") and wanted(src, event.is_directory):
                pending.add(os.path.dirname(src))                  # scanned as its folder: drops the gone
            if event.event_type == "moved":
                dest = os.fsdecode(event.dest_path)
                if wanted(dest, event.is_directory):
                    pending.add(dest)
            elif event.event_type != "deleted" and wanted(src, event.is_directory):
                pending.add(src, writing)

    return Handler()


def _observe(roots: list[str], pending: Pending):
    """A started watchdog Observer on `roots` (folders recursively; a single file through its folder)."""
    from watchdog.observers import Observer

    observer = Observer()
    pending.track_closes = type(observer).__name__ == "InotifyObserver"     # the one that reports closes
    for r in roots:
        r = os.path.abspath(r)
        if os.path.isdir(r):
            observer.schedule(_handler(pending, None), r, recursive=True)
        elif os.path.isdir(os.path.dirname(r)):
            observer.schedule(_handler(pending, {r}), os.path.dirname(r), recursive=False)
        else:
            raise FileNotFoundError(f"cannot watch {r}: no such file or folder")
    observer.start()
    return observer


def follow(roots: list[str], scan_paths: Callable[[list[str]], object], stop: threading.Event | None = None,
           debounce_s: float = DEFAULT_DEBOUNCE_S, initial: bool = True, pending: Pending | None = None,
           on_busy: Callable[[ScanBusyError], None] | None = None) -> int:
    """Scan `roots` once (when `initial`), then scan the changed paths as file events report them, until
    `stop` is set. `scan_paths(list of path str)` runs one incremental scan.

    Returns the number of scans run. A scan refused because another holds the library (ScanBusyError)
    is retried after debounce_s (`on_busy` is told); other errors propagate. Raises WatchUnavailable
    without watchdog.
    """
    if not watchdog_available():
        raise WatchUnavailable(f"`facegate photos watch` follows file events with watchdog: {INSTALL_HINT} "
                               f"(or poll with --poll SECONDS)")
    if debounce_s <= 0:
        raise ValueError(f"debounce must be > 0 seconds, got {debounce_s}")
    stop = stop or threading.Event()
    pending = pending or Pending(debounce_s)
    observer = _observe(roots, pending)               # before the first scan: nothing falls in between
    scans = 0
    try:
        todo = [os.path.abspath(r) for r in roots] if initial else []
        while not stop.is_set():
            todo = todo or scan_targets(pending.take_ready(), roots)
            if todo:
                try:
                    scan_paths(todo)
                    scans += 1
                except ScanBusyError as e:
                    pending.put_back(todo)
                    if on_busy:
                        on_busy(e)
                todo = []
            stop.wait(min(0.25, debounce_s / 4))
    finally:
        observer.stop()
        observer.join(timeout=5)
    return scans
