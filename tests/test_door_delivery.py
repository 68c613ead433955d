"""Door commands have a deadline: a receiver that never answers cannot delay an open, nothing is sent late."""
import socket
import threading
import time

import pytest

from facegate.edge_runtime.door.actuators import WebhookDoor
from facegate.edge_runtime.door.delivery import Command, CommandWorker

SECRET = b"k" * 32


class StallServer:
    """Accepts every TCP connection and reads the request in it, but never answers; or, with `drip_s`,
    answers 204 one byte every `drip_s` seconds (each read is quick, the whole answer is slow)."""

    ANSWER = b"HTTP/1.0 204 No Content\r\n\r\n"

    def __init__(self, drip_s: float | None = None):
        self.drip_s = drip_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.requests: list[bytes] = []
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/door"

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        data = b""
        try:
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
        except OSError:
            return
        if data:
            self.requests.append(data)
        for i in range(len(self.ANSWER) if self.drip_s else 0):
            time.sleep(self.drip_s)
            try:
                conn.send(self.ANSWER[i:i + 1])
            except OSError:
                return

    def posts(self) -> int:
        return sum(r.startswith(b"POST ") for r in self.requests)

    def close(self):
        self.sock.close()
        for c in self._conns:
            c.close()


@pytest.fixture
def stall():
    server = StallServer()
    yield server
    server.close()


def test_a_stalled_webhook_costs_the_caller_nothing_and_the_open_fails_at_its_deadline(stall):
    door = WebhookDoor(stall.url, timeout_s=0.5, secret=SECRET)
    t0 = time.monotonic()
    opened = door.open("Ana")
    assert time.monotonic() - t0 < 0.05 and not opened.done               # queued, not waited for
    assert opened.wait(3) and time.monotonic() - t0 < 1.5
    assert opened.delivered is False and "unreachable" in opened.error     # the worker's socket timed out
    door.close()


def test_an_open_queued_behind_a_slow_answer_is_dropped_never_sent():
    slow = StallServer(drip_s=0.05)                                        # the whole answer takes > 1 s
    door = WebhookDoor(slow.url, timeout_s=0.5, secret=SECRET)
    try:
        first, second = door.open("Ana"), door.open("Ben")
        assert first.wait(3) and second.wait(3)
        assert (first.delivered, second.delivered) == (False, False)
        assert "dropped unsent" in second.error
        time.sleep(1.5)                                                    # the first answer is in; still no second
        assert slow.posts() == 1 and b"Ben" not in b"".join(slow.requests)
    finally:
        door.close()
        slow.close()


def test_a_confirmation_after_the_deadline_counts_as_failed():
    def slow(cmd):
        time.sleep(0.3)                                                    # the receiver answers, but late

    worker = CommandWorker(slow, "test-slow")
    cmd = worker.submit(Command("open", "Ana", time.monotonic() + 0.1))
    assert cmd.wait(2) and cmd.delivered is False and "after its deadline" in cmd.error
    worker.close(1)


def test_expire_wins_over_a_late_confirmation_and_outcomes_are_final():
    cmd = Command("open", "Ana", time.monotonic() - 0.01)
    assert cmd.expire() and (cmd.delivered, cmd.error) == (False, "no confirmation before its deadline")
    assert cmd.finish(True) is False and cmd.delivered is False
    pending = Command("lock", None, time.monotonic() + 60)
    assert not pending.expire() and not pending.done
    assert Command.finished("open", "Ana", True).delivered is True


def test_a_failing_transport_is_never_retried_and_a_closed_worker_refuses():
    calls = []

    def broken(cmd):
        calls.append(cmd.event)
        raise OSError("connection refused")

    worker = CommandWorker(broken, "test-broken")
    cmd = worker.submit(Command("open", "Ana", time.monotonic() + 1))
    assert cmd.wait(2) and cmd.delivered is False and cmd.error == "connection refused"
    time.sleep(0.2)
    assert calls == ["open"]
    worker.close(1)
    late = worker.submit(Command("open", "Ana", time.monotonic() + 1))
    assert late.done and late.delivered is False and calls == ["open"]
