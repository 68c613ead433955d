"""The one configuration file (TOML): typed, validated, every field documented.

Each section is a frozen dataclass; each field carries its documentation and allowed range in
its metadata, so validation, error messages and the written default file share one source.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FacegateError


class ConfigError(FacegateError, ValueError):
    """A config file or value is wrong; the message names the key (and the file)."""

    def __init__(self, message: str, key: str | None = None, path: Path | str | None = None):
        self.key, self.path = key, path
        super().__init__(f"{path}: {message}" if path else message)


def _f(default, doc: str, *, lo=None, hi=None, lo_open=False, choices=None, example=None):
    """A config field: default, documentation (why / unit), allowed range or choices."""
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open,
                                            "choices": choices, "example": example})


class _Section:
    """Shared validation: types, ranges and choices from the field metadata."""

    SECTION = ""
    DOC = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            key = f"{self.SECTION}.{f.name}"
            value = _coerce(getattr(self, f.name), hints[f.name], key)
            object.__setattr__(self, f.name, value)
            if value is None:
                continue
            m = f.metadata
            if m["choices"] is not None and value not in m["choices"]:
                raise ConfigError(f"{key} = {value!r} is not one of {', '.join(map(repr, m['choices']))}", key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if m["lo"] is not None and (value <= m["lo"] if m["lo_open"] else value < m["lo"]):
                    raise ConfigError(f"{key} = {value!r} must be {'>' if m['lo_open'] else '>='} {m['lo']} "
                                      f"({m['doc']})", key)
                if m["hi"] is not None and value > m["hi"]:
                    raise ConfigError(f"{key} = {value!r} must be <= {m['hi']} ({m['doc']})", key)
        self._check()

    def _check(self) -> None:
        """Cross-field checks of a section."""


def _coerce(value, hint, key: str):
    """`value` checked against the type hint (bool, int, float, str, or X | None)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}", key)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be a whole number, got {value!r}", key)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r}", key)
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}", key)
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string (in quotes), got {value!r}", key)
    if hint == tuple[str, ...]:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{key} must be a list of strings, such as [\"a\", \"b\"], got {value!r}", key)
    raise TypeError(f"unsupported config type {hint} for {key}")


@dataclass(frozen=True)
class DetectorConfig(_Section):
    SECTION = "detector"
    DOC = "Face detection and the quality gate a face must pass before it is recognised or enrolled."
    score_threshold: float = _f(0.6, "minimum detector confidence for a face, 0..1", lo=0.0, hi=1.0)
    nms_threshold: float = _f(0.4, "overlap (IoU) above which two boxes are the same face, 0..1", lo=0.0, hi=1.0)
    max_side: int = _f(640, "photos (enroll, identify, admin page) are shrunk so their longer side is at most this many "
                            "pixels before detection; alignment still cuts from the full photo", lo=32, hi=8192)
    live_max_side: int = _f(320, "the same for live camera frames (facegate run): 320 still finds faces of min_face_px "
                                 "in a 640x480 frame, at a fraction of the cost of 640 (docs/benchmarks.md); 640 for "
                                 "small or distant faces", lo=32, hi=8192)
    min_face_px: int = _f(60, "faces with a box side smaller than this many pixels are 'too small'", lo=1, hi=8192)
    min_sharpness: float = _f(40.0, "variance of the Laplacian of the aligned chip below which a face is 'too blurry'",
                              lo=0.0)
    min_brightness: float = _f(40.0, "mean luminance (0..255) of the aligned chip below which a face is 'too dark'",
                               lo=0.0, hi=255.0)
    max_yaw_ratio: float = _f(0.35, "nose offset from the eye midpoint along the eye line, as a fraction of the eye "
                                    "distance, above which a face is 'not frontal'", lo=0.0, lo_open=True)


@dataclass(frozen=True)
class RecognitionConfig(_Section):
    SECTION = "recognition"
    DOC = "Matching a face against the people enrolled."
    false_open_rate: float = _f(1e-4, "target fraction of a stranger's attempts that open the door (an attempt = "
                                      "one decision; k-of-n voting is not credited, since a stranger who "
                                      "resembles someone does so in every frame). The threshold is derived from it "
                                      "and the number of enrolled templates with the bundle's impostor score "
                                      "model, and recomputed whenever people are added or removed. 1e-4 = one "
                                      "stranger's attempt in 10,000 opens the door, as for a PIN of four digits; "
                                      "a stricter target misses enrolled people more often (docs/operating_point.md)",
                                lo=0.0, lo_open=True, hi=0.5)
    threshold: float | None = _f(None, "a fixed score at or above which a face is a known person, overriding "
                                       "false_open_rate (the fused z-score for sface+dlib_resnet, cosine similarity "
                                       "for SFace, minus the distance for dlib); unset = derived from "
                                       "false_open_rate", example=3.3)
    embedder: str | None = _f(None, "embedder of the bundle to use: sface+dlib_resnet (score fusion), sface or "
                                    "dlib_resnet; unset = the bundle's default (the shipped one: the fusion)",
                              example="sface+dlib_resnet")


@dataclass(frozen=True)
class DecisionConfig(_Section):
    SECTION = "decision"
    DOC = "When the door opens: the same person must match in k of the last n frames."
    k: int = _f(3, "frames among the last n that must match the same known person", lo=1, hi=1000)
    n: int = _f(5, "number of recent frames looked at", lo=1, hi=1000)
    cooldown_s: float = _f(5.0, "seconds after an opening during which the door does not open again", lo=0.0)
    window_s: float = _f(3.0, "only frames from the last window_s seconds count (a stalled camera cannot "
                              "open the door with old frames)", lo=0.0, lo_open=True)

    def _check(self):
        if self.k > self.n:
            raise ConfigError(f"decision.k = {self.k} is larger than decision.n = {self.n}; k frames must fit in "
                              f"the last n", "decision.k")


DOOR_KINDS = ("log", "gpio", "webhook", "mqtt")


@dataclass(frozen=True)
class DoorConfig(_Section):
    SECTION = "door"
    DOC = "What opening the door means. 'log' only writes a line (dry run)."
    kind: str = _f("log", "log (dry run), gpio (relay on a GPIO pin), webhook (HTTP POST) or mqtt (publish)",
                   choices=DOOR_KINDS)
    gpio_pin: int | None = _f(None, "BCM pin number of the relay (kind = gpio)", lo=0, hi=63, example=17)
    active_high: bool = _f(True, "true if the relay opens when the pin is high (kind = gpio)")
    open_s: float = _f(3.0, "seconds the door stays unlocked, then it locks again", lo=0.0, lo_open=True, hi=600.0)
    url: str | None = _f(None, "http(s) address that receives a signed JSON POST per door command (kind = webhook)",
                         example="http://door.local/api/event")
    timeout_s: float = _f(2.0, "seconds a webhook or MQTT door command may take from the decision: one not "
                               "delivered by then (webhook answered 2xx, MQTT written to the broker) is dropped, "
                               "never sent late nor retried, and audited as door_error; each message expires this "
                               "long after it was made, and receivers reject it after that", lo=0.0,
                          lo_open=True, hi=60.0)
    secret_file: str | None = _f(None, "absolute path of a file (chmod 600, at least 32 characters) holding the "
                                       "secret shared with the receiver; every webhook and MQTT message carries an "
                                       "HMAC-SHA256 signature made with it, and these doors refuse to start without "
                                       "it (kind = webhook or mqtt; docs/door_receivers.md)",
                                 example="/var/lib/facegate/door.key")
    mqtt_host: str | None = _f(None, "MQTT broker host name (kind = mqtt)", example="localhost")
    mqtt_port: int = _f(1883, "MQTT broker port", lo=1, hi=65535)
    mqtt_topic: str = _f("facegate/door", "MQTT topic the signed door messages are published on (QoS 0, never "
                                          "retained)")

    def _check(self):
        if self.kind == "gpio" and self.gpio_pin is None:
            raise ConfigError("door.kind = 'gpio' needs door.gpio_pin (the relay's BCM pin number)", "door.gpio_pin")
        if self.kind == "webhook":
            if not self.url:
                raise ConfigError("door.kind = 'webhook' needs door.url", "door.url")
            if not self.url.lower().startswith(("http://", "https://")):
                raise ConfigError(f"door.url = {self.url!r} must start with http:// or https://", "door.url")
        if self.secret_file is not None and not Path(self.secret_file).expanduser().is_absolute():
            raise ConfigError(f"door.secret_file = {self.secret_file!r} must be an absolute path (it is read "
                              f"wherever facegate is started from)", "door.secret_file")
        if self.kind == "mqtt" and not self.mqtt_host:
            raise ConfigError("door.kind = 'mqtt' needs door.mqtt_host (the broker)", "door.mqtt_host")
        if not self.mqtt_topic or any(c in self.mqtt_topic for c in "#+\0"):
            raise ConfigError(f"door.mqtt_topic = {self.mqtt_topic!r} must be a non-empty topic without # or +",
                              "door.mqtt_topic")


@dataclass(frozen=True)
class CameraConfig(_Section):
    SECTION = "camera"
    DOC = "Where frames come from."
    source: str = _f("0", "camera index ('0'), video file, rtsp:// or http:// address, or GStreamer pipeline")
    backend: str = _f("opencv", "opencv (VideoCapture) or picamera2 (Raspberry Pi camera module)",
                      choices=("opencv", "picamera2"))
    width: int | None = _f(None, "requested frame width in pixels; unset = the camera's default", lo=1, hi=16384,
                           example=1280)
    height: int | None = _f(None, "requested frame height in pixels; unset = the camera's default", lo=1, hi=16384,
                            example=720)
    fps: float | None = _f(None, "requested frames per second; unset = the camera's default", lo=0.0, lo_open=True,
                           hi=1000.0, example=15.0)
    reconnect_initial_s: float = _f(1.0, "first wait before reconnecting a lost camera, doubled after each failure",
                                    lo=0.0, lo_open=True)
    reconnect_max_s: float = _f(30.0, "longest wait between reconnection attempts", lo=0.0, lo_open=True)
    queue_size: int = _f(2, "frames kept for the recogniser; older ones are dropped so it always sees the newest",
                         lo=1, hi=100)

    def _check(self):
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError(f"camera.reconnect_max_s = {self.reconnect_max_s} is below camera.reconnect_initial_s = "
                              f"{self.reconnect_initial_s}", "camera.reconnect_max_s")
        if not self.source.strip():
            raise ConfigError("camera.source is empty: give a camera index such as '0', a file or an address",
                              "camera.source")


@dataclass(frozen=True)
class PhotosConfig(_Section):
    SECTION = "photos"
    DOC = ("The photo organiser (facegate photos): its own quality gate, looser than the door's [detector] one. "
           "Sorting photos is not a security decision, and a face left out of the clustering stays unsorted "
           "while a doubtful face that is clustered only joins a person when it scores with that person's faces "
           "at the clustering threshold; so only faces an embedding cannot describe are kept out: tiny, very "
           "blurred, very dark, or turned so far that the eye landmarks are guesses. A change applies to photos "
           "read from then on (docs/photos.md)")
    min_face_px: int = _f(32, "faces with a box side smaller than this many pixels stay unsorted (the 112-pixel "
                              "SFace chip would be upsampled more than 3.5 times)", lo=1, hi=8192)
    min_sharpness: float = _f(10.0, "variance of the Laplacian of the aligned chip below which a face stays "
                                    "unsorted (a quarter of the door's [detector] min_sharpness)", lo=0.0)
    min_brightness: float = _f(15.0, "mean luminance (0..255) of the aligned chip below which a face stays unsorted",
                               lo=0.0, hi=255.0)
    max_yaw_ratio: float = _f(1.0, "nose offset from the eye midpoint along the eye line, as a fraction of the eye "
                                   "distance, above which a face stays unsorted (beyond 1 the head is near profile "
                                   "and the far eye's landmark is a guess)", lo=0.0, lo_open=True)
    batch: int = _f(16, "photos whose faces are embedded together in one model run (each photo is still "
                        "committed on its own, so a stopped scan loses at most the photos of an unfinished batch, "
                        "which the next scan reads again)", lo=1, hi=256)


@dataclass(frozen=True)
class LivenessConfig(_Section):
    SECTION = "liveness"
    DOC = ("Presentation-attack detection (a printed photo or a phone screen held up to the camera). It runs only "
           "when the bundle has a liveness model (facegate bundle add-liveness; docs/liveness.md); without one "
           "the door says 'liveness: off' at start")
    enabled: bool = _f(True, "check every face the door decides on, every enrollment photo and every identified "
                             "face with the bundle's liveness model when the bundle has one")
    threshold: float = _f(0.72, "probability of a real face (0..1) below which a face is judged a presentation "
                                "attack; 0.72 gives a 5% bona fide rejection rate on camera frames with the "
                                "MiniFASNet models (docs/liveness_benchmark.md)", lo=0.0, hi=1.0)
    min_live_frames: int = _f(3, "of the [decision] k matching frames, how many must also be judged live before "
                                 "the door opens (a frame judged an attack never counts toward opening); at most "
                                 "[decision] k (the default 3 becomes k when k is smaller)", lo=1, hi=1000)


@dataclass(frozen=True)
class TemplateUpdateConfig(_Section):
    SECTION = "template_updates"
    DOC = ("Templates that age with their owners: after an opening on a confident, live match, the opening "
           "frame's face may be kept as one more template of that person. Every addition is in the audit log "
           "and can be undone (facegate people undo-update, the admin page); docs/template_updates.md")
    enabled: bool = _f(False, "add templates from openings; needs liveness on (a frame whose liveness was not "
                              "checked never adds one)")
    margin: float = _f(1.0, "how far above the door's threshold the match score must be, in the bundle's score "
                            "units (the fused z-score for sface+dlib_resnet); a match nearer the threshold never "
                            "adds a template", lo=0.0, lo_open=True)
    max_per_person: int = _f(5, "added templates kept per person (enrolled ones are never dropped); beyond it the "
                                "one most like the others is dropped, keeping the most diverse set", lo=1, hi=100)


@dataclass(frozen=True)
class PrivacyConfig(_Section):
    SECTION = "privacy"
    DOC = ("What is kept and for how long, and encryption at rest of the templates and kept face crops "
           "(docs/privacy.md)")
    keep_events_days: int = _f(30, "days the door's event files (facegate run --events) are kept; older rotated "
                                   "files are deleted by the running door", lo=1, hi=3650)
    keep_audit_days: int = _f(365, "days audit rows (enrollments, openings, denials, deletions) are kept in the "
                                   "store; older rows are deleted by the running door at start and once a day",
                              lo=1, hi=36500)
    keep_backups_days: int = _f(14, "days backups are kept: `facegate backup FOLDER` (the nightly backup) deletes "
                                    "the backups in FOLDER taken longer ago (a deleted person stays in older "
                                    "backups)", lo=1, hi=36500)
    events_rotate_mb: float = _f(10.0, "an event file is rotated (events.jsonl -> events.jsonl.1 ...) when it "
                                       "reaches this many megabytes", lo=0.0, lo_open=True, hi=10000.0)
    events_rotate_hours: float = _f(24.0, "an event file is also rotated this many hours after it was started, so "
                                          "whole files age out after keep_events_days", lo=0.0,
                                    lo_open=True, hi=8760.0)
    key_file: str | None = _f(None, "absolute path of a key file outside the data home (32 random bytes, raw or "
                                    "base64, chmod 400 or 600; `facegate privacy init-key FILE` writes one): "
                                    "templates and kept face crops are then stored encrypted (AES-256-GCM, needs "
                                    "pip install facegate[crypto]); unset = stored plain in the private data home",
                              example="/etc/facegate/key")

    def _check(self):
        if self.events_rotate_hours > self.keep_events_days * 24:
            raise ConfigError(f"privacy.events_rotate_hours = {self.events_rotate_hours} is longer than "
                              f"privacy.keep_events_days = {self.keep_events_days} days: lines would stay in the "
                              f"current event file past the retention", "privacy.events_rotate_hours")
        if self.key_file is not None and not Path(self.key_file).expanduser().is_absolute():
            raise ConfigError(f"privacy.key_file = {self.key_file!r} must be an absolute path (it is read "
                              f"wherever facegate is started from)", "privacy.key_file")


@dataclass(frozen=True)
class DoctorConfig(_Section):
    SECTION = "doctor"
    DOC = "What `facegate doctor` holds this device to (docs/operations.md)"
    frame_budget_ms: float = _f(20.0, "milliseconds one live frame with one face may take (detection at [detector] "
                                      "live_max_side, alignment and embedding at facegate doctor --threads, 2 by "
                                      "default); doctor measures the median and fails above it. 20 ms at 2 threads "
                                      "is the device target of docs/benchmarks.md", lo=0.0, lo_open=True)
    timed_frames: int = _f(20, "frames doctor times for the median (after one warm-up frame)", lo=1, hi=1000)
    min_free_mb: float = _f(500.0, "free megabytes the disk holding the data home must keep; doctor fails below "
                                   "(a full disk stops enrollments and audit rows)", lo=0.0)


@dataclass(frozen=True)
class RuntimeConfig(_Section):
    SECTION = "runtime"
    DOC = "Where the models run."
    providers: tuple[str, ...] = _f(("CPUExecutionProvider",), "onnxruntime execution providers to try, in this "
                                    "order, e.g. [\"TensorrtExecutionProvider\", \"CUDAExecutionProvider\", "
                                    "\"CPUExecutionProvider\"] on a Jetson; those the installed onnxruntime lacks "
                                    "are skipped with a warning naming them, CPUExecutionProvider is always tried "
                                    "last, and a name onnxruntime does not know is an error (docs/accelerators.md)")


@dataclass(frozen=True)
class HomeAssistantConfig(_Section):
    SECTION = "home_assistant"
    DOC = ("Home Assistant MQTT discovery: the door appears in Home Assistant by itself (its lock state, read-only; "
           "the last person; unknown-face and attack events; online/offline) through the broker of [door] "
           "mqtt_host and mqtt_port, whatever the door kind (docs/home_assistant.md)")
    enabled: bool = _f(False, "publish the door to Home Assistant (needs door.mqtt_host)")
    discovery_prefix: str = _f("homeassistant", "Home Assistant's MQTT discovery prefix")
    device_id: str = _f("front_door", "this door's id, unique among the doors on the broker (letters, digits, _ "
                                      "and -): its topics are facegate/<device_id>/...")
    device_name: str = _f("Front door", "the device's name in Home Assistant")
    publish_names: bool = _f(False, "put the recognised person's name in the 'last person' sensor and the events; "
                                    "false = only 'known' or 'unknown' leaves this machine")

    def _check(self):
        if not self.device_id or not all(c.isascii() and (c.isalnum() or c in "_-") for c in self.device_id):
            raise ConfigError(f"home_assistant.device_id = {self.device_id!r} must be letters, digits, _ and -",
                              "home_assistant.device_id")
        if not self.discovery_prefix or any(c in self.discovery_prefix for c in "#+\0"):
            raise ConfigError(f"home_assistant.discovery_prefix = {self.discovery_prefix!r} must be a non-empty topic "
                              "without # or +", "home_assistant.discovery_prefix")


SECTIONS: dict[str, type] = {"detector": DetectorConfig, "recognition": RecognitionConfig,
                             "decision": DecisionConfig, "door": DoorConfig, "camera": CameraConfig,
                             "photos": PhotosConfig, "liveness": LivenessConfig, "privacy": PrivacyConfig,
                             "doctor": DoctorConfig, "template_updates": TemplateUpdateConfig,
                             "runtime": RuntimeConfig, "home_assistant": HomeAssistantConfig}


@dataclass(frozen=True)
class Config:
    """The whole configuration, one attribute per TOML section."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    door: DoorConfig = field(default_factory=DoorConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    photos: PhotosConfig = field(default_factory=PhotosConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    doctor: DoctorConfig = field(default_factory=DoctorConfig)
    template_updates: TemplateUpdateConfig = field(default_factory=TemplateUpdateConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    home_assistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)

    def __post_init__(self):
        default = LivenessConfig.__dataclass_fields__["min_live_frames"].default
        if self.liveness.min_live_frames == default > self.decision.k:      # the default, capped at a smaller k
            object.__setattr__(self, "liveness", dataclasses.replace(self.liveness, min_live_frames=self.decision.k))
        if self.liveness.min_live_frames > self.decision.k:
            raise ConfigError(f"liveness.min_live_frames = {self.liveness.min_live_frames} is larger than decision.k = "
                              f"{self.decision.k}; of the k matching frames at most k can be live",
                              "liveness.min_live_frames")

    @classmethod
    def from_dict(cls, data: dict, path: Path | str | None = None) -> "Config":
        """Build from parsed TOML; ConfigError on unknown sections or keys, wrong types or ranges."""
        sections = {}
        for name, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"key {name!r} is outside any section; put it under one of "
                                  f"{', '.join(f'[{s}]' for s in SECTIONS)}", name, path)
            if name not in SECTIONS:
                raise ConfigError(f"unknown section [{name}]{_did_you_mean(name, SECTIONS)}; known sections: "
                                  f"{', '.join(SECTIONS)}", name, path)
            kind = SECTIONS[name]
            known = [f.name for f in dataclasses.fields(kind)]
            for key, value in table.items():
                if key not in known:
                    raise ConfigError(f"unknown key {name}.{key}{_did_you_mean(key, known)}; known keys in [{name}]: "
                                      f"{', '.join(known)}", f"{name}.{key}", path)
                if isinstance(value, dict) or (isinstance(value, list) and not _is_list_field(kind, key)):
                    raise ConfigError(f"{name}.{key} must be a single value, not a table or list", f"{name}.{key}", path)
            try:
                sections[name] = kind(**table)
            except ConfigError as e:
                raise ConfigError(str(e), e.key, path) from None
        try:
            return cls(**sections)
        except ConfigError as e:
            raise ConfigError(str(e), e.key, path) from None

    def to_toml(self) -> str:
        """A TOML document of this config with every field documented (unset values commented out)."""
        lines = ["# facegate configuration. Every key is optional; removing one restores its default.", ""]
        for name in SECTIONS:
            section = getattr(self, name)
            lines += [f"# {section.DOC}", f"[{name}]"]
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                doc = f.metadata["doc"]
                if f.default is not None and value != f.default:
                    doc += f" (default {_toml_value(f.default)})"
                lines.append(f"# {doc}")
                if value is None:
                    example = f.metadata["example"]
                    lines.append(f"# {f.name} = {_toml_value(example)}" if example is not None else f"# {f.name} =")
                else:
                    lines.append(f"{f.name} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _is_list_field(section: type, key: str) -> bool:
    """Whether `section`.`key` holds a list (a tuple[str, ...] field)."""
    return typing.get_type_hints(section).get(key) == tuple[str, ...]


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        out = []
        for c in value:
            if c in '"\\':
                out.append("\\" + c)
            elif c == "\n":
                out.append("\\n")
            elif c == "\t":
                out.append("\\t")
            elif ord(c) < 0x20 or ord(c) == 0x7F:
                out.append(f"\\u{ord(c):04X}")
            else:
                out.append(c)
        return '"' + "".join(out) + '"'
    raise TypeError(f"cannot write {value!r} as a TOML value")


def load_config(path: str | Path | None, missing_ok: bool = True) -> Config:
    """Read and validate the config file.

    Args:
        path: the TOML file, or None for the defaults.
        missing_ok: a missing file gives the defaults (True) or ConfigError (False, for an
            explicit --config argument).
    Raises:
        ConfigError naming the file and the key: bad TOML, unknown section or key, wrong type,
        value out of range.
    """
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if missing_ok:
            return Config()
        raise ConfigError("config file not found; write a documented default with `facegate config init`",
                          None, path) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", None, path) from None
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror}", None, path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", None, path) from None
    return Config.from_dict(data, path)
