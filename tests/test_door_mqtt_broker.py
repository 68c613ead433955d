"""MqttDoor against a real mosquitto broker started here: an open decided while the broker is down is
never delivered when it comes back, and every message a subscriber gets is signed, fresh and not retained.

Needs /usr/sbin/mosquitto (Debian's package) and paho-mqtt (the dev extra): skipped without them,
failed under CI=true.
"""
import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from door_fakes import wait_until

from facegate.edge_runtime.door.signing import ReplayGuard, verify_mqtt

SECRET = b"m" * 32
TOPIC = "site/door"


def _need(what: str, found) -> None:
    if not found:
        msg = f"{what} not installed: the MQTT broker tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@pytest.fixture
def mqtt():
    _need("mosquitto (apt-get install mosquitto)", MOSQUITTO)
    try:
        import paho.mqtt.client as client
    except ImportError:
        client = None
    _need("paho-mqtt (pip install paho-mqtt)", client)
    return client


class Broker:
    """A mosquitto on a free local port that keeps its sessions on disk across stop/start, as a real one does."""

    def __init__(self, folder: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nuser {getpass.getuser()}\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_until(self._listening, timeout=10):
            raise RuntimeError("mosquitto did not start listening")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def broker(mqtt, tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


class Receiver:
    """A door controller's subscriber with a persistent session (QoS 1 subscription, clean_session=False),
    so anything the broker accepts for it while it is away is delivered when it is back."""

    def __init__(self, mqtt, port: int):
        self.messages = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="door-controller", clean_session=False)
        self.client.on_connect = lambda c, u, flags, rc, props: c.subscribe(TOPIC, qos=1)
        self.client.on_message = lambda c, u, m: self.messages.append((m.payload, m.retain, time.time()))
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def events(self) -> list[str]:
        return [json.loads(json.loads(p)["message"])["event"] for p, _, _ in self.messages]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _door(port: int, timeout_s: float = 1.0):
    from facegate.edge_runtime.door.actuators import MqttDoor

    return MqttDoor("127.0.0.1", port, TOPIC, open_s=1.0, timeout_s=timeout_s, secret=SECRET)


def test_an_open_that_failed_while_the_broker_was_down_is_never_delivered_after_it_returns(mqtt, broker):
    broker.start()
    receiver = Receiver(mqtt, broker.port)
    door = _door(broker.port)
    try:
        assert wait_until(lambda: door.connected and receiver.client.is_connected(), timeout=15.0)
        time.sleep(0.3)                                                   # the subscription is in place
        sent = door.open("Ana")
        assert sent.wait(3) and sent.delivered, sent.error                # control: a live broker delivers
        assert wait_until(lambda: receiver.events() == ["open"], timeout=5)
        broker.stop()
        assert wait_until(lambda: not door.connected, timeout=15.0)
        failed = door.open("Ana")                                         # the old code: rc=4, kept in paho's queue
        assert failed.wait(3) and failed.delivered is False
        receiver.messages.clear()
        broker.start()
        assert wait_until(lambda: door.connected and receiver.client.is_connected(), timeout=15.0)
        time.sleep(2.0)                                                   # paho resends its queue on reconnect
        assert "open" not in receiver.events(), "an open decided while the broker was down arrived late"
        again = door.open("Ana")                                          # the door works again, at once
        assert again.wait(3) and again.delivered, again.error
        assert wait_until(lambda: receiver.events() == ["open"], timeout=5)
    finally:
        door.close()
        assert wait_until(lambda: receiver.events()[-1:] == ["lock"], timeout=5)       # close: one lock
        receiver.close()
    guard = ReplayGuard()
    for payload, retained, received_at in receiver.messages:
        assert not retained
        verify_mqtt(payload, SECRET, replay=guard, now=received_at)       # signed and fresh on arrival


def test_a_door_started_before_its_broker_fails_opens_at_once_and_connects_later(mqtt, broker):
    t0 = time.monotonic()
    door = _door(broker.port, timeout_s=0.5)                              # nothing listens yet
    assert time.monotonic() - t0 < 1.5 and not door.connected
    early = door.open("Ana")
    assert early.wait(1) and early.delivered is False
    broker.start()
    receiver = Receiver(mqtt, broker.port)
    try:
        assert wait_until(lambda: door.connected and receiver.client.is_connected(), timeout=20)
        time.sleep(1.0)
        assert "open" not in receiver.events()
    finally:
        door.close()
        receiver.close()
