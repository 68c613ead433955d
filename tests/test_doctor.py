"""`facegate doctor`: a healthy staging home (fake camera = a video file, a real mosquitto the test starts) passes
with one line per check; each kind of breakage (file mode, damaged store, missing bundle file, unreachable
broker, slow frames, bad config, clock) fails with the right line and exit code 1.

The MQTT parts need /usr/sbin/mosquitto and paho-mqtt (the dev extra): skipped without them, failed under CI=true.
"""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from test_door_mqtt_broker import MOSQUITTO, Broker, _need

from facegate.edge_runtime.admin.db import AdminDB, admin_db_path
from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
from facegate.edge_runtime.config import Config
from facegate.edge_runtime.ops.doctor import CHECKS, run_checks
from facegate.edge_runtime.paths import config_path, store_path
from facegate.edge_runtime.store import Store
from facegate.main import main

SECRET = "s" * 40


@pytest.fixture
def broker(tmp_path):
    _need("mosquitto (apt-get install mosquitto)", MOSQUITTO)
    try:
        import paho.mqtt.client  # noqa: F401  (the MQTT door needs it; doctor checks it is installed)
        found = True
    except ImportError:
        found = False
    _need("paho-mqtt (pip install paho-mqtt)", found)
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder)
    b.start()
    yield b
    b.stop()


def _video(path, frames=10, size=(320, 240)):
    """A small MJPG video: the fake camera."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    w.release()
    return path


def _home(tmp_path, port, budget_ms=1e6):
    """A healthy staging home: store with templates of the shipped bundle, an administrator, a config with the
    fake camera, an MQTT door at `port` with its secret, and a speed budget no machine misses."""
    from facegate.edge_runtime.enrollment import open_bundle

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    bundle_id = open_bundle(Config()).id
    with Store(store_path(home)) as s:
        s.enroll("Ana", np.ones((2, 4), np.float32), bundle_id, "fake")
    with AdminDB(admin_db_path(home)) as db:
        db.create_admin("admin", "correct horse battery")
    secret = tmp_path / "door.key"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    config_path(home).write_text(
        f'[camera]\nsource = "{_video(tmp_path / "camera.avi")}"\n'
        f'[door]\nkind = "mqtt"\nmqtt_host = "127.0.0.1"\nmqtt_port = {port}\nsecret_file = "{secret}"\n'
        f"[doctor]\nframe_budget_ms = {budget_ms}\ntimed_frames = 3\nmin_free_mb = 1.0\n")
    return home


def _doctor(home, *extra):
    return main(["doctor", "--home", str(home), *extra])


def _by_name(out: str) -> dict:
    return {c["name"]: c for c in json.loads(out)["checks"]}


def test_a_healthy_home_passes_with_one_line_per_check(tmp_path, broker, capsys):
    home = _home(tmp_path, broker.port)
    assert _doctor(home) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CHECKS) + 1 and lines[-1].startswith("doctor: ") and "0 failed" in lines[-1]
    assert [line.split(":")[0].split(None, 1)[1] for line in lines[:-1]] == list(CHECKS)
    assert "WARN  liveness: off — this bundle has no liveness model; see README" in lines

    assert _doctor(home, "--json") == 0
    out = capsys.readouterr().out
    assert json.loads(out)["ok"] is True
    checks = _by_name(out)
    assert {n: c["status"] for n, c in checks.items()} == {
        "config": "ok", "bundle": "ok", "liveness": "warn", "key": "skip", "store": "ok", "admin db": "ok",
        "photos db": "skip", "file modes": "ok", "disk": "ok", "clock": "ok", "camera": "ok", "door": "ok",
        "speed": "ok"}
    assert checks["store"]["details"]["templates"] == 2
    assert checks["camera"]["details"]["frames"] == 5 and checks["camera"]["details"]["width"] == 320
    assert checks["door"]["details"]["connack"] == 0
    assert checks["speed"]["details"]["median_ms"] > 0 and checks["speed"]["details"]["frame"] == "320x240"


def test_each_breakage_fails_its_line(tmp_path, broker, capsys):
    home = _home(tmp_path, broker.port)
    skip = ["--skip", "speed"]

    (home / "store.db").chmod(0o644)                                      # readable by everyone
    assert _doctor(home, "--json", *skip) == 1
    c = _by_name(capsys.readouterr().out)["file modes"]
    assert c["status"] == "fail" and "store.db is mode 644, readable by others (chmod 600" in c["message"]
    (home / "store.db").chmod(0o600)
    config_path(home).chmod(0o666)                                       # anyone may change who the door opens for
    assert _doctor(home, "--json", *skip) == 1
    c = _by_name(capsys.readouterr().out)["file modes"]
    assert c["status"] == "fail" and "config.toml is mode 666, writable by others (chmod go-w" in c["message"]
    config_path(home).chmod(0o644)

    broker.stop()                                                          # the broker is down
    assert _doctor(home, "--json", *skip) == 1
    c = _by_name(capsys.readouterr().out)["door"]
    assert c["status"] == "fail" and f"MQTT broker 127.0.0.1:{broker.port} unreachable" in c["message"]

    bundle = tmp_path / "bundle"                                           # a bundle missing a model file
    shutil.copytree(default_bundle_dir(), bundle)
    (bundle / "sface.int8.onnx").unlink()
    assert _doctor(home, "--json", "--bundle", str(bundle)) == 1
    checks = _by_name(capsys.readouterr().out)
    assert checks["bundle"]["status"] == "fail" and "sface.int8.onnx is missing" in checks["bundle"]["message"]
    assert checks["speed"]["status"] == "skip" and checks["liveness"]["status"] == "skip"

    size = (home / "store.db").stat().st_size
    with open(home / "store.db", "r+b") as f:                              # a damaged store: pages 2.. overwritten
        f.seek(4096)
        f.write(b"\xff" * (size - 4096))
    assert _doctor(home, *skip) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("FAIL  store: ") and "restore a backup" in line for line in out.splitlines())


def test_frames_over_the_budget_fail(tmp_path, broker, capsys):
    home = _home(tmp_path, broker.port, budget_ms=0.001)
    assert _doctor(home, "--json", "--skip", "camera") == 1
    c = _by_name(capsys.readouterr().out)["speed"]
    assert c["status"] == "fail" and "budget 0.001 ms" in c["message"] and c["details"]["frame"] == "640x480"


def test_a_bad_config_fails_and_skips_what_needs_it(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config_path(home).write_text("[decision]\nk = 9\nn = 5\n")
    assert _doctor(home, "--json") == 1
    checks = _by_name(capsys.readouterr().out)
    assert checks["config"]["status"] == "fail" and "decision.k = 9" in checks["config"]["message"]
    assert all(checks[n]["status"] == "skip" for n in ("bundle", "disk", "camera", "door", "speed"))
    assert checks["store"]["status"] == "warn"                             # nobody enrolled yet


def test_key_check_follows_the_key_file_and_the_sealed_store(tmp_path):
    from facegate.edge_runtime.crypto import write_new_key

    home, keys = tmp_path / "home", tmp_path / "keys"
    home.mkdir(mode=0o700)
    keys.mkdir()
    a, b = write_new_key(keys / "a.key"), write_new_key(keys / "b.key")
    with Store(store_path(home), key=a) as s:
        s.enroll("Ana", np.ones((2, 4), np.float32), "b", "fake")

    def key_check(config: str):
        config_path(home).write_text(config)
        return {c.name: c for c in run_checks(home, config_path(home), skip=("camera", "door", "speed"))}["key"]

    c = key_check(f'[privacy]\nkey_file = "{keys / "a.key"}"\n')
    assert c.status == "ok" and c.details["key_id"] == a.id
    c = key_check(f'[privacy]\nkey_file = "{keys / "b.key"}"\n')
    assert c.status == "fail" and a.id in c.message and b.id in c.message and "rotate-key" in c.message
    c = key_check("")
    assert c.status == "fail" and "key_file is unset" in c.message and c.details["sealed_with"] == [a.id]
    (keys / "a.key").chmod(0o644)
    c = key_check(f'[privacy]\nkey_file = "{keys / "a.key"}"\n')
    assert c.status == "fail" and "chmod 400" in c.message
    c = key_check(f'[privacy]\nkey_file = "{keys / "gone.key"}"\n')
    assert c.status == "fail" and "does not exist" in c.message


def test_a_clock_before_the_bundle_or_the_newest_audit_row_fails(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    with Store(store_path(home), clock=lambda: 2e9) as s:                  # an audit row from 2033
        s.log("door_open", "Ana")
    skip = ("camera", "door", "speed")
    c = {c.name: c for c in run_checks(home, config_path(home), skip=skip, clock=lambda: 1e9)}["clock"]
    assert c.status == "fail" and "before this bundle was built" in c.message
    c = {c.name: c for c in run_checks(home, config_path(home), skip=skip, clock=lambda: 1.9e9)}["clock"]
    assert c.status == "fail" and "before the store's newest audit row" in c.message
    c = {c.name: c for c in run_checks(home, config_path(home), skip=skip, clock=lambda: 2e9 + 60)}["clock"]
    assert c.status == "ok"


def test_help_and_unknown_checks(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["doctor", "--help"])
    assert e.value.code == 0 and "--json" in capsys.readouterr().out
    assert _doctor(tmp_path / "home", "--skip", "camra") == 1
    assert "no check named 'camra'" in capsys.readouterr().err


def test_liveness_line_follows_the_bundle_and_the_config(tmp_path, liveness_bundle):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config_path(home).write_text("[doctor]\ntimed_frames = 2\nframe_budget_ms = 1e6\n")
    skip = ("camera", "door")
    checks = {c.name: c for c in run_checks(home, config_path(home), liveness_bundle, skip=skip)}
    assert checks["liveness"].status == "ok" and checks["liveness"].message == "on (threshold 0.72)"
    quality = ["quality"] if read_manifest(liveness_bundle).quality is not None else []
    assert checks["speed"].details["stages"] == ["detect", "embed", *quality, "liveness"]   # as the door runs it
    config_path(home).write_text("[liveness]\nenabled = false\n")
    checks = {c.name: c for c in run_checks(home, config_path(home), liveness_bundle, skip=skip + ("speed",))}
    assert checks["liveness"].status == "warn" and "enabled = false" in checks["liveness"].message


def test_webhook_door_is_reached_by_tcp_without_a_request(tmp_path):
    import socket
    import threading

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    secret = tmp_path / "door.key"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    server = socket.create_server(("127.0.0.1", 0))
    port, received = server.getsockname()[1], []

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.settimeout(0.5)
            try:
                received.append(conn.recv(100))
            except OSError:
                received.append(b"")
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    config_path(home).write_text(f'[door]\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/open"\n'
                                 f'secret_file = "{secret}"\n')
    skip = ("bundle", "camera", "speed")
    door = {c.name: c for c in run_checks(home, config_path(home), skip=skip)}["door"]
    assert door.status == "ok" and f"127.0.0.1:{port} accepts connections" in door.message
    t.join(5)
    assert received == [b""]                                    # connected, nothing sent: no door command
    server.close()
    door = {c.name: c for c in run_checks(home, config_path(home), skip=skip)}["door"]
    assert door.status == "fail" and f"webhook host 127.0.0.1:{port} unreachable" in door.message
    secret.chmod(0o644)
    door = {c.name: c for c in run_checks(home, config_path(home), skip=skip)}["door"]
    assert door.status == "fail" and "chmod 600" in door.message
