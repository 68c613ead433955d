"""Liveness at the door: attack frames never count toward opening, openings need live frames, events and
the audit log say why (no biometric data), and the start line says whether liveness is checked."""
import io
import json
import logging
import math
import types

import numpy as np
import pytest
from door_fakes import store_with_ana

from facegate.edge_runtime.config import Config, ConfigError
from facegate.edge_runtime.door.actuators import LogDoor
from facegate.edge_runtime.door.decision import ATTACK, DoorDecider
from facegate.edge_runtime.door.liveness_gate import NO_LIVENESS_MODEL, frame_live, liveness_line
from facegate.edge_runtime.door.runner import Runner
from facegate.edge_runtime.matching import Match

FRAME = np.zeros((8, 8, 3), np.uint8)


def M(name, score=0.8):
    return Match(name, score, 0.1, None if name is None else 1, name or "someone")


def feed(decider, frames, dt=0.1):
    """frames: 'L' Ana live, 'X' Ana judged an attack, 'U' Ana unchecked (None), '.' no face."""
    live = {"L": True, "X": False, "U": None}
    return [decider.update(i * dt, None if f == "." else M("Ana"), live.get(f), {"L": 0.9, "X": 0.1}.get(f))
            for i, f in enumerate(frames)]


def test_attack_frames_never_count_toward_opening():
    d = DoorDecider(k=3, n=5, cooldown_s=0.0, min_live_frames=3)
    ds = feed(d, "XXXXXXXX")
    assert {x.action for x in ds} == {"deny"} and {x.reason for x in ds} == {ATTACK}
    assert [x.votes for x in ds] == [0] * 8 and ds[0].liveness == 0.1 and ds[0].name == "Ana"
    ds = feed(DoorDecider(k=3, n=5, cooldown_s=0.0, min_live_frames=3), "LXLXL")
    assert [x.action for x in ds] == ["deny"] * 4 + ["open"]          # 3 live of the last 5: the attacks held slots
    ds = feed(DoorDecider(k=3, n=4, cooldown_s=0.0, min_live_frames=3), "LXLXL")
    assert [x.action for x in ds] == ["deny"] * 5 and ds[-1].votes == 2   # only 2 live frames in the last 4


def test_unchecked_frames_match_but_are_not_live():
    ds = feed(DoorDecider(k=3, n=5, cooldown_s=0.0, min_live_frames=2), "UUU")
    assert [x.action for x in ds] == ["deny"] * 3 and ds[-1].reason == "liveness" and ds[-1].votes == 3
    ds = feed(DoorDecider(k=3, n=5, cooldown_s=0.0, min_live_frames=2), "ULL")
    assert ds[-1].action == "open"
    ds = feed(DoorDecider(k=3, n=5, cooldown_s=0.0, min_live_frames=0), "UUU")    # liveness off
    assert ds[-1].action == "open" and ds[-1].liveness is None


def test_min_live_frames_must_fit_in_k():
    with pytest.raises(ValueError, match="from 0 to k = 3"):
        DoorDecider(k=3, n=5, min_live_frames=4)
    with pytest.raises(ConfigError, match="liveness.min_live_frames = 4 is larger than decision.k = 3"):
        Config.from_dict({"liveness": {"min_live_frames": 4}})
    assert Config.from_dict({"liveness": {"min_live_frames": 2}, "decision": {"k": 2}}).liveness.min_live_frames == 2


def test_frame_live_is_fail_secure():
    assert frame_live(0.5, 0.5) is True and frame_live(0.49, 0.5) is False
    assert frame_live(None, 0.5) is None and frame_live(0.9, None) is None
    assert frame_live(math.nan, 0.5) is False and frame_live(math.inf, 0.5) is False
    assert liveness_line(True, 0.5) == "liveness: on (threshold 0.50)"
    assert liveness_line(False) == NO_LIVENESS_MODEL == "liveness: off — this bundle has no liveness model; see README"
    assert "enabled = false" in liveness_line(False, None, has_model=True)


class LiveRecognizer:
    """Recognizer stand-in whose bundle has a liveness model: each `analyze` gives Ana's face with the next
    scripted liveness score (None: no face)."""

    def __init__(self, scores, enabled=True, threshold=0.5, min_live_frames=2):
        self.bundle = types.SimpleNamespace(id="fake-bundle", metric="cosine", liveness=object())
        self.config = Config.from_dict({"liveness": {"enabled": enabled, "threshold": threshold,
                                                     "min_live_frames": min_live_frames}})
        self.liveness_on = enabled
        self.scores = list(scores)
        self.templates = None
        self.operating = types.SimpleNamespace(describe=lambda: "fake operating point")

    def analyze(self, frame, live=True):
        p = self.scores.pop(0) if self.scores else None
        if p is None:
            return []
        face = types.SimpleNamespace(width=100, height=100, box=(0, 0, 100, 100))
        return [types.SimpleNamespace(face=face, problems=(), usable=True, match=M("Ana", 0.9),
                                      liveness=p if self.liveness_on else None, quality=None)]


@pytest.fixture
def store(tmp_path):
    s = store_with_ana(tmp_path / "store.db")
    yield s
    s.close()


def run_frames(store, recognizer, k=3, n=5, deny_log_s=0.0):
    events = io.StringIO()
    runner = Runner(recognizer, store, LogDoor(), DoorDecider(k, n, 0.0), events, deny_log_s=deny_log_s)
    for i in range(len(recognizer.scores)):
        runner.process(i * 0.1, FRAME)
    stats = runner.close()
    rows = [(a.event, a.person_name, a.details) for a in reversed(store.audit(limit=1000)) if a.event != "enroll"]
    return stats, [json.loads(line) for line in events.getvalue().splitlines()], rows


def test_a_held_up_photo_never_opens_and_is_audited(store, caplog):
    caplog.set_level(logging.INFO, "facegate.run")
    stats, events, rows = run_frames(store, LiveRecognizer([0.12] * 6))
    assert "liveness: on (threshold 0.50)" in caplog.text
    assert stats.opens == 0 and stats.attacks == 6
    assert {e["decision"] for e in events} == {"deny"} and {e["reason"] for e in events} == {ATTACK}
    assert [e["liveness"] for e in events] == [0.12] * 6
    attacks = [r for r in rows if r[0] == "attack"]
    assert len(attacks) == 6 and attacks[0][1] == "Ana"
    assert attacks[0][2] == {"reason": ATTACK, "liveness": 0.12, "threshold": 0.5, "score": 0.9, "frames": 1,
                             "ts": 0.0}                 # the scores only: no embedding, no image
    assert not any(r[0] == "door_open" for r in rows)


def test_attack_rows_are_rate_limited_and_count_the_frames(store):
    stats, _, rows = run_frames(store, LiveRecognizer([0.1] * 6), deny_log_s=0.25)
    attacks = [r[2] for r in rows if r[0] == "attack"]
    assert stats.attacks == 6 and [a["ts"] for a in attacks] == pytest.approx([0.0, 0.3])
    assert [a["frames"] for a in attacks] == [1, 3]     # frames 0.1, 0.2 counted into the row at 0.3


def test_live_frames_open_and_one_attack_frame_in_between_does_not(store):
    stats, events, rows = run_frames(store, LiveRecognizer([0.9, 0.2, 0.95, 0.97]))
    assert [e["decision"] for e in events] == ["deny", "deny", "deny", "open"]
    assert [e["reason"] for e in events] == ["agreement", ATTACK, "agreement", ""]
    assert stats.opens == 1 and [e["votes"] for e in events] == [1, 0, 2, 3]
    assert [r[0] for r in rows] == ["deny", "attack", "deny", "door_open"]


def test_liveness_off_says_so_and_opens_as_before(store, caplog):
    caplog.set_level(logging.INFO, "facegate.run")
    rec = LiveRecognizer([0.1, 0.1, 0.1], enabled=False)
    rec.bundle.liveness = None
    stats, events, _ = run_frames(store, rec)
    assert NO_LIVENESS_MODEL in caplog.text
    assert stats.opens == 1 and events[-1]["liveness"] is None


def test_unset_min_live_frames_follows_a_smaller_k():
    cfg = Config.from_dict({"decision": {"k": 2, "n": 3}})
    assert cfg.liveness.min_live_frames == 2
    assert Config.from_dict({}).liveness.min_live_frames == 3


def test_main_job_opens_for_him_with_liveness_on(liveness_bundle, data_dir, tmp_path, caplog):
    """The Hamilton clip through `facegate run` on a bundle with the MiniFASNet liveness models (default config:
    liveness on, threshold 0.5, 3 of the k = 3 frames live): Lin-Manuel Miranda still opens the door."""
    from facegate.edge_runtime.paths import store_path
    from facegate.edge_runtime.store import Store
    from facegate.main import main

    home, clips, events = tmp_path / "home", data_dir / "videos/face_recognition", tmp_path / "events.jsonl"
    assert main(["enroll", "--home", str(home), "--bundle", str(liveness_bundle), "--name", "Lin-Manuel Miranda",
                 str(clips / "lin-manuel-miranda.png")]) == 0
    caplog.set_level(logging.INFO, "facegate.run")
    assert main(["run", "--home", str(home), "--bundle", str(liveness_bundle), "--source",
                 str(clips / "short_hamilton_clip.mp4"), "--events", str(events)]) == 0
    assert "liveness: on (threshold 0.72)" in caplog.text
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    opens = [r for r in rows if r["decision"] == "open"]
    assert opens and all(r["person"] == "Lin-Manuel Miranda" for r in opens)
    assert opens[0]["ts"] < 4.0 and all(r["liveness"] >= 0.5 for r in opens)
    scored = [r["liveness"] for r in rows if r["person"] == "Lin-Manuel Miranda"]
    assert scored and all(0.0 <= p <= 1.0 for p in scored)
    with Store(store_path(home)) as s:
        assert s.audit(event="door_open")


def test_enrolling_a_printed_photo_is_refused_unless_no_liveness(liveness_bundle, data_dir, tmp_path, capsys):
    """The upstream print-attack sample is refused with the reason; --no-liveness takes it and logs that."""
    from facegate.edge_runtime.paths import store_path
    from facegate.edge_runtime.store import Store
    from facegate.main import main

    home, attack = tmp_path / "home", data_dir / "antispoof_samples/spoof/image_F1.jpg"
    args = ["enroll", "--home", str(home), "--bundle", str(liveness_bundle), "--name", "Printed", str(attack)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "refused: presentation attack suspected (liveness 0." in err and "--no-liveness" in err
    assert main([*args, "--no-liveness"]) == 0
    with Store(store_path(home)) as s:
        row, = s.audit(event="liveness_skipped")
    assert row.person_name == "Printed" and row.details["liveness"] == "skipped"
    assert row.details["liveness_scores"][0] < 0.5


def test_the_drawn_frame_shows_the_liveness_and_a_suspected_attack():
    from facegate.edge_runtime.door.decision import Decision
    from facegate.edge_runtime.door.runner import draw
    from facegate.edge_runtime.face import Face
    from facegate.edge_runtime.recognizer import FaceResult

    face = Face(np.array([200, 150, 300, 280]), np.zeros((5, 2)), 0.99)
    frame = np.full((480, 640, 3), 128, np.uint8)
    r = FaceResult(face, (), (np.zeros((112, 112, 3), np.uint8),), M("Ana", 5.0), liveness=0.08)
    quiet = draw(frame, [r], Decision("deny", "Ana", 0, "agreement", 5.0, 0.08))
    alarm = draw(frame, [r], Decision("deny", "Ana", 0, ATTACK, 5.0, 0.08))
    assert not np.array_equal(quiet[:40, :500], alarm[:40, :500])       # the banner
    red = (alarm[:40, :500, 2] > 200) & (alarm[:40, :500, 1] < 50)
    assert red.sum() > 100
    no_live = draw(frame, [FaceResult(face, (), r.chips, M("Ana", 5.0))], Decision("deny", "Ana", 0, "agreement"))
    assert not np.array_equal(quiet[100:150], no_live[100:150])          # "live 0.08" after the name
