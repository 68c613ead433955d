"""Doors: dry run, GPIO relay with a fake gpiozero, webhook against a local server, MQTT with a fake paho."""
import json
import logging
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from facegate.edge_runtime.config import DoorConfig
from facegate.edge_runtime.door.actuators import (
    DoorError,
    DoorLibraryError,
    GpioDoor,
    LogDoor,
    MqttDoor,
    WebhookDoor,
    make_door,
)


def _wait_for(cond, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


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
        assert door.open("Zoë", "3 of 5 frames") is True
        assert door.lock() is True
    text = caplog.text
    assert "would open for Zoë for 3.0 s (3 of 5 frames)" in text and "would lock" in text


def test_gpio_door_is_locked_on_start_opens_and_relocks(fake_gpiozero):
    door = make_door(DoorConfig(kind="gpio", gpio_pin=17, active_high=False, open_s=0.1))
    dev = FakeOutputDevice.instances[-1]
    assert isinstance(door, GpioDoor)
    assert (dev.pin, dev.active_high, dev.value) == (17, False, 0)        # locked from the start
    t0 = time.monotonic()
    door.open("Alice")
    assert dev.value == 1
    assert _wait_for(lambda: dev.value == 0), "door did not relock"
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
        assert _wait_for(lambda: dev.value == 0)
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
    with pytest.raises(DoorError, match="told to lock"):
        door.open("A")
    assert dev.value == 0 and dev.history[-1] == 0
    door.close()


def test_missing_libraries_name_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", None)                     # import gpiozero -> ImportError
    with pytest.raises(DoorLibraryError, match="pip install gpiozero"):
        make_door(DoorConfig(kind="gpio", gpio_pin=17))
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(DoorLibraryError, match="pip install paho-mqtt"):
        make_door(DoorConfig(kind="mqtt", mqtt_host="localhost"))


class _Hook(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_posts_json_and_logs_failures(caplog):
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        door = make_door(DoorConfig(kind="webhook", url=f"http://127.0.0.1:{port}/ok", open_s=2.5))
        assert door.open("Zoë", "k of n") is True
        assert door.lock() is True
        (p1, ct, ev1), (_, _, ev2) = _Hook.received
        assert (p1, ct) == ("/ok", "application/json")
        assert (ev1["event"], ev1["person"], ev1["reason"], ev1["open_s"]) == ("open", "Zoë", "k of n", 2.5)
        assert ev2["event"] == "lock" and ev2["person"] is None
        caplog.set_level(logging.ERROR, logger="facegate.edge_runtime.door")
        assert WebhookDoor(f"http://127.0.0.1:{port}/fail").open("A") is False          # HTTP 500
        assert "HTTP 500" in caplog.text
    finally:
        server.shutdown()
        server.server_close()
    t0 = time.monotonic()
    assert WebhookDoor(f"http://127.0.0.1:{port}/ok", timeout_s=0.5).open("A") is False   # nobody listening
    assert time.monotonic() - t0 < 3 and "unreachable" in caplog.text
    with pytest.raises(ValueError, match="http"):
        WebhookDoor("file:///etc/passwd")


def test_mqtt_door_publishes_json(monkeypatch):
    published = []

    class Client:
        def __init__(self, api=None):
            self.api = api

        def connect(self, host, port, keepalive):
            self.addr = (host, port)

        def loop_start(self):
            pass

        def loop_stop(self):
            pass

        def disconnect(self):
            published.append(("disconnect",))

        def publish(self, topic, payload, qos):
            published.append((topic, json.loads(payload)["event"], json.loads(payload)["person"], qos))
            return types.SimpleNamespace(rc=0, wait_for_publish=lambda timeout: True)

    client_mod = types.ModuleType("paho.mqtt.client")
    client_mod.Client = Client
    client_mod.CallbackAPIVersion = types.SimpleNamespace(VERSION2="v2")
    monkeypatch.setitem(sys.modules, "paho", types.ModuleType("paho"))
    monkeypatch.setitem(sys.modules, "paho.mqtt", types.ModuleType("paho.mqtt"))
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", client_mod)
    door = make_door(DoorConfig(kind="mqtt", mqtt_host="broker", mqtt_port=1884, mqtt_topic="site/door"))
    assert isinstance(door, MqttDoor) and door._client.addr == ("broker", 1884) and door._client.api == "v2"
    assert door.open("Ana") is True
    door.close()
    assert published == [("site/door", "lock", None, 1), ("site/door", "open", "Ana", 1),
                         ("site/door", "lock", None, 1), ("disconnect",)]
