"""Home Assistant MQTT discovery against a real mosquitto started here: the discovery configs, the lock
state on an opening, the last person, the alerts, "online" and "offline" (at a clean exit and, as the last
will, when the door process is killed), everything published again after the broker comes back.

Needs /usr/sbin/mosquitto and paho-mqtt (the dev extra): skipped without them, failed under CI=true.
"""
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from door_fakes import store_with_ana, wait_until
from facegate.edge_runtime.config import Config, ConfigError, HomeAssistantConfig
from facegate.edge_runtime.door.actuators import LogDoor
from facegate.edge_runtime.door.decision import ATTACK, DoorDecider
from facegate.edge_runtime.door.home_assistant import EventTee, HomeAssistant, ReportingDoor
from facegate.edge_runtime.door.runner import Runner
from test_door_mqtt_broker import Broker, mqtt  # noqa: F401  (the fixture)
from test_door_runner import FRAME, FakeRecognizer

CFG = HomeAssistantConfig(device_id="porch", device_name="Porch")
CONFIGS = {"homeassistant/binary_sensor/facegate_porch/lock/config",
           "homeassistant/sensor/facegate_porch/last_person/config", "homeassistant/event/facegate_porch/alert/config"}


class Listener:
    """A Home Assistant stand-in: subscribes to the discovery prefix and facegate's topics and keeps
    (topic, payload, retained) of every message."""

    def __init__(self, paho, port: int):
        self.messages = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([("homeassistant/#", 1), ("facegate/#", 1)])
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), m.retain))
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def last(self, topic: str):
        found = [p for t, p, _ in self.messages if t == topic]
        return found[-1] if found else None

    def retained(self) -> dict:
        return {t: p for t, p, r in self.messages if r}

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(mqtt, tmp_path):  # noqa: F811
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def store(tmp_path):
    s = store_with_ana(tmp_path / "store.db")
    yield s
    s.close()


def _listen(mqtt, broker, wanted: int = 0) -> Listener:  # noqa: F811
    listener = Listener(mqtt, broker.port)
    assert wait_until(lambda: listener.client.is_connected(), timeout=10)
    time.sleep(0.3)                                                       # the subscription is in place
    if wanted:
        assert wait_until(lambda: len(listener.retained()) >= wanted, timeout=5), listener.messages
    return listener


def _late_listener(mqtt, broker, wanted: int, timeout: float = 15.0) -> Listener:  # noqa: F811
    """A subscriber that comes late and finds at least `wanted` retained messages. One that subscribed while
    the announcements were still on their way gets some of them live (not retained): it leaves and a new one
    subscribes, until one finds them all retained or `timeout` passes."""
    end = time.monotonic() + timeout
    while True:
        listener = Listener(mqtt, broker.port)
        assert wait_until(lambda: listener.client.is_connected(), timeout=10)
        if wait_until(lambda: len(listener.retained()) >= wanted, timeout=2) or time.monotonic() > end:
            return listener
        listener.close()


def test_the_door_appears_in_home_assistant_and_reports_an_opening(mqtt, broker, store):  # noqa: F811
    ha_cfg = HomeAssistantConfig(device_id="porch", device_name="Porch", publish_names=True)
    listener = _listen(mqtt, broker)
    ha = HomeAssistant(ha_cfg, "127.0.0.1", broker.port, "9.9.9")
    door = ReportingDoor(LogDoor(open_s=0.6), ha)
    events = io.StringIO()
    runner = Runner(FakeRecognizer([None, "Ana"]), store, door, DoorDecider(1, 1, 0.0), EventTee(events, ha))
    try:
        assert ha.connected
        assert wait_until(lambda: listener.last("facegate/porch/availability") == "online", timeout=5)
        configs = {t: json.loads(p) for t, p, _ in listener.messages if t.endswith("/config")}
        assert set(configs) == CONFIGS
        assert len({c["unique_id"] for c in configs.values()}) == 3
        for c in configs.values():
            assert c["state_topic"].startswith("facegate/porch/")
            assert c["availability_topic"] == "facegate/porch/availability"
            assert c["device"] == {"identifiers": ["facegate_porch"], "name": "Porch", "model": "facegate door",
                                   "manufacturer": "facegate", "sw_version": "9.9.9"}
            assert "command_topic" not in c                                  # Home Assistant cannot open the door
        lock = configs["homeassistant/binary_sensor/facegate_porch/lock/config"]
        assert (lock["device_class"], lock["payload_on"], lock["payload_off"]) == ("lock", "unlocked", "locked")
        assert configs["homeassistant/event/facegate_porch/alert/config"]["event_types"] == [
            "unknown_face", "presentation_attack", "liveness_not_confirmed"]
        assert listener.last("facegate/porch/lock") == "locked"

        runner.process(0.0, FRAME)                                           # an unknown face
        assert wait_until(lambda: listener.last("facegate/porch/event") is not None, timeout=3)
        alert = json.loads(listener.last("facegate/porch/event"))
        assert alert["event_type"] == "unknown_face" and alert["reason"] == "unknown" and "person" not in alert
        assert wait_until(lambda: listener.last("facegate/porch/last_person") == "unknown", timeout=3)
        runner.process(0.1, FRAME)                                           # Ana: the door opens
        assert wait_until(lambda: listener.last("facegate/porch/lock") == "unlocked", timeout=3)
        assert wait_until(lambda: listener.last("facegate/porch/last_person") == "Ana", timeout=3)
        assert wait_until(lambda: listener.last("facegate/porch/lock") == "locked", timeout=3)   # relocked after open_s
        assert [json.loads(line)["person"] for line in events.getvalue().splitlines()] == ["unknown", "Ana"]
        assert [p for t, p, _ in listener.messages if t == "facegate/porch/lock"] == ["locked", "unlocked", "locked"]
        late = _listen(mqtt, broker, wanted=6)                               # what Home Assistant finds on (re)start
        assert late.retained() == {**{t: listener.last(t) for t in CONFIGS}, "facegate/porch/availability": "online",
                                   "facegate/porch/lock": "locked", "facegate/porch/last_person": "Ana"}
        late.close()
    finally:
        runner.close()
        ha.close()
    assert wait_until(lambda: listener.last("facegate/porch/availability") == "offline", timeout=5)
    assert all(not r for t, _, r in listener.messages if t == "facegate/porch/event")   # alerts are never retained
    listener.close()


def test_alerts_are_one_per_type_at_a_time_and_names_stay_home_by_default(mqtt, broker):  # noqa: F811
    listener = _listen(mqtt, broker)
    ha = HomeAssistant(CFG, "127.0.0.1", broker.port, "1")
    try:
        assert wait_until(lambda: listener.last("facegate/porch/availability") == "online", timeout=5)
        for _ in range(3):
            ha.frame_event({"decision": "deny", "reason": ATTACK, "person": "Ana"})
            ha.frame_event({"decision": "deny", "reason": "agreement", "person": "Ana"})   # still voting: no alert
        ha.opened("Ana")
        assert wait_until(lambda: listener.last("facegate/porch/last_person") == "known", timeout=3)
        alerts = [json.loads(p) for t, p, _ in listener.messages if t == "facegate/porch/event"]
        assert alerts == [{"event_type": "presentation_attack", "reason": ATTACK, "time": None}]   # no name
    finally:
        ha.close()
        listener.close()


def test_after_the_broker_comes_back_discovery_online_and_the_state_are_published_again(mqtt, broker, tmp_path):  # noqa: F811
    ha = HomeAssistant(CFG, "127.0.0.1", broker.port, "1")
    door = ReportingDoor(LogDoor(open_s=60.0), ha)
    try:
        assert wait_until(lambda: ha.connected, timeout=5)
        broker.stop()
        (tmp_path / "mosquitto.db").unlink(missing_ok=True)               # the broker forgets every retained message
        assert wait_until(lambda: not ha.connected, timeout=10)
        opened = door.open("Ana")                                         # the door goes on without the broker
        assert opened.delivered
        broker.start()
        assert wait_until(lambda: ha.connected, timeout=20)
        late = _late_listener(mqtt, broker, wanted=6)
        retained = late.retained()
        assert CONFIGS <= set(retained) and retained["facegate/porch/availability"] == "online"
        assert retained["facegate/porch/lock"] == "unlocked" and retained["facegate/porch/last_person"] == "known"
        late.close()
    finally:
        door.close()
        ha.close()


KILLED_DOOR = """
import sys, time
from facegate.edge_runtime.config import HomeAssistantConfig
from facegate.edge_runtime.door.home_assistant import HomeAssistant
ha = HomeAssistant(HomeAssistantConfig(device_id="porch"), "127.0.0.1", int(sys.argv[1]), "1")
print("connected" if ha.connected else "not connected", flush=True)
time.sleep(60)
"""


def test_a_killed_door_goes_offline_by_its_last_will(mqtt, broker):  # noqa: F811
    listener = _listen(mqtt, broker)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DOOR, str(broker.port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "connected"
        assert wait_until(lambda: listener.last("facegate/porch/availability") == "online", timeout=5)
        os.kill(proc.pid, signal.SIGKILL)                                 # no clean exit: only the will can say it
        proc.wait(10)
        assert wait_until(lambda: listener.last("facegate/porch/availability") == "offline", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        listener.close()
    late = _listen(mqtt, broker, wanted=4)
    assert late.retained()["facegate/porch/availability"] == "offline"    # retained for Home Assistant's restart
    late.close()


def test_home_assistant_needs_the_broker_of_the_door_config():
    cfg = Config.from_dict({"home_assistant": {"enabled": True}})
    with pytest.raises(ConfigError, match="door.mqtt_host"):
        HomeAssistant.from_config(cfg, "1")
    with pytest.raises(ConfigError, match="device_id"):
        HomeAssistantConfig(device_id="front door/1")


def test_facegate_run_on_the_hamilton_clip_tells_home_assistant(mqtt, broker, data_dir, tmp_path):  # noqa: F811
    from facegate.main import main

    clips, home = data_dir / "videos/face_recognition", tmp_path / "home"
    assert main(["enroll", "--home", str(home), "--name", "Lin-Manuel Miranda",
                 str(clips / "lin-manuel-miranda.png")]) == 0
    config = tmp_path / "config.toml"
    config.write_text(f'[door]\nmqtt_host = "127.0.0.1"\nmqtt_port = {broker.port}\nopen_s = 0.5\n'
                      '[home_assistant]\nenabled = true\ndevice_id = "porch"\npublish_names = true\n')
    listener = _listen(mqtt, broker)
    try:
        assert main(["run", "--home", str(home), "--config", str(config), "--source",
                     str(clips / "short_hamilton_clip.mp4"), "--events", str(tmp_path / "events.jsonl")]) == 0
        assert wait_until(lambda: listener.last("facegate/porch/availability") == "offline", timeout=5)
        assert CONFIGS <= {t for t, _, _ in listener.messages}
        availability = [p for t, p, _ in listener.messages if t == "facegate/porch/availability"]
        assert availability[0] == "online" and availability[-1] == "offline"
        lock = [p for t, p, _ in listener.messages if t == "facegate/porch/lock"]
        assert "unlocked" in lock and lock[-1] == "locked"                  # opened for him, locked at exit
        assert "Lin-Manuel Miranda" in [p for t, p, _ in listener.messages if t == "facegate/porch/last_person"]
    finally:
        listener.close()


def test_a_network_door_shows_unlocked_only_once_its_open_was_delivered(mqtt, broker):  # noqa: F811
    from facegate.edge_runtime.door.actuators import MqttDoor

    listener = _listen(mqtt, broker)
    ha = HomeAssistant(CFG, "127.0.0.1", broker.port, "1")
    door = ReportingDoor(MqttDoor("127.0.0.1", broker.port, "site/door", open_s=0.5, timeout_s=1.0,
                                  secret=b"m" * 32), ha)
    try:
        assert wait_until(lambda: door.door.connected and ha.connected, timeout=10)
        sent = door.open("Ana")
        assert sent.wait(2) and sent.delivered, sent.error
        assert wait_until(lambda: listener.last("facegate/porch/lock") == "unlocked", timeout=3)
        assert wait_until(lambda: listener.last("facegate/porch/lock") == "locked", timeout=3)   # open_s later
        broker.stop()
        assert wait_until(lambda: not door.door.connected, timeout=10)
        failed = door.open("Ana")                                            # not delivered: never "unlocked"
        assert failed.wait(2) and failed.delivered is False
        assert ha._state["lock"] == "locked"
    finally:
        door.close()
        ha.close()
        listener.close()
