"""The door tells systemd it is ready (after its first frame) and alive (from the frame loop), over a real
AF_UNIX datagram socket; a hung camera stops the pings; SIGTERM locks and ends `facegate run` cleanly."""
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from door_fakes import NoFaceRecognizer, store_with_ana, wait_until

from facegate.edge_runtime.door.actuators import LogDoor
from facegate.edge_runtime.door.decision import DoorDecider
from facegate.edge_runtime.door.runner import Runner
from facegate.edge_runtime.door.systemd_notify import SystemdNotifier, socket_address, watchdog_interval_s

FRAME = np.zeros((8, 8, 3), np.uint8)


class Listener:
    """A bound datagram socket playing systemd's side: every message received, with its arrival time."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self, prefix: str) -> list[float]:
        return [t for t, m in list(self.messages) for line in m.splitlines() if line.startswith(prefix)]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    lst = Listener(path)
    yield path, lst
    lst.close()



def test_interval_is_half_the_watchdog_and_only_for_this_process():
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
    assert socket_address("@facegate/notify") == b"\0facegate/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_without_notify_socket_nothing_is_sent():
    n = SystemdNotifier(env={"WATCHDOG_USEC": "1000"})
    assert not n.enabled and n.interval_s is None
    assert n.send("READY=1") is False
    n.ready()
    n.alive()                              # no socket, no watchdog: nothing to do, nothing raised


def test_abstract_socket_and_a_vanished_listener_never_raise():
    name = f"@facegate-test-{os.getpid()}-{time.monotonic_ns()}"
    lst = Listener(socket_address(name))
    try:
        n = SystemdNotifier(env={"NOTIFY_SOCKET": name})
        n.ready("testing")
        assert wait_until(lambda: lst.lines("READY=1"), 2)
        assert lst.lines("STATUS=testing")
    finally:
        lst.close()
    assert SystemdNotifier(env={"NOTIFY_SOCKET": name}).send("WATCHDOG=1") is False   # logged, not raised


def test_ready_after_the_first_frame_pings_while_frames_flow_and_stop_when_the_camera_hangs(tmp_path, listener):
    path, lst = listener
    store = store_with_ana(tmp_path / "store.db")
    runner = Runner(NoFaceRecognizer(), store, LogDoor(), DoorDecider(1, 1, 0.0), io.StringIO())
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})   # ping every 0.05 s
    first_frame = threading.Event()
    hang, release = threading.Event(), threading.Event()

    def frames():
        time.sleep(0.3)                    # the camera is slow to deliver its first frame
        first_frame.set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:
            yield 0.0, FRAME
            time.sleep(0.01)
        hang.set()
        release.wait(5)                    # the camera hangs: read() never returns

    t = threading.Thread(target=runner.run, args=(frames(),), kwargs={"notifier": notifier}, daemon=True)
    started = time.monotonic()
    t.start()
    assert hang.wait(5)
    time.sleep(0.1)                        # the listener thread receives what was sent before the hang
    ready = lst.lines("READY=1")
    assert len(ready) == 1 and ready[0] - started >= 0.3, "READY before the first frame"
    pings_while_flowing = lst.lines("WATCHDOG=1")
    assert len(pings_while_flowing) >= 5
    gaps = np.diff(pings_while_flowing)
    assert gaps.min() >= 0.04                                  # spaced at half the watchdog interval
    time.sleep(0.5)                                            # several watchdog intervals with the camera hung
    assert lst.lines("WATCHDOG=1") == pings_while_flowing, "pings went on while the camera hung"
    release.set()
    t.join(5)
    assert wait_until(lambda: lst.lines("STOPPING=1"), 2)
    store.close()


def _clip(path, frames=60, fps=10):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        w.write(np.full((48, 64, 3), (i * 4) % 255, np.uint8))
    w.release()


def test_facegate_run_notifies_systemd_and_locks_on_sigterm(tmp_path, listener):
    path, lst = listener
    clip = tmp_path / "clip.avi"
    _clip(clip)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000", FACEGATE_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "facegate", "run", "--home", str(tmp_path / "home"),
                             "--source", str(clip), "--realtime", "--events", str(tmp_path / "events.jsonl")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(lst.lines("WATCHDOG=1")) >= 3, 60), proc.stderr.read() if proc.poll() else ""
        assert len(lst.lines("READY=1")) == 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert wait_until(lambda: lst.lines("STOPPING=1"), 2)
    assert "facegate run:" in err and "0 openings" in err
