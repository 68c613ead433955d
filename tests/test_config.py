"""Config file loading and validation, the data folder, and the face quality gate."""
import math
import os
import stat

import cv2
import numpy as np
import pytest

from facegate.edge_runtime import paths
from facegate.edge_runtime.config import Config, ConfigError, DecisionConfig, DetectorConfig, DoorConfig, load_config
from facegate.edge_runtime.face import Face
from facegate.edge_runtime.quality import brightness, face_quality, sharpness, yaw_ratio


# -- config --------------------------------------------------------------------------------
def _write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_a_file(tmp_path):
    assert load_config(None) == Config()
    assert load_config(tmp_path / "missing.toml") == Config()
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", missing_ok=False)
    c = Config()
    assert (c.detector.score_threshold, c.detector.nms_threshold, c.detector.max_side, c.detector.min_face_px) == \
        (0.6, 0.4, 640, 60)
    assert (c.decision.k, c.decision.n, c.decision.cooldown_s) == (3, 5, 5.0)
    assert c.recognition.threshold is None and c.door.kind == "log" and c.door.open_s == 3.0
    assert (c.camera.source, c.camera.reconnect_initial_s, c.camera.reconnect_max_s, c.camera.queue_size) == \
        ("0", 1.0, 30.0, 2)


def test_partial_file_overrides_only_its_keys(tmp_path):
    c = load_config(_write(tmp_path, """
[recognition]
threshold = 0.42
[decision]
cooldown_s = 8          # an integer is fine for a float
[door]
kind = "gpio"
gpio_pin = 17
active_high = false
[camera]
source = "rtsp://cam.local/stream"
width = 1280
"""))
    assert c.recognition.threshold == 0.42
    assert c.decision.cooldown_s == 8.0 and isinstance(c.decision.cooldown_s, float)
    assert (c.door.kind, c.door.gpio_pin, c.door.active_high) == ("gpio", 17, False)
    assert c.camera.source == "rtsp://cam.local/stream" and c.camera.width == 1280 and c.camera.height is None
    assert c.detector == DetectorConfig() and c.decision.k == 3


def test_to_toml_round_trips_and_documents_every_field(tmp_path):
    assert load_config(_write(tmp_path, Config().to_toml())) == Config()
    custom = Config(decision=DecisionConfig(k=2, n=4, cooldown_s=1.5, window_s=2.0),
                    door=DoorConfig(kind="webhook", url='https://dóor.local/hook?a="b"\\c', open_s=0.5))
    text = custom.to_toml()
    assert load_config(_write(tmp_path, text)) == custom
    lines = text.splitlines()
    for section in ("detector", "recognition", "decision", "door", "camera"):
        obj = getattr(custom, section)
        assert f"[{section}]" in lines
        for key in obj.__dataclass_fields__:
            i = next(i for i, ln in enumerate(lines) if ln.split("=")[0].strip("# ").strip() == key
                     and "=" in ln)
            assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 12, key        # a comment above
    assert "# threshold = " in text                                                       # unset: commented out
    assert "(default 3)" in text                                                           # changed k shows default


@pytest.mark.parametrize("text,match", [
    ("[detectr]\nscore_threshold = 0.5", r"unknown section \[detectr\] \(did you mean 'detector'\?\)"),
    ("[detector]\nscore_treshold = 0.5", r"unknown key detector.score_treshold \(did you mean 'score_threshold'\?\)"),
    ("threshold = 0.5", r"key 'threshold' is outside any section"),
    ("[door.extra]\nx = 1", r"unknown key door.extra"),
    ("[detector]\nscore_threshold = \"high\"", r"detector.score_threshold must be a number"),
    ("[detector]\nmax_side = 640.5", r"detector.max_side must be a whole number"),
    ("[detector]\nmin_face_px = true", r"detector.min_face_px must be a whole number"),
    ("[door]\nactive_high = 1", r"door.active_high must be true or false"),
    ("[camera]\nsource = 0", r"camera.source must be a string"),
    ("[detector]\nscore_threshold = 1.5", r"detector.score_threshold = 1.5 must be <= 1.0"),
    ("[detector]\nmax_yaw_ratio = 0", r"detector.max_yaw_ratio = 0.0 must be > 0"),
    ("[detector]\nmin_sharpness = nan", r"detector.min_sharpness must be a finite number"),
    ("[decision]\nk = 6", r"decision.k = 6 is larger than decision.n = 5"),
    ("[decision]\nk = 0", r"decision.k = 0 must be >= 1"),
    ("[camera]\nqueue_size = 0", r"camera.queue_size = 0 must be >= 1"),
    ("[camera]\nreconnect_initial_s = 60.0", r"camera.reconnect_max_s = 30.0 is below"),
    ("[door]\nkind = \"relay\"", r"door.kind = 'relay' is not one of 'log', 'gpio', 'webhook', 'mqtt'"),
    ("[door]\nkind = \"gpio\"", r"needs door.gpio_pin"),
    ("[door]\nkind = \"webhook\"\nurl = \"ftp://x\"", r"door.url = 'ftp://x' must start with http"),
    ("[door]\nkind = \"mqtt\"", r"needs door.mqtt_host"),
    ("[door]\nmqtt_topic = \"a/#\"", r"door.mqtt_topic"),
    ("[door]\nopen_s = [1, 2]", r"door.open_s must be a single value"),
    ("[decision\nk = 1", r"not valid TOML"),
])
def test_bad_files_name_the_key_and_the_file(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ")
    assert e.value.path == path


def test_sections_validate_when_built_in_code():
    with pytest.raises(ConfigError, match="decision.k"):
        DecisionConfig(k=4, n=3)
    with pytest.raises(ConfigError, match="detector.nms_threshold"):
        DetectorConfig(nms_threshold=-0.1)


def test_not_utf8(tmp_path):
    p = tmp_path / "config.toml"
    p.write_bytes(b"[door]\nkind = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


# -- data folder ---------------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEGATE_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return monkeypatch


def test_data_home_precedence(clean_env, tmp_path):
    default = tmp_path / "user" / ".local" / "share" / "facegate"
    assert paths.data_home(None) == default
    assert stat.S_IMODE(os.stat(default).st_mode) == 0o700
    clean_env.setenv("XDG_DATA_HOME", "relative/dir")                 # not absolute: ignored (XDG spec)
    assert paths.data_home(None) == default
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.data_home(None) == tmp_path / "xdg" / "facegate"
    clean_env.setenv("FACEGATE_HOME", str(tmp_path / "env"))
    assert paths.data_home(None) == tmp_path / "env"
    assert paths.data_home(tmp_path / "cli" / "deep") == tmp_path / "cli" / "deep"
    assert stat.S_IMODE(os.stat(tmp_path / "cli" / "deep").st_mode) == 0o700
    assert paths.store_path(tmp_path).name == "store.db" == paths.STORE_FILE
    assert paths.config_path(tmp_path).name == "config.toml" == paths.CONFIG_FILE


def test_data_home_keeps_existing_folder_and_refuses_a_file(clean_env, tmp_path):
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    assert paths.data_home(str(existing)) == existing
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o755
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(paths.DataHomeError, match="is a file"):
        paths.data_home(f)


# -- quality gate --------------------------------------------------------------------------
FRONTAL = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)


def _face(side=100.0, landmarks=FRONTAL):
    return Face(np.array([0, 0, side, side]), landmarks, 0.99)


def _chip(low=60, high=200, seed=0):
    return np.random.default_rng(seed).integers(low, high, (112, 112, 3)).astype(np.uint8)


def _rotate(points, degrees, centre=(50, 60)):
    t = math.radians(degrees)
    r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return ((points - centre) @ r.T + centre).astype(np.float32)


def test_yaw_ratio():
    assert yaw_ratio(FRONTAL) == pytest.approx(0.0)
    turned = FRONTAL.copy()
    turned[2, 0] = 66                                       # nose 16 px right of the midpoint, eyes 40 apart
    assert yaw_ratio(turned) == pytest.approx(0.4)
    assert yaw_ratio(_rotate(FRONTAL, 35)) == pytest.approx(0.0, abs=1e-5)     # head tilt is not yaw
    assert yaw_ratio(_rotate(turned, -20)) == pytest.approx(0.4, abs=1e-5)
    same_eyes = FRONTAL.copy()
    same_eyes[1] = same_eyes[0]
    assert yaw_ratio(same_eyes) == math.inf


def test_face_quality_reasons():
    cfg = DetectorConfig()
    good = _chip()
    assert sharpness(good) > 1000 and 100 < brightness(good) < 160
    assert face_quality(_face(), good, cfg) == []
    assert face_quality(_face(side=59), good, cfg) == ["too small"]
    assert face_quality(_face(side=60), good, cfg) == []
    blurred = cv2.GaussianBlur(good, (0, 0), 4)
    assert sharpness(blurred) < cfg.min_sharpness
    assert face_quality(_face(), blurred, cfg) == ["too blurry"]
    dark = _chip(0, 40)                                     # sharp noise, mean ~20
    assert face_quality(_face(), dark, cfg) == ["too dark"]
    turned = FRONTAL.copy()
    turned[2, 0] = 66
    assert face_quality(_face(landmarks=turned), good, cfg) == ["not frontal"]
    assert face_quality(_face(landmarks=_rotate(FRONTAL, 30)), good, cfg) == []
    everything = face_quality(_face(side=20, landmarks=turned), np.zeros((112, 112, 3), np.uint8), cfg)
    assert everything == ["too small", "too blurry", "too dark", "not frontal"]
    lenient = DetectorConfig(min_face_px=10, min_sharpness=0.0, min_brightness=0.0, max_yaw_ratio=0.5)
    assert face_quality(_face(side=20, landmarks=turned), blurred, lenient) == []


def test_quality_measures_the_centre_not_the_black_border():
    chip = np.zeros((112, 112, 3), np.uint8)
    chip[22:90, 22:90] = 150                                # flat face area, black outside
    assert brightness(chip) == pytest.approx(150, abs=1)
    assert sharpness(chip) == pytest.approx(0.0)            # the border edge does not count as detail


def test_face_quality_rejects_bad_chips():
    with pytest.raises(ValueError, match="uint8"):
        face_quality(_face(), np.zeros((112, 112), np.uint8), DetectorConfig())
    with pytest.raises(ValueError, match="uint8"):
        face_quality(_face(), np.zeros((112, 112, 3), np.float32), DetectorConfig())
