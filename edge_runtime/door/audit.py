"""The door's audit trail, written off the frame loop: a store that cannot be written never stops the door.

`AuditWriter` queues audit rows (and last-seen times) and writes them from its own thread, over its
own Store connection, in the order they happened. A write that fails (another process holds the
store past its busy timeout, the disk is full, the file is read-only) leaves the row at the head of
the queue; it is retried every `retry_s`, so nothing is reordered. Rows that had to wait carry
"at": the Unix time they happened (the row's own time is when it was written).

The queue is bounded: while `max_rows` rows wait, new rows are dropped and counted, and one
"audit_dropped" row {"rows": n, "events": {event: count}, "from_at", "to_at"} takes their place in
the order, so the gap shows in the audit log. Rows still waiting when the runner exits are lost; their
number is logged and returned by `close`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from ..crypto import SealKey
from ..erasure import scrubbed
from ..store import (
    BUSY_TIMEOUT_MS,
    InvalidNameError,
    InvalidTemplateError,
    PersonNotFoundError,
    Store,
    StoreError,
    StoreLockedError,
)

log = logging.getLogger(__name__)

AUDIT_BUFFER_ROWS = 10_000      # rows that may wait for the store before new ones are dropped
RETRY_S = 1.0                   # wait between attempts while the store refuses writes


@dataclass
class _Row:
    """One queued write: an audit row (kind "log"), a person's last-seen time (kind "seen") or the removal
    of audit rows past the retention (kind "prune"), or a write that logs its own audit row (kind "call":
    details["write"](store), a template update)."""

    kind: str
    event: str
    person: str | None
    details: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    late: bool = False


def _erased_if_deleted(store: Store, person: str | None, details: dict) -> tuple[str | None, dict]:
    """(person, details) of a queued row, without the name when that person was deleted meanwhile (an
    erased name must not come back from rows that waited in the queue)."""
    if person is None:
        return person, details
    try:
        store.person(person)
    except PersonNotFoundError:
        return None, scrubbed(details, [person])
    return person, details


class AuditWriter:
    """Writes audit rows to the store at `path` from a daemon thread, in order, never blocking the caller.

    Args:
        path: the store file (the runner's Store.path).
        busy_timeout_ms: the writer connection's busy timeout (use the runner store's).
        max_rows: rows that may wait before new ones are dropped (see the module docstring).
        retry_s: seconds between attempts while writes fail.
        key: the store's [privacy] key (template updates are sealed like enrolled templates); a row that
            cannot be written because of the key (StoreLockedError) is skipped with a warning, never retried.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                 max_rows: int = AUDIT_BUFFER_ROWS, retry_s: float = RETRY_S, key: SealKey | None = None):
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows!r}")
        self.path, self.busy_timeout_ms, self.max_rows, self.retry_s = Path(path), busy_timeout_ms, max_rows, retry_s
        self.key = key
        self._rows: deque[_Row] = deque()
        self._cond = threading.Condition()
        self._failing = self._stop = False
        self._dropped: Counter[str] = Counter()
        self._drop_span: tuple[float, float] | None = None
        self.dropped_total = 0
        self._thread = threading.Thread(target=self._loop, name="facegate-audit", daemon=True)
        self._thread.start()

    # -- the frame loop's side ---------------------------------------------------------------
    def log(self, event: str, person: str | None = None, **details) -> None:
        """Queue one audit row (details: JSON values), as Store.log would write it."""
        self._put(_Row("log", event, person, details))

    def prune(self, before: float) -> None:
        """Queue the removal of audit rows older than Unix time `before` (Store.prune_audit; retention)."""
        self._put(_Row("prune", "audit_prune", None, {"before": float(before)}))

    def call(self, event: str, person: str | None, write) -> None:
        """Queue `write(store)`, a store write that logs its own audit row `event` (a template update), in order
        with the rows; retried like them while the store refuses writes."""
        self._put(_Row("call", event, person, {"write": write}))

    def seen(self, name: str, ts: float) -> None:
        """Queue "`name` was recognised at Unix time `ts`" (Store.touch_seen)."""
        self._put(_Row("seen", "last_seen", name, {"ts": float(ts)}))

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        with self._cond:
            return len(self._rows)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every queued row is written; True if they are."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._rows and not self._dropped, max(0.0, timeout))

    def close(self, timeout: float) -> int:
        """Write what is queued (waiting at most `timeout` seconds), stop; returns the rows left unwritten."""
        self.flush(timeout)
        with self._cond:
            self._stop = True
            left = Counter(r.event for r in self._rows) + self._dropped
            self._cond.notify_all()
        if left:
            log.error("door audit: %d rows could not be written to %s before exit and are lost (%s)",
                      sum(left.values()), self.path, ", ".join(f"{e}: {n}" for e, n in sorted(left.items())))
        return sum(left.values())

    def _put(self, row: _Row) -> None:
        with self._cond:
            if self._stop:
                log.error("door audit: a %r row came after the writer stopped and is lost", row.event)
                return
            if len(self._rows) >= self.max_rows:
                self._drop(row)
                return
            if self._dropped:
                self._rows.append(self._drop_row())
            row.late = self._failing
            self._rows.append(row)
            self._cond.notify_all()

    def _drop(self, row: _Row) -> None:
        if not self._dropped:
            log.error("door audit: %d rows wait for %s; new rows are dropped, and counted in an 'audit_dropped' "
                      "row, until it takes writes again", len(self._rows), self.path)
        self._dropped[row.event] += 1
        self.dropped_total += 1
        self._drop_span = (self._drop_span[0] if self._drop_span else row.at, row.at)

    def _drop_row(self) -> _Row:
        """The row standing for the rows dropped since the last one (resets the count)."""
        first, last = self._drop_span
        row = _Row("log", "audit_dropped", None, {"rows": sum(self._dropped.values()),
                                                  "events": dict(sorted(self._dropped.items())),
                                                  "from_at": first, "to_at": last}, at=last, late=True)
        self._dropped, self._drop_span = Counter(), None
        return row

    # -- the writer thread -------------------------------------------------------------------
    def _loop(self) -> None:
        store = None
        try:
            while (row := self._next()) is not None:
                store, done = self._attempt(store, row)
                self._after(done)
        finally:
            if store is not None:
                store.close()

    def _next(self) -> _Row | None:
        with self._cond:
            self._cond.wait_for(lambda: self._rows or self._stop)
            return None if self._stop else self._rows[0]

    def _attempt(self, store: Store | None, row: _Row) -> tuple[Store | None, bool]:
        """(the writer's store, whether `row` is done with: written, or impossible to write ever)."""
        try:
            if store is None:
                store = Store(self.path, busy_timeout_ms=self.busy_timeout_ms, key=self.key)
            if row.kind == "seen":
                store.touch_seen(row.person, row.details["ts"])
            elif row.kind == "prune":
                store.prune_audit(row.details["before"])
            elif row.kind == "call":
                row.details["write"](store)
            else:
                person, details = _erased_if_deleted(store, row.person, row.details)
                store.log(row.event, person, **(dict(details, at=row.at) if row.late else details))
            return store, True
        except (PersonNotFoundError, InvalidNameError, InvalidTemplateError, StoreLockedError) as e:
            log.warning("door audit: %s; the %r row is skipped", e, row.event)
            return store, True
        except StoreError as e:
            if not self._failing:
                log.error("door audit: cannot write to the store (%s); the door keeps working and the rows wait, "
                          "in order, retried every %.1f s", e, self.retry_s)
            return store, False
        except (TypeError, ValueError) as e:
            log.error("door audit: a %r row cannot be stored and is skipped: %s", row.event, e)
            return store, True

    def _after(self, done: bool) -> None:
        with self._cond:
            if done:
                self._rows.popleft()
                if self._failing:
                    self._failing = False
                    log.info("door audit: the store takes writes again; %d waiting rows follow", len(self._rows))
                if not self._rows and self._dropped:
                    self._rows.append(self._drop_row())
                self._cond.notify_all()
                return
            self._failing = True
            for r in self._rows:
                r.late = True
            self._cond.wait_for(lambda: self._stop, self.retry_s)
