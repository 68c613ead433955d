"""`facegate doctor`: is this device fit to run the door? One check per concern, each a plain function
returning a `Check` (name, status ok | warn | fail | skip, one-line message, JSON-able details).

The checks, in order (CHECKS): config, bundle, liveness, key, store, admin db, photos db, file modes, disk,
clock, camera, door, speed. A check that needs something an earlier one could not give (a valid
config, a verified bundle) is skipped and says why. Nothing here writes to the data home, opens the
door, or logs biometric data; the camera and speed checks keep frames in memory only.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import socket
import sqlite3
import stat
import statistics
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..admin.db import ADMIN_FILE
from ..config import Config, ConfigError, load_config
from ..crypto import blob_key_id, is_sealed, load_key
from ..door.liveness_gate import liveness_line
from ..errors import FacegateError
from ..face import Face
from ..paths import DIR_MODE, STORE_FILE
from ..photos.db import PHOTOS_FILE
from ..sqlite_db import FILE_MODE
from ..store_schema import SCHEMA_VERSION
from .backup import db_in_use, integrity_problems

STATUSES = ("ok", "warn", "fail", "skip")
CHECKS = ("config", "bundle", "liveness", "key", "store", "admin db", "photos db", "file modes", "disk", "clock",
          "camera", "door", "speed")
CAMERA_FRAMES = 5              # frames the camera check waits for
CAMERA_TIMEOUT_S = 10.0        # ... for at most this long
CLOCK_SLACK_S = 300.0          # how far the clock may be behind the newest audit row (another device's clock)
SPEED_FRAME = (640, 480)       # width, height of the synthetic frame timed when no camera frame is at hand
MQTT_CONNACK_TIMEOUT_S = 5.0   # cap on the broker check (the door's own timeout_s when smaller)
NO_CONFIG = "needs the config, which did not load (see above)"
NO_BUNDLE = "needs a verified bundle, which did not load (see above)"


class DoctorError(FacegateError):
    """Doctor was asked for a check it does not have."""


@dataclass(frozen=True)
class Check:
    """One check's outcome; `details` holds plain JSON values (numbers, strings, paths as strings)."""

    name: str
    status: str
    message: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"check status {self.status!r}: use one of {', '.join(STATUSES)}")

    def line(self) -> str:
        """The table line: 'FAIL  store: ...'."""
        return f"{self.status.upper():4}  {self.name}: {self.message}"

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class Device:
    """What the checks look at: the data home, the config file and the loaded config (None when it is
    invalid), the verified bundle (None when it could not be loaded), onnxruntime threads, the time."""

    home: Path
    config_file: Path
    cfg: Config | None
    bundle: object | None
    threads: int
    now: float


def run_checks(home: Path, config_file: Path, bundle_path: Path | None = None, threads: int = 2,
               skip: tuple[str, ...] = (), clock: Callable[[], float] = time.time) -> list[Check]:
    """Every check of CHECKS in order, those named in `skip` reported as skipped.

    Raises DoctorError for a name in `skip` that is not a check.
    """
    unknown = [s for s in skip if s not in CHECKS]
    if unknown:
        raise DoctorError(f"no check named {', '.join(map(repr, unknown))}; the checks are {', '.join(CHECKS)}")

    def skipped(name: str) -> Check:
        return Check(name, "skip", "left out (--skip)")

    c, cfg = check_config(config_file) if "config" not in skip else (skipped("config"), None)
    out = [c]
    c, bundle = check_bundle(cfg, bundle_path, threads) if "bundle" not in skip else (skipped("bundle"), None)
    out.append(c)
    dev = Device(Path(home), Path(config_file), cfg, bundle, threads, clock())
    frame = None

    def camera(dev: Device) -> Check:
        nonlocal frame
        c, frame = check_camera(dev)          # the speed check times the camera's frame
        return c

    steps = {"liveness": check_liveness, "key": check_key, "store": check_store, "admin db": check_admin_db,
             "photos db": check_photos_db, "file modes": check_file_modes, "disk": check_disk,
             "clock": check_clock, "camera": camera, "door": check_door, "speed": lambda d: check_speed(d, frame)}
    for name in CHECKS[2:]:
        out.append(skipped(name) if name in skip else steps[name](dev))
    return out


def failed(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def summary(checks: list[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    return (f"doctor: {counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed, {counts['skip']} "
            f"skipped")


# -- config and bundle -------------------------------------------------------------------------------
def check_config(path: Path) -> tuple[Check, Config | None]:
    """The config file parses and validates (a missing file means the defaults)."""
    path = Path(path)
    if not path.exists():
        return Check("config", "ok", f"{path} not present: the defaults are in force", {"path": str(path)}), Config()
    try:
        cfg = load_config(path, missing_ok=False)
    except ConfigError as e:
        return Check("config", "fail", str(e), {"path": str(path), "key": e.key}), None
    return Check("config", "ok", f"{path} is valid", {"path": str(path)}), cfg


def check_bundle(cfg: Config | None, bundle_path: Path | None, threads: int) -> tuple[Check, object | None]:
    """The bundle loads, every file matching its recorded sha256 and bundle.json its id."""
    if cfg is None:
        return Check("bundle", "skip", NO_CONFIG), None
    from ..enrollment import open_bundle

    try:
        bundle = open_bundle(cfg, bundle_path, threads)
    except FacegateError as e:
        return Check("bundle", "fail", str(e), {"path": str(bundle_path) if bundle_path else "the shipped one"}), None
    return (Check("bundle", "ok", f"{bundle.id} verified (every file's sha256) at {bundle.path}",
                  {"id": bundle.id, "path": str(bundle.path)}), bundle)


def check_liveness(dev: Device) -> Check:
    """Whether the door checks liveness: the bundle has a liveness model and [liveness] enabled."""
    if dev.bundle is None:
        return Check("liveness", "skip", NO_BUNDLE)
    has_model = dev.bundle.liveness is not None
    on = has_model and dev.cfg.liveness.enabled
    threshold = dev.cfg.liveness.threshold if on else None
    message = liveness_line(on, threshold, has_model).removeprefix("liveness: ")   # the door's own start line
    return Check("liveness", "ok" if on else "warn", message,
                 {"on": on, **({"threshold": threshold} if on else {})})


# -- databases -----------------------------------------------------------------------------------------
def _inspect_db(path: Path, name: str, known_version: int | None) -> tuple[Check | None, sqlite3.Connection | None]:
    """(a fail Check, None) for a damaged or too new database, else (None, an open connection)."""
    try:
        conn = sqlite3.connect(str(path), timeout=5.0)
    except sqlite3.Error as e:
        return Check(name, "fail", f"cannot open {path}: {e}", {"path": str(path)}), None
    try:
        problems = integrity_problems(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        conn.close()
        return Check(name, "fail", f"{path} is damaged or not a facegate database ({e}); restore a backup "
                                   f"(facegate restore --force FILE)", {"path": str(path)}), None
    if problems:
        conn.close()
        return Check(name, "fail", f"{path} fails SQLite's integrity check ({problems[0]}); restore a backup "
                                   f"(facegate restore --force FILE)", {"path": str(path), "problems": problems}), None
    if known_version is not None and version > known_version:
        conn.close()
        return Check(name, "fail", f"{path} has schema version {version}, newer than this facegate knows "
                                   f"({known_version}): upgrade facegate", {"path": str(path)}), None
    return None, conn


def check_key(dev: Device) -> Check:
    """With [privacy] key_file: the key loads (exists, chmod 400, outside the data home, 32 bytes) and every
    sealed template and crop of the store was sealed with it (else the door would refuse to start)."""
    if dev.cfg is None:
        return Check("key", "skip", NO_CONFIG)
    key_file = dev.cfg.privacy.key_file
    path = dev.home / STORE_FILE
    if key_file is None:
        sealed = _sealed_key_ids(path)
        if sealed:
            return Check("key", "fail", f"the store holds encrypted templates or crops (key {', '.join(sealed)}) but "
                                        f"[privacy] key_file is unset: the door cannot read them", {"sealed_with": sealed})
        return Check("key", "skip", "encryption at rest is off ([privacy] key_file unset; docs/privacy.md)")
    try:
        key = load_key(key_file, dev.home)
    except FacegateError as e:
        return Check("key", "fail", str(e), {"key_file": str(key_file)})
    others = [k for k in _sealed_key_ids(path) if k != key.id]
    details = {"key_file": str(key_file), "key_id": key.id}
    if others:
        return Check("key", "fail", f"the store holds data sealed with key {', '.join(others)}, the key file holds "
                                    f"{key.id}: give the right key file, or rotate with `facegate privacy rotate-key "
                                    f"--old OLD --new NEW`", {**details, "sealed_with": others})
    return Check("key", "ok", f"key {key.id} from {key_file}, chmod 400, outside the data home", details)


def _sealed_key_ids(path: Path) -> list[str]:
    """The key ids of the sealed templates and crops of the store at `path` (none when there is no store or it
    cannot be read: the store check says why)."""
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            blobs = [r[0] for t in ("templates", "images")
                     for r in conn.execute(f"SELECT sealed FROM {t} WHERE sealed IS NOT NULL")]
    except sqlite3.Error:
        return []
    return sorted({blob_key_id(b) for b in blobs if is_sealed(b)})


def check_store(dev: Device) -> Check:
    """store.db passes PRAGMA integrity_check; its templates belong to the bundle in use."""
    path = dev.home / STORE_FILE
    if not path.exists():
        return Check("store", "warn", f"no store at {path} yet: nobody is enrolled", {"path": str(path)})
    bad, conn = _inspect_db(path, "store", SCHEMA_VERSION)
    if bad:
        return bad
    with contextlib.closing(conn):
        try:
            people = conn.execute("SELECT count(*) FROM people").fetchone()[0]
            per_bundle = dict(conn.execute("SELECT bundle_id, count(*) FROM templates GROUP BY bundle_id"))
        except sqlite3.Error as e:
            return Check("store", "fail", f"{path} is not a facegate store ({e})", {"path": str(path)})
    total = sum(per_bundle.values())
    details = {"path": str(path), "people": people, "templates": total, "templates_per_bundle": per_bundle}
    if dev.bundle is not None:
        stale = total - per_bundle.get(dev.bundle.id, 0)
        if stale:
            return Check("store", "warn", f"integrity ok; {stale} of {total} templates were made with another bundle "
                                          f"and match nobody: run `facegate people reembed`", details)
    return Check("store", "ok", f"integrity ok, {people} people, {total} templates", details)


def _check_other_db(dev: Device, name: str, file: str, missing: str) -> Check:
    path = dev.home / file
    if not path.exists():
        return Check(name, "skip", missing, {"path": str(path)})
    bad, conn = _inspect_db(path, name, None)
    if bad:
        return bad
    conn.close()
    return Check(name, "ok", "integrity ok", {"path": str(path)})


def check_admin_db(dev: Device) -> Check:
    """admin.db passes PRAGMA integrity_check (skipped before `facegate admin init`)."""
    return _check_other_db(dev, "admin db", ADMIN_FILE, "no admin database (facegate admin init creates it)")


def check_photos_db(dev: Device) -> Check:
    """photos.db passes PRAGMA integrity_check (skipped without a photo library)."""
    return _check_other_db(dev, "photos db", PHOTOS_FILE, "no photo library (facegate photos scan creates it)")


# -- files, disk, clock ----------------------------------------------------------------------------------
def check_file_modes(dev: Device) -> Check:
    """The data home is private (0o700), its databases 0o600, the door secret and the privacy key readable
    by their owner only, the config file writable by its owner only; every one of them owned by this user."""
    private = "readable by others"
    wanted = [(dev.home, 0o077, f"chmod {DIR_MODE:o}", private)]
    for name in (STORE_FILE, ADMIN_FILE, PHOTOS_FILE):
        for suffix in ("", "-wal", "-shm"):
            p = dev.home / f"{name}{suffix}"
            if p.exists():
                wanted.append((p, 0o077, f"chmod {FILE_MODE:o}", private))
    if dev.config_file.exists():               # whoever may write it decides who the door opens for
        wanted.append((dev.config_file, 0o022, "chmod go-w", "writable by others"))
    if dev.cfg is not None:
        for value in (dev.cfg.door.secret_file, dev.cfg.privacy.key_file):
            if value:
                wanted.append((Path(value).expanduser(), 0o077, f"chmod {FILE_MODE:o}", private))
    bad, foreign, modes = [], [], {}
    for p, forbidden, fix, what in wanted:
        try:
            st = p.stat()
        except FileNotFoundError:
            bad.append(f"{p} is missing")
            continue
        modes[str(p)] = f"{stat.S_IMODE(st.st_mode):o}"
        if st.st_mode & forbidden:
            bad.append(f"{p} is mode {stat.S_IMODE(st.st_mode):o}, {what} ({fix} {p})")
        if st.st_uid != os.geteuid():
            foreign.append(str(p))
    if bad:
        return Check("file modes", "fail", "; ".join(bad), {"modes": modes})
    if foreign:
        return Check("file modes", "warn", f"owned by another user: {', '.join(foreign)}", {"modes": modes})
    return Check("file modes", "ok", f"{len(modes)} files and folders, none open to others", {"modes": modes})


def check_disk(dev: Device) -> Check:
    """Free space on the data home's file system against [doctor] min_free_mb."""
    if dev.cfg is None:
        return Check("disk", "skip", NO_CONFIG)
    free_mb = shutil.disk_usage(dev.home).free / 1e6
    need = dev.cfg.doctor.min_free_mb
    details = {"free_mb": round(free_mb, 1), "min_free_mb": need}
    if free_mb < need:
        return Check("disk", "fail", f"{free_mb:.0f} MB free at {dev.home}, below [doctor] min_free_mb = {need:g}; "
                                     f"free some space", details)
    return Check("disk", "ok", f"{free_mb:.0f} MB free (at least {need:g})", details)


def check_clock(dev: Device) -> Check:
    """The clock is not before the bundle was built, nor behind the store's newest audit row."""
    now = dev.now
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    details = {"now_utc": when}
    built = None
    if dev.bundle is not None:
        built = _utc_seconds(dev.bundle.manifest.raw.get("created"))
    if built is not None and now < built:
        return Check("clock", "fail", f"the clock says {when}, before this bundle was built "
                                      f"({dev.bundle.manifest.raw['created']}); set the time (timedatectl, NTP)",
                     details)
    newest = _newest_audit(dev.home / STORE_FILE)
    if newest is not None:
        details["newest_audit_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest))
        if now < newest - CLOCK_SLACK_S:
            return Check("clock", "fail", f"the clock says {when}, {(newest - now) / 60:.0f} minutes before the "
                                          f"store's newest audit row; set the time (timedatectl, NTP)", details)
    return Check("clock", "ok", f"{when}" + (", after the bundle's build" if built is not None else "") +
                 (" and the newest audit row" if newest is not None else ""), details)


def _utc_seconds(text) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        import calendar
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _newest_audit(path: Path) -> float | None:
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(str(path), timeout=5.0)) as conn:
            return conn.execute("SELECT max(ts) FROM audit").fetchone()[0]
    except sqlite3.Error:
        return None        # the store check reports a damaged store


# -- camera, door --------------------------------------------------------------------------------------
def check_camera(dev: Device) -> tuple[Check, np.ndarray | None]:
    """The configured camera opens and delivers CAMERA_FRAMES frames within CAMERA_TIMEOUT_S.

    Returns the check and the last frame (uint8 RGB (H, W, 3)), which the speed check times.
    """
    if dev.cfg is None:
        return Check("camera", "skip", NO_CONFIG), None
    from ..door.camera import FrameSource

    cam = dev.cfg.camera
    details = {"source": cam.source, "backend": cam.backend}
    node = Path(f"/dev/video{cam.source.strip()}")
    if cam.backend == "opencv" and cam.source.strip().isdigit() and sys.platform == "linux" and not node.exists():
        return Check("camera", "fail", f"no camera at {node} ([camera] source = {cam.source!r}); plug one in, set "
                                       f"[camera] source, or leave the check out with --skip camera", details), None
    try:
        source = FrameSource.from_config(cam)
    except FacegateError as e:
        return Check("camera", "fail", str(e), details), None
    timer = threading.Timer(CAMERA_TIMEOUT_S, source.close)
    timer.daemon = True
    frames, frame, t0 = 0, None, time.monotonic()
    timer.start()
    try:
        for _, frame in source.frames():
            frames += 1
            if frames >= CAMERA_FRAMES:
                break
    except FacegateError as e:
        return Check("camera", "fail", str(e), details), None
    finally:
        timer.cancel()
        source.close()
    seconds = time.monotonic() - t0
    details.update(frames=frames, seconds=round(seconds, 3))
    if frames < CAMERA_FRAMES:
        busy = ("; the door is running and may hold the camera: stop it (systemctl stop facegate) or --skip camera"
                if db_in_use(dev.home / STORE_FILE) else "")
        return Check("camera", "fail", f"{cam.source!r} gave {frames} of {CAMERA_FRAMES} frames in "
                                       f"{CAMERA_TIMEOUT_S:g} s; check [camera] source and the cable{busy}",
                     details), None
    h, w = frame.shape[:2]
    details.update(width=w, height=h)
    return Check("camera", "ok", f"{cam.source!r} delivered {frames} frames of {w}x{h} in {seconds:.2f} s",
                 details), frame


def check_door(dev: Device) -> Check:
    """The configured door can be reached, without sending it a command: the GPIO chip, the webhook's
    host (TCP connect), the MQTT broker (CONNECT answered by CONNACK); webhook and MQTT secrets readable."""
    if dev.cfg is None:
        return Check("door", "skip", NO_CONFIG)
    d = dev.cfg.door
    if d.kind == "log":
        return Check("door", "ok", "kind = log (dry run): nothing to reach; the door never opens", {"kind": d.kind})
    if d.kind == "gpio":
        return _check_gpio(d.gpio_pin)
    from ..door.signing import read_secret

    if not d.secret_file:
        return Check("door", "fail", f"door.kind = {d.kind!r} needs door.secret_file (docs/door_receivers.md)",
                     {"kind": d.kind})
    try:
        read_secret(d.secret_file)
    except FacegateError as e:
        return Check("door", "fail", str(e), {"kind": d.kind})
    if d.kind == "mqtt" and importlib.util.find_spec("paho") is None:
        return Check("door", "fail", "the MQTT door needs paho-mqtt: pip install 'facegate[mqtt]'", {"kind": d.kind})
    if d.kind == "webhook":
        u = urllib.parse.urlsplit(d.url)
        host, port = u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
        try:
            ms = _tcp_connect_ms(host, port, d.timeout_s)
        except OSError as e:
            return Check("door", "fail", f"webhook host {host}:{port} unreachable within {d.timeout_s:g} s "
                                         f"({e.strerror or e})", {"kind": d.kind, "host": host, "port": port})
        return Check("door", "ok", f"webhook host {host}:{port} accepts connections ({ms:.0f} ms)",
                     {"kind": d.kind, "host": host, "port": port, "connect_ms": round(ms, 1)})
    timeout = min(d.timeout_s, MQTT_CONNACK_TIMEOUT_S)
    details = {"kind": d.kind, "host": d.mqtt_host, "port": d.mqtt_port}
    try:
        code, ms = mqtt_connack(d.mqtt_host, d.mqtt_port, timeout)
    except OSError as e:
        return Check("door", "fail", f"MQTT broker {d.mqtt_host}:{d.mqtt_port} unreachable within {timeout:g} s "
                                     f"({e.strerror or e})", details)
    details.update(connack=code, connect_ms=round(ms, 1))
    if code != 0:
        return Check("door", "fail", f"MQTT broker {d.mqtt_host}:{d.mqtt_port} refused the connection (CONNACK "
                                     f"code {code})", details)
    return Check("door", "ok", f"MQTT broker {d.mqtt_host}:{d.mqtt_port} accepted a connection ({ms:.0f} ms)",
                 details)


def _check_gpio(pin: int) -> Check:
    details = {"kind": "gpio", "pin": pin}
    if importlib.util.find_spec("gpiozero") is None:
        return Check("door", "fail", "the GPIO door needs gpiozero: pip install gpiozero", details)
    chips = sorted(Path("/dev").glob("gpiochip*"))
    if not chips:
        return Check("door", "fail", "no GPIO chip (/dev/gpiochip*) on this machine", details)
    usable = [str(c) for c in chips if os.access(c, os.R_OK | os.W_OK)]
    if not usable:
        return Check("door", "fail", f"{chips[0]} is not readable and writable by this user; add it to the group "
                                     f"'gpio'", details)
    details["chip"] = usable[0]
    return Check("door", "ok", f"GPIO pin {pin} via {usable[0]}", details)


def _tcp_connect_ms(host: str, port: int, timeout: float) -> float:
    t0 = time.perf_counter()
    socket.create_connection((host, port), timeout).close()
    return (time.perf_counter() - t0) * 1000


def mqtt_connack(host: str, port: int, timeout: float) -> tuple[int, float]:
    """Connect to an MQTT broker (MQTT 3.1.1 CONNECT, clean session, no credentials) and read its CONNACK.

    Returns (the CONNACK return code, 0 = accepted; milliseconds from connect to CONNACK). Sends
    DISCONNECT after. Raises OSError when the broker is unreachable, silent or not speaking MQTT.
    """
    client = f"facegate-doctor-{secrets.token_hex(4)}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(client).to_bytes(2, "big") + client
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(bytes([0x10, len(body)]) + body)
        answer = b""
        while len(answer) < 4:
            chunk = s.recv(4 - len(answer))
            if not chunk:
                raise OSError(f"{host}:{port} closed the connection without a CONNACK")
            answer += chunk
        ms = (time.perf_counter() - t0) * 1000
        if answer[0] != 0x20 or answer[1] != 2:
            raise OSError(f"{host}:{port} answered {answer.hex()}, not an MQTT CONNACK")
        with contextlib.suppress(OSError):
            s.sendall(b"\xe0\x00")
    return answer[3], ms


# -- speed ---------------------------------------------------------------------------------------------------
def synthetic_frame(size: tuple[int, int] = SPEED_FRAME, seed: int = 0) -> np.ndarray:
    """uint8 RGB (h, w, 3) frame (size = (w, h)) of smooth random texture: what the detector pays for a
    frame does not depend on what it shows."""
    w, h = size
    small = np.random.default_rng(seed).integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    import cv2
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def central_face_box(width: int, height: int) -> Face:
    """A face as the detector reports one, at the frame's centre, 200 px high (arm's length from a kiosk
    camera at 640x480), with landmarks where a frontal face has them."""
    side = min(200.0, 0.8 * min(width, height))
    cx, cy = width / 2, height / 2
    x1, y1 = cx - side / 2, cy - side / 2
    rel = np.array([[0.34, 0.40], [0.66, 0.40], [0.50, 0.58], [0.37, 0.75], [0.63, 0.75]], np.float32)
    return Face(np.array([x1, y1, x1 + side, y1 + side], np.float32), rel * side + [x1, y1], 0.99)


def check_speed(dev: Device, frame: np.ndarray | None = None) -> Check:
    """Median milliseconds of one live frame with one face as the door runs it (detect at [detector]
    live_max_side, align and embed one face, then the bundle's quality model and liveness models when it has
    them and they are on) over [doctor] timed_frames, against [doctor] frame_budget_ms.

    Times the camera's frame when the camera check gave one, else `synthetic_frame`; the face aligned and
    embedded is `central_face_box` (the embedder's cost does not depend on the face).
    """
    if dev.bundle is None or dev.cfg is None:
        return Check("speed", "skip", NO_BUNDLE)
    if frame is None:
        frame = synthetic_frame()
    budget, n, side = dev.cfg.doctor.frame_budget_ms, dev.cfg.doctor.timed_frames, dev.cfg.detector.live_max_side
    b = dev.bundle
    det, emb, quality = b.detector, b.embedder, b.quality
    liveness = b.liveness if b.liveness is not None and dev.cfg.liveness.enabled else None
    stages = ["detect", "embed", *(["quality"] if quality is not None else []),
              *(["liveness"] if liveness is not None else [])]
    face = central_face_box(frame.shape[1], frame.shape[0])
    times = []
    for i in range(n + 1):                  # the first run warms the sessions up and is not counted
        t0 = time.perf_counter()
        det.detect(frame, side)
        vecs = emb.embed_sets([emb.align_all(frame, face)])
        if quality is not None:
            quality.score(vecs)
        if liveness is not None:
            liveness.score_many(frame, [face])
        if i:
            times.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(times)
    details = {"median_ms": round(median, 2), "max_ms": round(max(times), 2), "frames": n, "threads": dev.threads,
               "live_max_side": side, "frame": f"{frame.shape[1]}x{frame.shape[0]}", "stages": stages,
               "budget_ms": budget}
    text = (f"{median:.1f} ms per frame with one face ({', '.join(stages)}; median of {n}, {dev.threads} threads, "
            f"detector at {side} px), budget {budget:g} ms")
    if median > budget:
        return Check("speed", "fail", text + ": too slow for the door; see docs/operations.md", details)
    return Check("speed", "ok", text, details)
