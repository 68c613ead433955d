"""What "open the door" does: a log line (dry run), a GPIO relay, a webhook or an MQTT message.

Every door is fail-secure: it is locked when created, relocks by itself `open_s` seconds after
an opening, and locks on close. Optional device libraries (gpiozero, paho-mqtt) are imported
only when that door is chosen.
"""
from __future__ import annotations

import atexit
import importlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Callable

from ..errors import FacegateError

log = logging.getLogger(__name__)


class DoorError(FacegateError):
    """The door hardware failed; it has been told to lock."""


class DoorLibraryError(DoorError, ImportError):
    """The optional library a door needs is not installed."""


def _optional_import(module: str, pip_name: str, door: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DoorLibraryError(f"the {door} door needs the {module!r} module, which is not installed: "
                               f"pip install {pip_name}  (or set [door] kind = \"log\" for a dry run)") from e


class Door:
    """Interface. `open` unlocks for `open_s` seconds then relocks by itself; `lock` locks now."""

    open_s: float = 3.0

    def open(self, person: str, reason: str = "") -> bool:
        """Unlock for `open_s` seconds. Returns True if the command was delivered."""
        raise NotImplementedError

    def lock(self) -> bool:
        """Lock now. Returns True if the command was delivered."""
        raise NotImplementedError

    def close(self) -> None:
        """Lock and release the device (idempotent)."""

    def __enter__(self) -> "Door":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LogDoor(Door):
    """Dry run: logs what a real door would do."""

    def __init__(self, open_s: float = 3.0):
        self.open_s = float(open_s)

    def open(self, person: str, reason: str = "") -> bool:
        log.info("door (dry run): would open for %s for %.1f s%s", person, self.open_s,
                 f" ({reason})" if reason else "")
        return True

    def lock(self) -> bool:
        log.info("door (dry run): would lock")
        return True


class _RelockTimer:
    """Calls `relock` `open_s` after the latest `arm()`; an older timer never relocks early."""

    def __init__(self, relock: Callable[[], None]):
        self._relock = relock
        self._lock = threading.Lock()
        self._gen = 0
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float) -> None:
        with self._lock:
            self._gen += 1
            if self._timer is not None:
                self._timer.cancel()
            gen = self._gen
            self._timer = threading.Timer(seconds, self._fire, args=(gen,))
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            self._gen += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _fire(self, gen: int) -> None:
        with self._lock:
            if gen != self._gen:
                return
            self._timer = None
        self._relock()


class GpioDoor(Door):
    """A relay on a GPIO pin, driven with gpiozero's OutputDevice.

    Locked (pin inactive) on creation, `open_s` seconds after each opening, on any error, on
    close and at interpreter exit.
    """

    def __init__(self, pin: int, active_high: bool = True, open_s: float = 3.0):
        gpiozero = _optional_import("gpiozero", "gpiozero", "GPIO")
        self.pin, self.open_s = pin, float(open_s)
        self._mutex = threading.RLock()
        self._closed = False
        try:
            self._device = gpiozero.OutputDevice(pin, active_high=active_high, initial_value=False)
        except Exception as e:
            raise DoorError(f"cannot drive GPIO pin {pin}: {e}; check [door] gpio_pin and that this user may use "
                            f"the GPIO (group 'gpio')") from e
        self._timer = _RelockTimer(self._relock)
        self._atexit = self.close
        atexit.register(self._atexit)
        try:
            self.lock()
        except DoorError:
            self.close()
            raise

    def _relock(self) -> None:
        try:
            self.lock()
        except DoorError:
            log.exception("door: relocking GPIO pin %s failed", self.pin)

    def open(self, person: str, reason: str = "") -> bool:
        with self._mutex:
            if self._closed:
                raise DoorError("the GPIO door is closed; create a new one")
            try:
                self._device.on()
            except Exception as e:
                self._safe_off()
                raise DoorError(f"opening the door on GPIO pin {self.pin} failed: {e}; it was told to lock") from e
            self._timer.arm(self.open_s)
        log.info("door: opened for %s for %.1f s%s", person, self.open_s, f" ({reason})" if reason else "")
        return True

    def lock(self) -> bool:
        with self._mutex:
            self._timer.cancel()
            try:
                self._device.off()
            except Exception as e:
                raise DoorError(f"locking the door on GPIO pin {self.pin} failed: {e}; check the wiring") from e
        return True

    def _safe_off(self) -> None:
        try:
            self._device.off()
        except Exception:
            log.exception("door: could not set GPIO pin %s inactive", self.pin)

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._timer.cancel()
            self._safe_off()
            try:
                self._device.close()
            except Exception:
                log.exception("door: closing GPIO pin %s failed", self.pin)
        atexit.unregister(self._atexit)


def _event(kind: str, person: str | None, reason: str, open_s: float) -> dict:
    return {"event": kind, "person": person, "reason": reason, "open_s": open_s, "ts": time.time()}


class WebhookDoor(Door):
    """POSTs a JSON event ({"event": "open"|"lock", "person", "reason", "open_s", "ts"}) to a URL.

    The receiver does the unlocking and relocks after `open_s`. Network errors are logged and
    reported by returning False, never raised.
    """

    def __init__(self, url: str, open_s: float = 3.0, timeout_s: float = 2.0):
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        self.url, self.open_s, self.timeout_s = url, float(open_s), float(timeout_s)

    def _post(self, payload: dict) -> bool:
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
            return True
        except urllib.error.HTTPError as e:
            log.error("door: webhook %s answered HTTP %s to %r", self.url, e.code, payload["event"])
        except (urllib.error.URLError, OSError, ValueError) as e:
            log.error("door: webhook %s unreachable for %r: %s", self.url, payload["event"], getattr(e, "reason", e))
        return False

    def open(self, person: str, reason: str = "") -> bool:
        return self._post(_event("open", person, reason, self.open_s))

    def lock(self) -> bool:
        return self._post(_event("lock", None, "", self.open_s))

    def close(self) -> None:
        self.lock()


class MqttDoor(Door):
    """Publishes JSON events (as WebhookDoor) on an MQTT topic with QoS 1; errors logged, not raised."""

    def __init__(self, host: str, port: int = 1883, topic: str = "facegate/door", open_s: float = 3.0,
                 timeout_s: float = 2.0):
        mqtt = _optional_import("paho.mqtt.client", "paho-mqtt", "MQTT")
        self.host, self.port, self.topic, self.open_s, self.timeout_s = host, port, topic, float(open_s), timeout_s
        api = getattr(mqtt, "CallbackAPIVersion", None)           # paho-mqtt >= 2.0
        self._client = mqtt.Client(api.VERSION2) if api is not None else mqtt.Client()
        self._closed = False
        try:
            self._client.connect(host, port, keepalive=30)
        except Exception as e:                                     # the loop keeps retrying in the background
            log.error("door: MQTT broker %s:%s unreachable (%s); will keep retrying", host, port, e)
            self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        self.lock()

    def _publish(self, payload: dict) -> bool:
        try:
            info = self._client.publish(self.topic, json.dumps(payload), qos=1)
            if getattr(info, "rc", 0) != 0:
                log.error("door: MQTT publish of %r to %s failed (rc=%s)", payload["event"], self.topic, info.rc)
                return False
            return True
        except Exception as e:
            log.error("door: MQTT publish of %r to %s failed: %s", payload["event"], self.topic, e)
            return False

    def open(self, person: str, reason: str = "") -> bool:
        return self._publish(_event("open", person, reason, self.open_s))

    def lock(self) -> bool:
        return self._publish(_event("lock", None, "", self.open_s))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        info = None
        try:
            info = self._client.publish(self.topic, json.dumps(_event("lock", None, "", self.open_s)), qos=1)
            if hasattr(info, "wait_for_publish"):
                info.wait_for_publish(timeout=self.timeout_s)
        except Exception as e:
            log.error("door: MQTT lock message on close failed: %s", e)
        finally:
            self._client.loop_stop()
            self._client.disconnect()


def make_door(cfg) -> Door:
    """The door a config.DoorConfig asks for."""
    if cfg.kind == "log":
        return LogDoor(cfg.open_s)
    if cfg.kind == "gpio":
        return GpioDoor(cfg.gpio_pin, cfg.active_high, cfg.open_s)
    if cfg.kind == "webhook":
        return WebhookDoor(cfg.url, cfg.open_s, cfg.timeout_s)
    if cfg.kind == "mqtt":
        return MqttDoor(cfg.mqtt_host, cfg.mqtt_port, cfg.mqtt_topic, cfg.open_s, cfg.timeout_s)
    raise ValueError(f"unknown door kind {cfg.kind!r}; expected log, gpio, webhook or mqtt")
