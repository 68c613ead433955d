"""The main job end to end on a real video: enroll from a photo, run, the door opens only for them."""
import json

import pytest
from door_fakes import FaultyRelay

from facegate.edge_runtime.bundle import load_bundle
from facegate.main import main


@pytest.fixture()
def home(tmp_path):
    return tmp_path / "home"


def _run(home, bundle, video, events):
    return main(["run", "--home", str(home), "--bundle", str(bundle), "--source", str(video),
                 "--events", str(events)])


def test_enrolled_person_opens_the_door(home, fp32_bundle, data_dir, tmp_path, capsys):
    clips = data_dir / "videos/face_recognition"
    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Lin-Manuel Miranda",
                 str(clips / "lin-manuel-miranda.png")]) == 0
    events = tmp_path / "events.jsonl"
    assert _run(home, fp32_bundle, clips / "short_hamilton_clip.mp4", events) == 0
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    opens = [r for r in rows if r["decision"] == "open"]
    assert opens and all(r["person"] == "Lin-Manuel Miranda" for r in opens)
    assert opens[0]["ts"] < 4.0                      # he is on screen from the start
    assert all(r["votes"] >= 3 for r in opens)       # k = 3 frames agreed
    from facegate.edge_runtime.paths import store_path
    from facegate.edge_runtime.store import Store
    with Store(store_path(home)) as s:
        assert [a.event for a in s.audit(event="door_open")] and s.person("Lin-Manuel Miranda").last_seen_at


def test_nobody_enrolled_never_opens(home, fp32_bundle, data_dir, tmp_path):
    clips = data_dir / "videos/face_recognition"
    events = tmp_path / "events.jsonl"
    assert _run(home, fp32_bundle, clips / "short_hamilton_clip.mp4", events) == 0
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert rows and not [r for r in rows if r["decision"] == "open"]
    assert {r["person"] for r in rows} <= {"unknown", None}


def test_someone_else_enrolled_never_opens(home, fp32_bundle, data_dir, tmp_path):
    clips = data_dir / "videos/face_recognition"
    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Aaron Eckhart",
                 str(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")]) == 0
    events = tmp_path / "events.jsonl"
    assert _run(home, fp32_bundle, clips / "short_hamilton_clip.mp4", events) == 0
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert not [r for r in rows if r["decision"] == "open"]


def test_enroll_refuses_bad_photos_and_stores_nothing(home, fp32_bundle, data_dir, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    group = data_dir / "faceapi_bbt_scenes/bbt1.jpg"
    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Nobody",
                 str(bad), str(group)]) == 1
    err = capsys.readouterr().err
    assert "not a readable image" in err and "faces found" in err and "nothing stored" in err
    assert main(["people", "list", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_identify_names_the_person(home, fp32_bundle, data_dir, capsys):
    lfw = data_dir / "lfw/Colin_Powell"
    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Colin Powell",
                 str(lfw / "Colin_Powell_0001.jpg")]) == 0
    capsys.readouterr()
    assert main(["identify", "--home", str(home), "--bundle", str(fp32_bundle), "--json",
                 str(lfw / "Colin_Powell_0002.jpg"), str(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")]) == 0
    out = json.loads(capsys.readouterr().out)
    center = lambda item: min(item["faces"], key=lambda f: abs((f["box"][0] + f["box"][2]) / 2 - 125))  # noqa: E731
    assert center(out[0])["person"] == "Colin Powell" and center(out[0])["score"] > 0.363
    assert center(out[1])["person"] == "unknown"


def test_reembed_moves_templates_to_a_new_bundle(home, fused_fp32_bundle, data_dir, capsys):
    """Fused templates move to the shipped bundle (same fusion, other model files) from their kept crops."""
    from facegate.edge_runtime.bundle import default_bundle_dir

    lfw = data_dir / "lfw/Colin_Powell"
    old = str(fused_fp32_bundle)
    assert main(["enroll", "--home", str(home), "--bundle", old, "--name", "Colin Powell",
                 str(lfw / "Colin_Powell_0001.jpg"), str(lfw / "Colin_Powell_0003.jpg")]) == 0
    assert main(["enroll", "--home", str(home), "--bundle", old, "--name", "No Crops",
                 "--no-keep-images", str(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")]) == 0
    capsys.readouterr()
    shipped = str(default_bundle_dir())
    probe = str(lfw / "Colin_Powell_0002.jpg")
    assert main(["identify", "--home", str(home), "--bundle", shipped, "--json", probe]) == 0
    out = capsys.readouterr()
    assert "people reembed" in out.err and json.loads(out.out)[0]["faces"][0]["person"] == "unknown"
    assert main(["people", "reembed", "--home", str(home), "--bundle", shipped]) == 1   # one person left
    out = capsys.readouterr()
    assert "Colin Powell: 2 templates re-embedded" in out.out and "No Crops: 1 templates left" in out.err
    assert main(["identify", "--home", str(home), "--bundle", shipped, "--json", probe]) == 0
    faces = json.loads(capsys.readouterr().out)[0]["faces"]
    threshold = load_bundle(shipped).threshold
    assert faces[0]["person"] == "Colin Powell" and faces[0]["score"] > threshold + 2   # far above it


def test_sface_templates_cannot_be_reembedded_for_the_fusion(home, fp32_bundle, data_dir, capsys):
    """A crop kept for SFace alone lacks dlib's wider chip: those people must re-enroll."""
    from facegate.edge_runtime.bundle import default_bundle_dir

    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Colin Powell",
                 str(data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg")]) == 0
    capsys.readouterr()
    assert main(["people", "reembed", "--home", str(home), "--bundle", str(default_bundle_dir())]) == 1
    assert "Colin Powell: 1 templates left (no kept face crop, or made by another embedder)" in capsys.readouterr().err


def test_fused_bundle_opens_for_the_enrolled_person_only(home, fused_fp32_bundle, data_dir, tmp_path):
    from facegate.edge_runtime.paths import store_path
    from facegate.edge_runtime.store import Store

    clips = data_dir / "videos/face_recognition"
    assert main(["enroll", "--home", str(home), "--bundle", str(fused_fp32_bundle), "--name", "Lin-Manuel Miranda",
                 str(clips / "lin-manuel-miranda.png")]) == 0
    assert main(["enroll", "--home", str(home), "--bundle", str(fused_fp32_bundle), "--name", "Aaron Eckhart",
                 str(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")]) == 0
    with Store(store_path(home)) as s:
        g = s.templates(load_bundle(fused_fp32_bundle).id, load_bundle(fused_fp32_bundle).metric)
        assert g.dim == 256 and len(g) == 2
        assert {r for r in s.conn.execute("SELECT embedder FROM templates").fetchall()} == {("sface+dlib_resnet",)}
    events = tmp_path / "events.jsonl"
    assert _run(home, fused_fp32_bundle, clips / "short_hamilton_clip.mp4", events) == 0
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    opens = [r for r in rows if r["decision"] == "open"]
    assert opens and {r["person"] for r in opens} == {"Lin-Manuel Miranda"} and opens[0]["ts"] < 4.0


def test_sface_alone_keeps_old_sface_templates_through_reembed(home, fp32_bundle, data_dir, capsys):
    """The upgrade path that needs no re-enrollment: [recognition] embedder = "sface" on the fused bundle."""
    from facegate.edge_runtime.bundle import default_bundle_dir

    lfw = data_dir / "lfw/Colin_Powell"
    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Colin Powell",
                 str(lfw / "Colin_Powell_0001.jpg")]) == 0
    (home / "config.toml").write_text('[recognition]\nembedder = "sface"\n')
    capsys.readouterr()
    shipped = str(default_bundle_dir())
    assert main(["people", "reembed", "--home", str(home), "--bundle", shipped]) == 0
    assert "Colin Powell: 1 templates re-embedded" in capsys.readouterr().out
    assert main(["identify", "--home", str(home), "--bundle", shipped, "--json", str(lfw / "Colin_Powell_0002.jpg")]) == 0
    face = json.loads(capsys.readouterr().out)[0]["faces"][0]
    assert face["person"] == "Colin Powell" and face["score"] > load_bundle(shipped, embedder="sface").threshold


def test_run_outlives_a_locked_store_and_a_faulty_relay(home, fp32_bundle, data_dir, tmp_path, capsys, monkeypatch):
    """Another process holds the store past the busy timeout and the relay faults: `facegate run` goes on
    (door locked), audits the relay errors as door_error and writes every row later, in order, with rc 0."""
    import sqlite3
    import sys
    import threading
    import time
    import types

    from facegate.edge_runtime.paths import store_path
    from facegate.edge_runtime.store import BUSY_TIMEOUT_MS, Store

    clips = data_dir / "videos/face_recognition"
    assert main(["enroll", "--home", str(home), "--bundle", str(fp32_bundle), "--name", "Lin-Manuel Miranda",
                 str(clips / "lin-manuel-miranda.png")]) == 0
    (home / "config.toml").write_text('[door]\nkind = "gpio"\ngpio_pin = 17\n')
    monkeypatch.setitem(sys.modules, "gpiozero", types.SimpleNamespace(OutputDevice=FaultyRelay))
    events = tmp_path / "events.jsonl"
    holder = sqlite3.connect(store_path(home), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    ended = threading.Event()

    def release():
        """Hold the store until a write has surely failed: the busy timeout after the first opening, and more."""
        while not ended.is_set() and '"decision": "open"' not in (events.read_text() if events.exists() else ""):
            time.sleep(0.05)
        ended.wait(BUSY_TIMEOUT_MS / 1000 + 1.5)
        holder.execute("COMMIT")

    releaser = threading.Thread(target=release)
    releaser.start()
    capsys.readouterr()
    try:
        rc = _run(home, fp32_bundle, clips / "short_hamilton_clip.mp4", events)
    finally:
        ended.set()
        releaser.join()
    assert rc == 0
    assert "0 openings" in capsys.readouterr().err and FaultyRelay.last.value == 0
    with Store(store_path(home)) as s:
        rows = [r for r in reversed(s.audit(limit=1000)) if r.event != "enroll"]
    errors = [r for r in rows if r.event == "door_error"]
    assert errors and not [r for r in rows if r.event == "door_open"]
    assert all(r.person_name == "Lin-Manuel Miranda" and "relay driver fault" in r.details["error"] for r in errors)
    frame_ts = [r.details["ts"] for r in rows if "ts" in r.details]
    assert frame_ts == sorted(frame_ts) and any("at" in r.details for r in rows)      # late rows, in order
