"""Tell systemd that the door service is ready and alive (the sd_notify protocol, without libsystemd).

Under a `Type=notify` unit systemd sets $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace)
and, with `WatchdogSec=`, $WATCHDOG_USEC. The door sends READY=1 once the bundle is verified and the
camera delivered its first frame, and WATCHDOG=1 from its frame loop: a hung camera or model stops the
pings and systemd restarts the service (the door is locked whenever the process is not running).

Outside systemd (no $NOTIFY_SOCKET) every call does nothing, as sd_notify(3) does. A datagram that
cannot be sent is logged and dropped: notifying never raises into the door loop, and nothing here can
open the door.
"""
from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def watchdog_interval_s(env: dict[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC (systemd's advice), or None when the unit
    has no watchdog or $WATCHDOG_PID names another process."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; no watchdog pings", usec)
        return None
    return value / 2e6 if value > 0 else None


def socket_address(raw: str) -> str | bytes:
    """$NOTIFY_SOCKET -> an AF_UNIX address ("@name" is the abstract socket "\\0name")."""
    return b"\0" + raw[1:].encode() if raw.startswith("@") else raw


class SystemdNotifier:
    """READY / WATCHDOG / STATUS / STOPPING datagrams to systemd; a no-op without $NOTIFY_SOCKET.

    Args:
        env: the environment to read (default os.environ).
        clock: monotonic seconds, for spacing the watchdog pings.
    """

    def __init__(self, env: dict[str, str] | None = None, clock=time.monotonic):
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET") or ""
        self.address = socket_address(raw) if raw else None
        self.interval_s = watchdog_interval_s(env) if raw else None
        self._clock = clock
        self._last_ping = None
        self.ready_sent = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of "KEY=value" lines; True when it went out."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall("\n".join(fields).encode())
            return True
        except OSError as e:
            log.warning("cannot notify systemd (%s): %s", e.__class__.__name__, e)
            return False

    def ready(self, status: str = "") -> None:
        """READY=1 (once), with an optional STATUS line; starts the watchdog clock."""
        if self.ready_sent:
            return
        self.ready_sent = True
        self.send("READY=1", *([f"STATUS={status}"] if status else []))
        self._last_ping = self._clock()

    def alive(self) -> None:
        """WATCHDOG=1 when the unit has a watchdog and half its interval passed since the last ping.
        Called from the frame loop after every frame."""
        if self.interval_s is None:
            return
        now = self._clock()
        if self._last_ping is None or now - self._last_ping >= self.interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")
