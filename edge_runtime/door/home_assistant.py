"""The door in Home Assistant, by MQTT discovery: it appears there by itself, read-only.

Entities (one device, `facegate_<device_id>`):
  * binary_sensor "Lock" (device_class lock): "locked" / "unlocked" on facegate/<device_id>/lock, retained.
    Read-only on purpose: Home Assistant's MQTT lock entity needs a command topic, and facegate takes
    no door commands from the broker (anyone who may publish there could open the door);
  * sensor "Last person" on facegate/<device_id>/last_person, retained: the person the door last opened
    for, or "unknown" after an unknown face; with publish_names = false only "known" / "unknown";
  * event "Alert" on facegate/<device_id>/event, never retained: {"event_type": "unknown_face" |
    "presentation_attack" | "liveness_not_confirmed", "reason": the door event's reason}, at most one per
    type every ALERT_EVERY_S seconds;
  * availability on facegate/<device_id>/availability, retained: "online" when connected, "offline" at a
    clean exit and, as the MQTT last will, when the process dies or loses the broker.

The discovery configs are retained; on every (re)connection the discovery configs, "online" and the
current states are published again. This client is not the door's: the door's commands keep their own
connection, QoS 0 and never retained (actuators.MqttDoor). While the broker is away, states are kept
and published on reconnection; the door itself goes on, locked-safe, as without Home Assistant.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import IO

from ..config import Config, ConfigError, HomeAssistantConfig
from .actuators import Door, _optional_import, _RelockTimer
from .decision import ATTACK
from .delivery import Command

log = logging.getLogger(__name__)

LOCKED, UNLOCKED = "locked", "unlocked"
ONLINE, OFFLINE = "online", "offline"
ALERTS = {"unknown": "unknown_face", ATTACK: "presentation_attack", "liveness": "liveness_not_confirmed"}
ALERT_EVERY_S = 5.0             # at most one alert of a type per this many seconds (the door sees ~15 frames/s)


def state_topics(device_id: str) -> dict[str, str]:
    """The door's state topics: availability, lock, last_person, event."""
    base = f"facegate/{device_id}"
    return {k: f"{base}/{k}" for k in ("availability", "lock", "last_person", "event")}


def discovery_messages(cfg: HomeAssistantConfig, sw_version: str) -> dict[str, dict]:
    """{discovery config topic: payload} of the lock binary_sensor, the last-person sensor and the alert event."""
    t = state_topics(cfg.device_id)
    uid = f"facegate_{cfg.device_id}"
    common = {"availability_topic": t["availability"], "payload_available": ONLINE, "payload_not_available": OFFLINE,
              "device": {"identifiers": [uid], "name": cfg.device_name, "model": "facegate door",
                         "manufacturer": "facegate", "sw_version": sw_version}}
    entities = {
        ("binary_sensor", "lock"): {"name": "Lock", "device_class": "lock", "state_topic": t["lock"],
                                    "payload_on": UNLOCKED, "payload_off": LOCKED},
        ("sensor", "last_person"): {"name": "Last person", "icon": "mdi:account-question",
                                    "state_topic": t["last_person"]},
        ("event", "alert"): {"name": "Alert", "state_topic": t["event"], "event_types": list(ALERTS.values())},
    }
    return {f"{cfg.discovery_prefix}/{component}/{uid}/{obj}/config": dict(body, unique_id=f"{uid}_{obj}", **common)
            for (component, obj), body in entities.items()}


class HomeAssistant:
    """One MQTT connection that keeps Home Assistant told about the door (see the module doc).

    `opened`, `locked` and `frame_event` never block and never raise for the broker; `close` says
    "offline" and disconnects. Thread-safe (the frame loop, the relock timer and paho's thread call in).

    Args:
        cfg: the [home_assistant] section.
        host, port: the broker ([door] mqtt_host, mqtt_port).
        sw_version: facegate's version, shown on the device in Home Assistant.
        timeout_s: how long to wait for the first connection (then it goes on in the background) and
            for "offline" to be written at close.
    """

    RECONNECT_S = (1, 10)        # paho's back-off between reconnection attempts, first and longest

    def __init__(self, cfg: HomeAssistantConfig, host: str, port: int, sw_version: str, timeout_s: float = 2.0):
        mqtt = _optional_import("paho.mqtt.client", "paho-mqtt", "Home Assistant")
        self.cfg, self.host, self.port, self.timeout_s = cfg, host, port, float(timeout_s)
        self.topics = state_topics(cfg.device_id)
        self._discovery = discovery_messages(cfg, sw_version)
        self._mutex = threading.RLock()
        self._state = {"lock": LOCKED, "last_person": "none"}
        self._last_alert: dict[str, float] = {}
        self._connected = threading.Event()
        self._closed = False
        api = getattr(mqtt, "CallbackAPIVersion", None)           # paho-mqtt >= 2.0
        client_id = f"facegate-{cfg.device_id}-ha"
        self._client = mqtt.Client(api.VERSION2, client_id=client_id) if api else mqtt.Client(client_id=client_id)
        self._client.will_set(self.topics["availability"], OFFLINE, qos=1, retain=True)
        self._client.reconnect_delay_set(*self.RECONNECT_S)
        self._client.on_connect = lambda *args: self._on_connect(args[3])
        self._client.on_disconnect = lambda *args: self._on_disconnect()
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(self.timeout_s):
            log.error("home assistant: MQTT broker %s:%s not reachable yet; the door works without it and "
                      "publishes its state once it is (retrying in the background)", host, port)

    @classmethod
    def from_config(cls, cfg: Config, sw_version: str) -> "HomeAssistant":
        """From the whole config: [home_assistant] over the broker of [door] mqtt_host / mqtt_port."""
        if not cfg.door.mqtt_host:
            raise ConfigError("home_assistant.enabled = true needs door.mqtt_host (the broker Home Assistant "
                              "listens on), whatever the door kind", "door.mqtt_host")
        return cls(cfg.home_assistant, cfg.door.mqtt_host, cfg.door.mqtt_port, sw_version, cfg.door.timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, rc) -> None:
        if getattr(rc, "is_failure", rc != 0):
            log.error("home assistant: MQTT broker %s:%s refused the connection: %s", self.host, self.port, rc)
            return
        with self._mutex:                 # announced first: `connected` means Home Assistant has been told
            for topic, payload in self._discovery.items():
                self._client.publish(topic, json.dumps(payload), qos=1, retain=True)
            self._client.publish(self.topics["availability"], ONLINE, qos=1, retain=True)
            for key, value in self._state.items():
                self._client.publish(self.topics[key], value, qos=0, retain=True)
            self._connected.set()

    def _on_disconnect(self) -> None:
        if self._connected.is_set() and not self._closed:
            log.error("home assistant: lost the MQTT broker %s:%s; reconnecting", self.host, self.port)
        self._connected.clear()

    def _set(self, key: str, value: str) -> None:
        """Keep a state and publish it (retained) if connected; it is published again on reconnection."""
        with self._mutex:
            self._state[key] = value
            if self._connected.is_set() and not self._closed:
                self._client.publish(self.topics[key], value, qos=0, retain=True)

    def opened(self, person: str) -> None:
        """The door was opened for `person` (a known person): unlocked, and the last person."""
        self._set("lock", UNLOCKED)
        self._set("last_person", person if self.cfg.publish_names else "known")

    def locked(self) -> None:
        """The door is locked again."""
        self._set("lock", LOCKED)

    def frame_event(self, event: dict) -> None:
        """One of the runner's JSON events: a deny for an unknown face, a suspected attack or an unconfirmed
        liveness becomes an alert (at most one per type every ALERT_EVERY_S s); an unknown face also sets
        the last person to "unknown"."""
        kind = ALERTS.get(event.get("reason")) if event.get("decision") == "deny" else None
        if kind is None:
            return
        now = time.monotonic()
        with self._mutex:
            if now - self._last_alert.get(kind, -1e18) < ALERT_EVERY_S:
                return
            self._last_alert[kind] = now
            payload = {"event_type": kind, "reason": event["reason"], "time": event.get("time")}
            if self.cfg.publish_names and kind != "unknown_face" and event.get("person"):
                payload["person"] = event["person"]
            if self._connected.is_set() and not self._closed:
                self._client.publish(self.topics["event"], json.dumps(payload), qos=0, retain=False)
        if kind == "unknown_face":
            self._set("last_person", "unknown")

    def close(self) -> None:
        """Publish "offline" (retained; waited for at most timeout_s) and disconnect. Idempotent."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            info = self._client.publish(self.topics["availability"], OFFLINE, qos=1, retain=True)
        try:
            if self._connected.is_set():
                info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as e:
            log.error("home assistant: could not publish offline: %s", e)
        finally:
            self._client.disconnect()
            self._client.loop_stop()


class ReportingDoor(Door):
    """`door`, telling Home Assistant its state: unlocked once an open is delivered, locked `open_s` later
    (when the door relocks by itself) or when a lock is delivered, and locked at close."""

    def __init__(self, door: Door, ha: HomeAssistant):
        self.door, self.ha, self.open_s = door, ha, door.open_s
        self._relock = _RelockTimer(ha.locked)

    def open(self, person: str, reason: str = "") -> Command:
        cmd = self.door.open(person, reason)
        self._when_done(cmd, lambda: (self.ha.opened(person), self._relock.arm(self.open_s)))
        return cmd

    def lock(self) -> Command:
        cmd = self.door.lock()
        self._when_done(cmd, lambda: (self._relock.cancel(), self.ha.locked()))
        return cmd

    def close(self) -> Command | None:
        self._relock.cancel()
        try:
            return self.door.close()
        finally:
            self.ha.locked()

    @staticmethod
    def _when_done(cmd: Command, delivered) -> None:
        """Call `delivered()` once `cmd` is delivered: now for a local door, from a short-lived thread
        for a network door (the frame loop never waits)."""
        def wait():
            cmd.wait(cmd.remaining())
            if cmd.delivered:
                delivered()
        if cmd.done:
            wait()
        else:
            threading.Thread(target=wait, name="facegate-ha-door", daemon=True).start()


class EventTee:
    """The runner's JSON-line event stream: each line goes on to `out` unchanged and, parsed, to
    `ha.frame_event` (Home Assistant reads the same events any other consumer gets)."""

    def __init__(self, out: IO[str], ha: HomeAssistant):
        self.out, self.ha = out, ha
        self._partial = ""

    def write(self, text: str) -> int:
        n = self.out.write(text)
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.strip():
                self.ha.frame_event(json.loads(line))
        return n

    def flush(self) -> None:
        self.out.flush()
