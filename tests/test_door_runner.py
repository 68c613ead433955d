"""The run loop survives its door and its store: failures are audited, the door stays locked, the loop goes on."""
import io
import json
import sqlite3
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from door_fakes import FaultyRelay, store_with_ana

from facegate.edge_runtime.door.actuators import GpioDoor, LogDoor, WebhookDoor
from facegate.edge_runtime.door.decision import DoorDecider
from facegate.edge_runtime.door.runner import Runner
from facegate.edge_runtime.matching import Match
from facegate.edge_runtime.store import Store, StoreBusyError
from facegate.run_door import summary

SECRET = b"r" * 32
FRAME = np.zeros((8, 8, 3), np.uint8)
NO_FACE = ""


class FakeRecognizer:
    """Recognizer stand-in: each `analyze` gives the next scripted face: a name (a known person), None (an
    unknown face) or NO_FACE."""

    def __init__(self, script):
        self.bundle = types.SimpleNamespace(id="fake-bundle", metric="cosine", liveness=None)
        self.liveness_on = False
        self.script = list(script)
        self.templates = None
        self.operating = types.SimpleNamespace(describe=lambda: "fake operating point")

    def analyze(self, frame, live=True):
        name = self.script.pop(0) if self.script else NO_FACE
        if name == NO_FACE:
            return []
        face = types.SimpleNamespace(width=100, height=100, box=(0, 0, 100, 100))
        return [types.SimpleNamespace(face=face, problems=(), usable=True, match=Match(name, 0.9, 0.1, None, name),
                                      liveness=None, quality=None)]


@pytest.fixture
def store(tmp_path):
    s = store_with_ana(tmp_path / "store.db")
    yield s
    s.close()


def _runner(store, door, script, **kw):
    return Runner(FakeRecognizer(script), store, door, DoorDecider(1, 1, 0.0), io.StringIO(), **kw)


def _events(store):
    return [(a.event, a.person_name, a.details) for a in reversed(store.audit(limit=1000)) if a.event != "enroll"]


def test_a_locked_store_never_stops_the_loop_and_rows_land_later_in_order(store):
    runner = _runner(store, LogDoor(), [None, None, None, "Ana"], deny_log_s=0.0)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                       # another process holds the store past the busy timeout
    t0 = time.monotonic()
    for i in range(4):
        runner.process(float(i), FRAME)                     # today's code: StoreBusyError "cannot log 'deny'"
    assert time.monotonic() - t0 < 0.5
    time.sleep(0.5)                                         # the writer tried and failed meanwhile
    assert _events(store) == [] and runner.audit.pending == 5           # 3 deny, door_open, Ana's last-seen time
    holder.execute("COMMIT")
    stats = runner.close()
    rows = _events(store)
    assert [(e, p) for e, p, _ in rows] == [("deny", None), ("deny", None), ("deny", None), ("door_open", "Ana")]
    assert [d["ts"] for _, _, d in rows] == [0.0, 1.0, 2.0, 3.0]
    assert all("at" in d for _, _, d in rows)               # they waited: "at" is when they happened
    assert store.person("Ana").last_seen_at is not None
    assert (stats.opens, stats.failed_opens, stats.denies, stats.audit_lost) == (1, 0, 3, 0)


def test_unreadable_templates_match_nobody_until_they_can_be_read_again(store, monkeypatch, caplog):
    runner = _runner(store, LogDoor(), [None, None], refresh_s=0.0)
    assert len(runner.recognizer.templates) == 1
    read = store.templates

    def busy(*a, **k):
        raise StoreBusyError("cannot read the store: locked")

    monkeypatch.setattr(store, "templates", busy)
    with Store(store.path) as admin:                                              # data_version changes
        admin.delete("Ana")
    runner.process(0.0, FRAME)                                                    # the run goes on ...
    assert "nobody is recognised" in caplog.text
    assert len(runner.recognizer.templates) == 0                                  # ... matching nobody
    monkeypatch.setattr(store, "templates", read)
    runner.process(1.0, FRAME)
    assert len(runner.recognizer.templates) == 0 and runner._data_version is not None   # read again: Ana is gone
    runner.close()


def test_a_relay_error_is_audited_as_door_error_and_the_run_goes_on(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", types.SimpleNamespace(OutputDevice=FaultyRelay))
    runner = _runner(store, GpioDoor(17), ["Ana", NO_FACE, "Ana"])
    stats = runner.run((float(i), FRAME) for i in range(3))           # today's code: DoorError ends the run
    rows = _events(store)
    assert [(e, p, d["command"]) for e, p, d in rows] == [("door_error", "Ana", "open")] * 2
    assert "relay error on GPIO pin 17: relay driver fault" in rows[0][2]["error"]
    assert FaultyRelay.last.value == 0 and (stats.frames, stats.opens, stats.failed_opens) == (3, 0, 2)


class CountingHook(BaseHTTPRequestHandler):
    """Records the event of every POST; answers 500 to opens when `fail_opens`, else 204."""

    events: list = []
    fail_opens = True

    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["event"]
        CountingHook.events.append(event)
        self.send_response(500 if event == "open" and CountingHook.fail_opens else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    CountingHook.events = []
    server = HTTPServer(("127.0.0.1", 0), CountingHook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/door"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fail_opens", [True, False])
def test_the_summary_counts_delivered_opens_only_and_the_door_locks_once_at_exit(store, hook, fail_opens):
    CountingHook.fail_opens = fail_opens
    runner = _runner(store, WebhookDoor(hook, timeout_s=2.0, secret=SECRET), ["Ana"])
    stats = runner.run([(0.0, FRAME)])
    assert CountingHook.events == ["lock", "open", "lock"]             # start, the opening, exit: one lock each
    assert (stats.opens, stats.failed_opens) == ((0, 1) if fail_opens else (1, 0))
    line = summary(stats)
    assert (f"{stats.opens} openings, {stats.failed_opens} failed openings" in line)
    assert [e for e, _, _ in _events(store)] == ["door_error" if fail_opens else "door_open"]


def test_a_stalled_webhook_never_blocks_the_frame_loop_and_its_open_is_a_door_error(store):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))                  # accepts (backlog), never answers
    door = WebhookDoor(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout_s=0.5, secret=SECRET)
    runner = _runner(store, door, ["Ana"])
    t0 = time.monotonic()
    runner.process(0.0, FRAME)
    assert time.monotonic() - t0 < 0.2                                  # today's code: blocked for timeout_s
    while time.monotonic() - t0 < 0.8:
        runner.process(time.monotonic() - t0, FRAME)
    stats = runner.close()
    listener.close()
    rows = _events(store)
    assert ("door_open", "Ana") not in [(e, p) for e, p, _ in rows]
    assert [(e, p, d["command"]) for e, p, d in rows][0] == ("door_error", "Ana", "open")
    assert (stats.opens, stats.failed_opens) == (0, 1)


def test_rows_still_waiting_at_exit_are_counted_and_logged(store, caplog):
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    runner = _runner(store, LogDoor(), [None], deny_log_s=0.0)
    runner.process(0.0, FRAME)
    stats = runner.close(audit_wait_s=0.3)
    holder.execute("COMMIT")
    assert stats.audit_lost == 1 and "1 rows could not be written" in caplog.text and "deny: 1" in caplog.text
    assert "1 audit rows lost" in summary(stats)
