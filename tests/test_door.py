"""Doors: dry run, GPIO relay with a fake gpiozero, webhook against a local server, MQTT with a fake paho
(the real broker: test_door_mqtt_broker.py; deadlines: test_door_delivery.py)."""
import logging
import os
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from door_fakes import wait_until

from facegate.edge_runtime.config import ConfigError, DoorConfig
from facegate.edge_runtime.door import signing
from facegate.edge_runtime.door.actuators import (
    DoorError,
    DoorLibraryError,
    GpioDoor,
    LogDoor,
    MqttDoor,
    WebhookDoor,
    make_door,
)

SECRET = b"s" * 32


@pytest.fixture
def secret_file(tmp_path):
    """A shared secret file as `make_door` wants it: (absolute path as str, its secret bytes)."""
    path = signing.new_secret_file(tmp_path / "door.key")
    return str(path), signing.read_secret(path)


class FakeOutputDevice:
    """gpiozero.OutputDevice stand-in: `value` 1 = active (door unlocked), 0 = inactive (locked)."""

    instances = []

    def __init__(self, pin, active_high=True, initial_value=False):
        self.pin, self.active_high = pin, active_high
        self.value = 1 if initial_value else 0
        self.closed = False
        self.fail_on = False
        self.history = [self.value]
        FakeOutputDevice.instances.append(self)

    def on(self):
        if self.fail_on:
            raise OSError("relay driver fault")
        self.value = 1
        self.history.append(1)

    def off(self):
        self.value = 0
        self.history.append(0)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_gpiozero(monkeypatch):
    FakeOutputDevice.instances = []
    mod = types.ModuleType("gpiozero")
    mod.OutputDevice = FakeOutputDevice
    monkeypatch.setitem(sys.modules, "gpiozero", mod)
    return mod


def test_log_door_is_a_dry_run(caplog):
    caplog.set_level(logging.INFO, logger="facegate.edge_runtime.door")
    with make_door(DoorConfig()) as door:
        assert isinstance(door, LogDoor)
        opened = door.open("Zoë", "3 of 5 frames")
        assert (opened.done, opened.delivered, opened.event, opened.person) == (True, True, "open", "Zoë")
        assert door.lock().delivered is True
    text = caplog.text
    assert "would open for Zoë for 3.0 s (3 of 5 frames)" in text and text.count("would lock") == 2   # lock + close


def test_gpio_door_is_locked_on_start_opens_and_relocks(fake_gpiozero):
    door = make_door(DoorConfig(kind="gpio", gpio_pin=17, active_high=False, open_s=0.1))
    dev = FakeOutputDevice.instances[-1]
    assert isinstance(door, GpioDoor)
    assert (dev.pin, dev.active_high, dev.value) == (17, False, 0)        # locked from the start
    t0 = time.monotonic()
    door.open("Alice")
    assert dev.value == 1
    assert wait_until(lambda: dev.value == 0), "door did not relock"
    assert time.monotonic() - t0 >= 0.09
    door.open("Alice")
    door.lock()                                                            # lock now, before open_s
    assert dev.value == 0
    door.close()
    assert dev.value == 0 and dev.closed
    door.close()                                                           # idempotent
    with pytest.raises(DoorError, match="closed"):
        door.open("Alice")


def test_gpio_reopening_extends_the_open_time(fake_gpiozero):
    with GpioDoor(5, open_s=0.5) as door:
        dev = FakeOutputDevice.instances[-1]
        door.open("A")
        time.sleep(0.3)
        door.open("A")
        time.sleep(0.3)              # past the first opening's 0.5 s: still open thanks to the second
        assert dev.value == 1
        assert wait_until(lambda: dev.value == 0)
        assert dev.history[-1] == 0 and dev.history.count(1) == 2


def test_gpio_locks_on_exception_and_on_device_error(fake_gpiozero):
    with pytest.raises(RuntimeError, match="crash"):
        with GpioDoor(4, open_s=60.0) as door:
            dev = FakeOutputDevice.instances[-1]
            door.open("A")
            assert dev.value == 1
            raise RuntimeError("crash in the recognition loop")
    assert dev.value == 0 and dev.closed

    door = GpioDoor(4, open_s=60.0)
    dev = FakeOutputDevice.instances[-1]
    dev.fail_on = True
    failed = door.open("A")                                # a relay fault is an outcome, not an exception
    assert failed.delivered is False and "relay error on GPIO pin 4: relay driver fault" in failed.error
    assert dev.value == 0 and dev.history[-1] == 0
    assert door.close().delivered is True and door.close() is None         # one lock at close, then nothing


def test_missing_libraries_name_the_pip_package(monkeypatch, secret_file):
    monkeypatch.setitem(sys.modules, "gpiozero", None)                     # import gpiozero -> ImportError
    with pytest.raises(DoorLibraryError, match="pip install gpiozero"):
        make_door(DoorConfig(kind="gpio", gpio_pin=17))
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(DoorLibraryError, match="pip install paho-mqtt"):
        make_door(DoorConfig(kind="mqtt", mqtt_host="localhost", secret_file=secret_file[0]))


def test_network_doors_need_a_private_secret_file(tmp_path):
    with pytest.raises(ConfigError, match="needs door.secret_file"):
        make_door(DoorConfig(kind="webhook", url="http://127.0.0.1:9/"))
    with pytest.raises(ConfigError, match="needs door.secret_file"):
        make_door(DoorConfig(kind="mqtt", mqtt_host="localhost"))
    with pytest.raises(ConfigError, match="must be an absolute path"):
        DoorConfig(kind="webhook", url="http://127.0.0.1:9/", secret_file="door.key")
    key = tmp_path / "door.key"
    with pytest.raises(signing.SecretError, match="cannot read"):
        make_door(DoorConfig(kind="webhook", url="http://127.0.0.1:9/", secret_file=str(key)))
    key.write_text("x" * 40)
    os.chmod(key, 0o644)
    with pytest.raises(signing.SecretError, match="chmod 600"):
        make_door(DoorConfig(kind="webhook", url="http://127.0.0.1:9/", secret_file=str(key)))
    key.write_text("short\n")
    os.chmod(key, 0o600)
    with pytest.raises(signing.SecretError, match="holds 5 bytes; at least 32"):
        make_door(DoorConfig(kind="webhook", url="http://127.0.0.1:9/", secret_file=str(key)))


class _Hook(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.path, self.headers["Content-Type"], body, self.headers[signing.SIGNATURE_HEADER]))
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/ok")
        else:
            self.send_response(204 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args):
        pass


def _outcome(cmd):
    assert cmd.wait(5), "the command never got an outcome"
    return cmd.delivered, cmd.error


def test_webhook_posts_signed_json_and_reports_failures(secret_file, caplog):
    path, secret = secret_file
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    caplog.set_level(logging.ERROR, logger="facegate.edge_runtime.door")
    try:
        door = make_door(DoorConfig(kind="webhook", url=f"http://127.0.0.1:{port}/ok", open_s=2.5, secret_file=path))
        assert _outcome(door.open("Zoë", "k of n")) == (True, "")
        assert _outcome(door.lock()) == (True, "")
        assert door.close().delivered is True and door.close() is None              # one lock at close
        (p1, ct, body1, sig1), (_, _, body2, sig2), (_, _, body3, sig3) = _Hook.received
        assert (p1, ct) == ("/ok", "application/json")
        guard = signing.ReplayGuard()
        ev1, ev2, ev3 = (signing.verify(b, s, secret, replay=guard) for b, s in ((body1, sig1), (body2, sig2),
                                                                                   (body3, sig3)))
        assert (ev1["event"], ev1["person"], ev1["reason"], ev1["open_s"]) == ("open", "Zoë", "k of n", 2.5)
        assert ev1["expires"] == pytest.approx(ev1["ts"] + 2.0)                   # timeout_s
        assert (ev2["event"], ev2["person"], ev3["event"]) == ("lock", None, "lock")
        delivered, error = _outcome(WebhookDoor(f"http://127.0.0.1:{port}/fail", secret=SECRET).open("A"))
        assert not delivered and "HTTP 500" in error and "HTTP 500" in caplog.text
        _Hook.received = []
        delivered, error = _outcome(WebhookDoor(f"http://127.0.0.1:{port}/moved", secret=SECRET).open("A"))
        assert not delivered and "HTTP 302" in error and [r[0] for r in _Hook.received] == ["/moved"]   # not followed
    finally:
        server.shutdown()
        server.server_close()
    t0 = time.monotonic()
    delivered, error = _outcome(WebhookDoor(f"http://127.0.0.1:{port}/ok", timeout_s=0.5, secret=SECRET).open("A"))
    assert not delivered and time.monotonic() - t0 < 3 and "unreachable" in error   # nobody listening
    with pytest.raises(ValueError, match="http"):
        WebhookDoor("file:///etc/passwd", secret=SECRET)
    with pytest.raises(signing.SecretError, match="at least 32"):
        WebhookDoor(f"http://127.0.0.1:{port}/ok", secret=b"short")


def test_mqtt_door_publishes_signed_json_at_qos0_never_retained(monkeypatch, secret_file):
    path, secret = secret_file
    published = []

    class Info:
        rc = 0

        def wait_for_publish(self, timeout):
            pass

        def is_published(self):
            return True

    class Client:
        def __init__(self, api=None):
            self.api = api

        def reconnect_delay_set(self, lo, hi):
            self.delays = (lo, hi)

        def connect_async(self, host, port, keepalive):
            self.addr = (host, port)

        def loop_start(self):
            self.on_connect(self, None, {}, 0, None)

        def loop_stop(self):
            published.append(("loop_stop",))

        def disconnect(self):
            published.append(("disconnect",))

        def publish(self, topic, payload, qos, retain):
            ev = signing.verify_mqtt(payload, secret, replay=signing.ReplayGuard())
            published.append((topic, ev["event"], ev["person"], qos, retain))
            return Info()

    client_mod = types.ModuleType("paho.mqtt.client")
    client_mod.Client = Client
    client_mod.CallbackAPIVersion = types.SimpleNamespace(VERSION2="v2")
    monkeypatch.setitem(sys.modules, "paho", types.ModuleType("paho"))
    monkeypatch.setitem(sys.modules, "paho.mqtt", types.ModuleType("paho.mqtt"))
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", client_mod)
    door = make_door(DoorConfig(kind="mqtt", mqtt_host="broker", mqtt_port=1884, mqtt_topic="site/door",
                                secret_file=path))
    assert isinstance(door, MqttDoor) and door._client.addr == ("broker", 1884) and door._client.api == "v2"
    assert _outcome(door.open("Ana")) == (True, "")
    door.close()
    assert published == [("site/door", "open", "Ana", 0, False), ("site/door", "lock", None, 0, False),
                         ("disconnect",), ("loop_stop",)]
