"""The door's JSON-line event file, rotated by size and age, old files deleted, names erasable.

`EventLog` appends lines to `events.jsonl`; when the file reaches `max_bytes`, or was started
`rotate_s` ago, it becomes `events.jsonl.1` (the older ones move up: .1 -> .2 ...) and a new file is
started. Rotated files whose newest line is older than `keep_s` are deleted, at every rotation and once
an hour. A file's age counts from the rotation that started it (from the time it was opened when it
was never rotated).

Every event file facegate writes is listed in the data home (`EVENT_FILES`), so that deleting a person
can erase their name from all of them (`erase_names`), the rotated ones included. Writes, rotations and
erasures of one log hold an exclusive lock (flock) on the current file.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from .erasure import mentions, scrubbed_line
from .errors import FacegateError

EVENT_FILES = "event_files"       # in the data home: one absolute event file path per line
PRUNE_EVERY_S = 3600.0            # how often a running log looks for rotated files past the retention
FILE_MODE = 0o600                 # event lines name people: readable by the owner only


class EventLogError(FacegateError):
    """The event file cannot be opened or written."""


class EventLog:
    """A text sink (write, flush, close) for JSON lines with rotation and retention.

    Args:
        path: the current event file; rotated files are `path.1`, `path.2`, ... (1 = newest).
        max_bytes: rotate once the file holds at least this many bytes.
        rotate_s: rotate once the file was started this many seconds ago.
        keep_s: delete rotated files whose last line is older than this many seconds.
        clock: Unix time in seconds (time.time); injectable for tests.
    """

    def __init__(self, path: str | Path, *, max_bytes: int, rotate_s: float, keep_s: float,
                 clock: Callable[[], float] = time.time):
        if max_bytes < 1 or rotate_s <= 0 or keep_s <= 0:
            raise ValueError(f"max_bytes, rotate_s and keep_s must be positive; got {max_bytes}, {rotate_s}, {keep_s}")
        self.path = Path(path).absolute()
        self.max_bytes, self.rotate_s, self.keep_s, self._clock = int(max_bytes), float(rotate_s), float(keep_s), clock
        self._file = None
        self._open()
        newest = _numbered(self.path, 1)
        self._started = newest.stat().st_mtime if newest.exists() else self._clock()
        self._next_prune = 0.0
        self.prune()

    @classmethod
    def from_config(cls, path: str | Path, privacy, clock: Callable[[], float] = time.time) -> "EventLog":
        """A log with the rotation and retention of a [privacy] config section."""
        return cls(path, max_bytes=int(privacy.events_rotate_mb * 1e6), rotate_s=privacy.events_rotate_hours * 3600,
                   keep_s=privacy.keep_events_days * 86400.0, clock=clock)

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise EventLogError(f"cannot open the event file {self.path}: {e.strerror}; check the folder exists "
                                f"and is writable") from None
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        """Append `text` (whole lines), rotating first when the file is full or old."""
        now = self._clock()
        f = self._file
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            size = os.fstat(f.fileno()).st_size     # (an erasure may have rewritten the file meanwhile)
            if size > 0 and (size >= self.max_bytes or now - self._started >= self.rotate_s):
                self._rotate(now)                   # closes f, which releases its lock
                f = self._file
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            n = f.write(text)
            f.flush()
        finally:
            if not f.closed:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        if now >= self._next_prune:
            self.prune()
        return n

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self, now: float) -> None:
        """events.jsonl -> .1 (the older ones move up one), then a new empty file; under the lock of the old one."""
        self._file.flush()
        n = 1
        while _numbered(self.path, n).exists():
            n += 1
        for k in range(n - 1, 0, -1):
            os.replace(_numbered(self.path, k), _numbered(self.path, k + 1))
        os.replace(self.path, _numbered(self.path, 1))
        old = self._file
        self._open()
        old.close()                               # releases the lock on the rotated file
        self._started = now

    def prune(self) -> list[Path]:
        """Delete the rotated files whose last line is older than keep_s; returns them."""
        now = self._clock()
        self._next_prune = now + PRUNE_EVERY_S
        gone = [p for p in rotated_files(self.path) if now - p.stat().st_mtime > self.keep_s]
        for p in gone:
            p.unlink(missing_ok=True)
        return gone


def _numbered(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def rotated_files(path: str | Path) -> list[Path]:
    """The rotated files of the event file `path`, newest first (path.1, path.2, ...)."""
    path, out = Path(path), []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1:]
        if suffix.isdigit():
            out.append((int(suffix), p))
    return [p for _, p in sorted(out)]


class _locked:
    """flock(LOCK_EX) on an open file for the duration of a with block."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        fcntl.flock(self.f.fileno(), fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)


def register(home: str | Path, path: str | Path) -> None:
    """Add the event file `path` to the data home's list (`erase_names` reaches it from then on)."""
    listed = Path(home) / EVENT_FILES
    path = str(Path(path).absolute())
    if path in registered(home):
        return
    fd = os.open(listed, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(path + "\n")


def registered(home: str | Path) -> list[str]:
    """The event files listed in the data home (absolute paths, in the order they were first used)."""
    try:
        return [line for line in (Path(home) / EVENT_FILES).read_text(encoding="utf-8").splitlines() if line]
    except FileNotFoundError:
        return []


def family(path: str | Path) -> list[Path]:
    """An event file and its rotated files that exist."""
    path = Path(path)
    return ([path] if path.exists() else []) + rotated_files(path)


def lines_naming(home: str | Path, names: Sequence[str]) -> Iterator[dict]:
    """Every event (decoded line) in the data home's event files whose values mention one of `names`."""
    for path in registered(home):
        for p in family(path):
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if mentions(line, names) and scrubbed_line(line, names) != line:
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError:
                            yield {"unreadable_line": line.rstrip("\n")}


def erase_names(home: str | Path, names: Iterable[str]) -> int:
    """Rewrite every event file of the data home (rotated ones too) without `names`: a value equal to a
    name becomes null, any other mention "[erased]". In place, under the log's lock, so a running door
    keeps appending to the same file. Returns the lines changed."""
    names = sorted(set(names), key=len, reverse=True)
    if not names:
        return 0
    changed = 0
    for path in registered(home):
        for p in family(path):
            changed += _erase_in(p, names)
    return changed


def _erase_in(path: Path, names: Sequence[str]) -> int:
    try:
        f = open(path, "r+", encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:                      # rotated away or pruned meanwhile
        return 0
    with f, _locked(f):
        out, changed = [], 0
        for line in f.read().splitlines(keepends=True):
            if mentions(line, names) and (new := scrubbed_line(line, names)) != line:
                changed += 1
                line = new
            out.append(line)
        if changed:
            f.seek(0)
            f.truncate()
            f.write("".join(out))
            f.flush()
            os.fsync(f.fileno())
    return changed
