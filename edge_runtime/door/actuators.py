"""What "open the door" does: a log line (dry run), a GPIO relay, a webhook or an MQTT message.

Every door is fail-secure: the runner locks it when it starts, it relocks by itself (or its receiver
does) `open_s` seconds after an opening, and it locks once on close; a GPIO relay is also locked the
moment it is created. `open` and `lock` never block the frame
loop and never raise for a device or network failure: they return a `Command` whose outcome says
whether it was delivered. Webhook and MQTT commands are signed (signing.py) and delivered by one
worker thread with a deadline of `timeout_s`; an open not delivered by then is dropped, never sent
late, never retried (delivery.py). Optional device libraries (gpiozero, paho-mqtt) are imported only
when that door is chosen.
"""
from __future__ import annotations

import atexit
import importlib
import logging
import threading
import time
from typing import Callable

from ..config import ConfigError
from ..errors import FacegateError
from . import signing
from .delivery import Command, CommandWorker

log = logging.getLogger(__name__)


class DoorError(FacegateError):
    """The door cannot be used (closed, or the device cannot be set up)."""


class DoorLibraryError(DoorError, ImportError):
    """The optional library a door needs is not installed."""


def _optional_import(module: str, pip_name: str, door: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DoorLibraryError(f"the {door} door needs the {module!r} module, which is not installed: "
                               f"pip install {pip_name}  (or set [door] kind = \"log\" for a dry run)") from e


class Door:
    """Interface. `open` unlocks for `open_s` seconds then relocks by itself; `lock` locks now.

    Both return a Command at once (possibly still pending for a network door); neither raises for a
    device or network failure. `close` locks once and releases the device.
    """

    open_s: float = 3.0

    def open(self, person: str, reason: str = "") -> Command:
        """Unlock for `open_s` seconds; the Command says whether it was delivered."""
        raise NotImplementedError

    def lock(self) -> Command:
        """Lock now; the Command says whether it was delivered."""
        raise NotImplementedError

    def close(self) -> Command | None:
        """Lock once and release the device; returns that lock Command (None when already closed)."""
        return None

    def __enter__(self) -> "Door":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LogDoor(Door):
    """Dry run: logs what a real door would do."""

    def __init__(self, open_s: float = 3.0):
        self.open_s = float(open_s)
        self._closed = False

    def open(self, person: str, reason: str = "") -> Command:
        log.info("door (dry run): would open for %s for %.1f s%s", person, self.open_s,
                 f" ({reason})" if reason else "")
        return Command.finished("open", person, True)

    def lock(self) -> Command:
        log.info("door (dry run): would lock")
        return Command.finished("lock", None, True)

    def close(self) -> Command | None:
        if self._closed:
            return None
        self._closed = True
        return self.lock()


class _RelockTimer:
    """Calls `relock` `open_s` after the latest `arm()`; an older timer never relocks early."""

    def __init__(self, relock: Callable[[], object]):
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
    close and at interpreter exit. A relay error is logged and returned as a failed Command.
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
        self._timer = _RelockTimer(self.lock)
        self._atexit = self.close
        atexit.register(self._atexit)
        first = self.lock()
        if not first.delivered:
            self.close()
            raise DoorError(f"cannot lock the door on GPIO pin {pin}: {first.error}; check the wiring")

    def open(self, person: str, reason: str = "") -> Command:
        with self._mutex:
            if self._closed:
                raise DoorError("the GPIO door is closed; create a new one")
            try:
                self._device.on()
            except Exception as e:
                self._safe_off()
                log.error("door: opening on GPIO pin %s failed: %s; it was told to lock", self.pin, e)
                return Command.finished("open", person, False, f"relay error on GPIO pin {self.pin}: {e}")
            self._timer.arm(self.open_s)
        log.info("door: opened for %s for %.1f s%s", person, self.open_s, f" ({reason})" if reason else "")
        return Command.finished("open", person, True)

    def lock(self) -> Command:
        with self._mutex:
            if self._closed:
                return Command.finished("lock", None, False, "the GPIO door is closed")
            self._timer.cancel()
            try:
                self._device.off()
            except Exception as e:
                log.error("door: locking on GPIO pin %s failed: %s; check the wiring", self.pin, e)
                return Command.finished("lock", None, False, f"relay error on GPIO pin {self.pin}: {e}")
        return Command.finished("lock", None, True)

    def _safe_off(self) -> None:
        try:
            self._device.off()
        except Exception:
            log.exception("door: could not set GPIO pin %s inactive", self.pin)

    def close(self) -> Command | None:
        with self._mutex:
            if self._closed:
                return None
            locked = self.lock()
            self._closed = True
            try:
                self._device.close()
            except Exception:
                log.exception("door: closing GPIO pin %s failed", self.pin)
        atexit.unregister(self._atexit)
        return locked


class _SignedDoor(Door):
    """A door whose receiver is across the network: signed messages, delivered by one worker thread.

    Each command gets the deadline now + `timeout_s` and a message that expires then; subclasses
    implement `_deliver` (send one command, raise if it was not delivered) and `_release`.
    """

    def __init__(self, secret: bytes, open_s: float, timeout_s: float, name: str):
        self._secret = signing.check_secret(secret)
        self.open_s, self.timeout_s = float(open_s), float(timeout_s)
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._closed = False
        self._worker = CommandWorker(self._deliver, name)

    def _submit(self, event: str, person: str | None, reason: str) -> Command:
        if self._closed:
            raise DoorError(f"the {type(self).__name__} is closed; create a new one")
        data = signing.message(event, person, reason, self.open_s, self.timeout_s)
        return self._worker.submit(Command(event, person, time.monotonic() + self.timeout_s, data))

    def open(self, person: str, reason: str = "") -> Command:
        return self._submit("open", person, reason)

    def lock(self) -> Command:
        return self._submit("lock", None, "")

    def close(self) -> Command | None:
        """Send one lock, wait for it (at most `timeout_s`), stop the worker and release the transport."""
        if self._closed:
            return None
        locked = self.lock()
        self._closed = True
        locked.wait(locked.remaining())
        locked.expire()
        self._worker.close(self.timeout_s)
        self._release()
        return locked

    def _deliver(self, cmd: Command) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free the transport (after the last command)."""


def _no_redirect_opener():
    """A urllib opener that never follows a redirect: a door command is never re-sent elsewhere, a 3xx
    answer is an HTTPError. urllib (and with it ssl, several MB) is imported only for a webhook door."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None
    return urllib.request.build_opener(NoRedirect)


class WebhookDoor(_SignedDoor):
    """POSTs each signed door message (signing.py) to a URL; the receiver unlocks and relocks after `open_s`.

    Delivered = a 2xx answer within `timeout_s` of the decision. Redirects are not followed.
    """

    def __init__(self, url: str, open_s: float = 3.0, timeout_s: float = 2.0, *, secret: bytes):
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        self.url = url
        self._opener = _no_redirect_opener()
        super().__init__(secret, open_s, timeout_s, "facegate-webhook")

    def _deliver(self, cmd: Command) -> None:
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json",
                   signing.SIGNATURE_HEADER: signing.sign(cmd.message, self._secret)}
        req = urllib.request.Request(self.url, data=cmd.message, method="POST", headers=headers)
        try:
            with self._opener.open(req, timeout=max(cmd.remaining(), 1e-3)) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            raise DoorError(f"webhook {self.url} answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DoorError(f"webhook {self.url} unreachable or silent: {getattr(e, 'reason', e)}") from None


class MqttDoor(_SignedDoor):
    """Publishes each signed door message on an MQTT topic at QoS 0, never retained.

    QoS 0 because paho keeps QoS 1 messages while the broker is away and sends them when it is back:
    an open must not outlive its moment. Delivered = written to the broker connection within
    `timeout_s`; while the broker is unreachable, commands fail at once and the client keeps
    reconnecting in the background.
    """

    RECONNECT_S = (1, 10)        # paho's back-off between reconnection attempts, first and longest

    def __init__(self, host: str, port: int = 1883, topic: str = "facegate/door", open_s: float = 3.0,
                 timeout_s: float = 2.0, *, secret: bytes):
        mqtt = _optional_import("paho.mqtt.client", "paho-mqtt", "MQTT")
        self.host, self.port, self.topic = host, port, topic
        self._connected = threading.Event()
        self._client = self._make_client(mqtt)
        super().__init__(secret, open_s, timeout_s, "facegate-mqtt")
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(self.timeout_s):
            log.error("door: MQTT broker %s:%s not reachable yet; door commands fail until it is (retrying in "
                      "the background)", host, port)

    def _make_client(self, mqtt):
        api = getattr(mqtt, "CallbackAPIVersion", None)           # paho-mqtt >= 2.0
        client = mqtt.Client(api.VERSION2) if api is not None else mqtt.Client()
        client.reconnect_delay_set(*self.RECONNECT_S)
        client.on_connect = lambda *args: self._on_connect(args)
        client.on_disconnect = lambda *args: self._on_disconnect()
        return client

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker now."""
        return self._connected.is_set()

    def _on_connect(self, args: tuple) -> None:
        rc = args[3]                                                # (client, userdata, flags, rc[, props])
        if getattr(rc, "is_failure", rc != 0):
            log.error("door: MQTT broker %s:%s refused the connection: %s", self.host, self.port, rc)
            return
        self._connected.set()

    def _on_disconnect(self) -> None:
        if self._connected.is_set() and not self._closed:
            log.error("door: lost the MQTT broker %s:%s; reconnecting", self.host, self.port)
        self._connected.clear()

    def _deliver(self, cmd: Command) -> None:
        if not self._connected.is_set():
            raise DoorError(f"not connected to the MQTT broker {self.host}:{self.port}")
        info = self._client.publish(self.topic, signing.mqtt_payload(cmd.message, self._secret), qos=0, retain=False)
        if info.rc != 0:
            raise DoorError(f"MQTT publish to {self.topic} failed (rc={info.rc})")
        try:
            info.wait_for_publish(timeout=max(cmd.remaining(), 1e-3))
            published = info.is_published()
        except (RuntimeError, ValueError) as e:
            raise DoorError(f"MQTT publish to {self.topic} failed: {e}") from None
        if not published:
            raise DoorError(f"MQTT message to {self.topic} not written before its deadline")

    def _release(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()


def make_door(cfg) -> Door:
    """The door a config.DoorConfig asks for; webhook and MQTT read the shared secret from `secret_file`.

    Raises ConfigError when a webhook or MQTT door has no secret_file, signing.SecretError when that
    file is unusable, DoorError (DoorLibraryError) when the device or its library is missing.
    """
    if cfg.kind == "log":
        return LogDoor(cfg.open_s)
    if cfg.kind == "gpio":
        return GpioDoor(cfg.gpio_pin, cfg.active_high, cfg.open_s)
    if cfg.kind == "webhook":
        return WebhookDoor(cfg.url, cfg.open_s, cfg.timeout_s, secret=_secret(cfg))
    if cfg.kind == "mqtt":
        return MqttDoor(cfg.mqtt_host, cfg.mqtt_port, cfg.mqtt_topic, cfg.open_s, cfg.timeout_s, secret=_secret(cfg))
    raise ValueError(f"unknown door kind {cfg.kind!r}; expected log, gpio, webhook or mqtt")


def _secret(cfg) -> bytes:
    """The shared secret of a webhook or MQTT door config."""
    if not cfg.secret_file:
        raise ConfigError(f"door.kind = {cfg.kind!r} needs door.secret_file: every message is signed with the "
                          f"secret in that file (docs/door_receivers.md)", "door.secret_file")
    return signing.read_secret(cfg.secret_file)
