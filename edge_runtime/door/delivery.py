"""Door commands and their delivery off the frame loop, each with a deadline: late is never.

A `Command` is one "open" or "lock" and its outcome. A network door hands its commands to one
`CommandWorker` thread, which delivers them in order; the frame loop only queues. A command whose
deadline has passed before the worker reaches it is dropped unsent; one confirmed after its
deadline counts as failed (the receiver must reject it by its expiry, docs/door_receivers.md).
Nothing is retried: a failed open stays failed.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class Command:
    """One door command and its outcome.

    Attributes:
        event: "open" or "lock".
        person: who it opens for (None for "lock").
        deadline: time.monotonic() after which it is neither sent nor counted as delivered.
        message: the exact signed message bytes a network door sends (b"" for local doors).
        delivered: None while pending, then True (delivered before the deadline) or False.
        error: why it was not delivered ("" otherwise).
    """

    def __init__(self, event: str, person: str | None, deadline: float, message: bytes = b""):
        self.event, self.person, self.deadline, self.message = event, person, float(deadline), message
        self.delivered: bool | None = None
        self.error = ""
        self._done = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def finished(cls, event: str, person: str | None, delivered: bool, error: str = "") -> "Command":
        """A command already carried out (or failed) on the spot, as by a local door."""
        cmd = cls(event, person, time.monotonic())
        cmd._set(delivered, error)
        return cmd

    def _set(self, delivered: bool, error: str) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self.delivered, self.error = bool(delivered), "" if delivered else (error or "not delivered")
            self._done.set()
            return True

    def finish(self, delivered: bool, error: str = "") -> bool:
        """Record the outcome once; a delivery confirmed after the deadline is recorded as failed.

        Returns False when an outcome was already recorded (e.g. `expire` came first).
        """
        if delivered and time.monotonic() > self.deadline:
            delivered, error = False, "confirmed only after its deadline"
        return self._set(delivered, error)

    def expire(self, now: float | None = None) -> bool:
        """Fail the command if it is still pending past its deadline; True if it is done now."""
        if not self._done.is_set() and (time.monotonic() if now is None else now) > self.deadline:
            self._set(False, "no confirmation before its deadline")
        return self._done.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past)."""
        return self.deadline - time.monotonic()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the outcome; True if there is one."""
        return self._done.wait(max(0.0, timeout))


class CommandWorker:
    """One daemon thread that delivers commands in the order submitted.

    Args:
        deliver: sends one command; returns when it was delivered, raises any exception when not.
            Called only while the command's deadline has not passed.
        name: the thread's name.
    """

    def __init__(self, deliver: Callable[[Command], None], name: str):
        self._deliver = deliver
        self._queue: queue.SimpleQueue[Command | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, cmd: Command) -> Command:
        """Queue `cmd` (never blocks) and return it; after `close` it fails at once."""
        if self._closed:
            cmd.finish(False, "the door is closed")
        else:
            self._queue.put(cmd)
        return cmd

    def close(self, timeout: float) -> None:
        """Stop after the commands already queued; wait up to `timeout` seconds for the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(max(0.0, timeout))

    def _loop(self) -> None:
        while (cmd := self._queue.get()) is not None:
            if cmd.done:
                continue
            if cmd.remaining() <= 0:
                log.error("door: %r command dropped unsent, its deadline had passed", cmd.event)
                cmd.finish(False, "dropped unsent: its deadline passed while an earlier command was in flight")
                continue
            self._run(cmd)

    def _run(self, cmd: Command) -> None:
        try:
            self._deliver(cmd)
        except Exception as e:                      # any failure of the transport: report, never retry
            log.error("door: %r command not delivered: %s", cmd.event, e)
            cmd.finish(False, str(e))
            return
        late = cmd.remaining() < 0
        if late:
            log.error("door: %r command confirmed only after its deadline; it counts as failed, and the "
                      "receiver must reject it by its expiry", cmd.event)
        cmd.finish(not late, "confirmed only after its deadline" if late else "")
