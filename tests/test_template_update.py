"""Templates that age: which openings may add a template, the per-person bound keeping the most diverse set,
the store's flagged templates and their undo (CLI), and the door adding one after a live opening."""
import io
import types

import numpy as np
import pytest

from facegate.edge_runtime.config import Config
from facegate.edge_runtime.door.actuators import LogDoor
from facegate.edge_runtime.door.decision import DoorDecider
from facegate.edge_runtime.door.runner import Runner
from facegate.edge_runtime.matching import Match, TemplateGallery, l2_normalize
from facegate.edge_runtime.paths import store_path
from facegate.edge_runtime.store import InvalidTemplateError, Store
from facegate.edge_runtime.template_update import learn, most_redundant, templates_to_drop, update_verdict
from facegate.main import main


def unit(*v):
    return l2_normalize(np.asarray(v, np.float32)[None])[0]


def test_verdict_needs_a_live_usable_face_well_above_the_threshold_and_nobody_else():
    assert update_verdict(5.0, 1.0, 3.3, 1.0, True) == ""
    assert update_verdict(4.2, 1.0, 3.3, 1.0, True).startswith("score 4.200 is below the threshold 3.300 + margin 1")
    assert update_verdict(5.0, 1.0, 3.3, 1.0, False) == "presentation attack suspected"
    assert update_verdict(5.0, 1.0, 3.3, 1.0, None) == "liveness not checked"
    assert update_verdict(5.0, 3.4, 3.3, 1.0, True).startswith("another person also matches")
    assert update_verdict(5.0, 1.0, 3.3, 1.0, True, usable=False) == "face not usable"
    assert update_verdict(float("nan"), 1.0, 3.3, 1.0, True) != ""


def test_the_most_redundant_row_goes_and_fixed_rows_stay():
    sims = np.array([[1, .9, .2], [.9, 1, .1], [.2, .1, 1]])
    assert most_redundant(sims, 0) == 0 and most_redundant(sims, 1) == 1 and most_redundant(sims, 2) == 2
    with pytest.raises(ValueError):
        most_redundant(sims, 3)


def test_the_bound_keeps_the_most_diverse_set():
    enrolled = np.stack([unit(1, 0, 0)])
    auto = np.stack([unit(0, 1, 0), unit(0.1, 1, 0), unit(0, 0, 1)])
    # a 4th added template with a bound of 3: one of the two near-duplicates goes (the older one on a tie)
    assert templates_to_drop(enrolled, auto, unit(-1, 0, 0.2), 3, "cosine") in ([0], [1])
    # of two equal templates the older goes (the newer face is the more current one)
    assert templates_to_drop(enrolled, auto[[0, 2]], unit(0, 1, 0), 2, "cosine") == [0]
    # a new face between what is there (the closest to the rest) is itself the one dropped: nothing is added
    assert templates_to_drop(enrolled, auto[[0, 2]], unit(1, 1, 0), 2, "cosine") == [2]
    assert templates_to_drop(enrolled, auto[:1], unit(0, 0, 1), 3, "cosine") == []     # room left
    assert templates_to_drop(enrolled, np.zeros((0, 3)), unit(0, 1, 0), 1, "cosine") == []


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.db")
    s.enroll("Ana", np.stack([unit(1, 0, 0)]), "b", "fake")
    s.enroll("Bo", np.stack([unit(0, 0, 1)]), "b", "fake")
    yield s
    s.close()


def test_added_templates_are_flagged_audited_bounded_and_undone(store, tmp_path):
    t1 = learn(store, "Ana", unit(1, 0.3, 0), "b", "fake", "cosine", 2, score=5.0)
    t2 = learn(store, "Ana", unit(1, -0.3, 0), "b", "fake", "cosine", 2, score=5.1)
    t3 = learn(store, "Ana", unit(1, 0.31, 0), "b", "fake", "cosine", 2, score=5.2)       # repeats t1
    ids, vecs, added = store.person_templates("Ana", "b")
    assert t3 is not None and len(ids) == 3 and added[0] is None and all(a is not None for a in added[1:])
    assert set(ids[1:]) in ({t2, t3}, {t1, t2})               # one of the two near-duplicates was dropped
    rows = [a for a in reversed(store.audit()) if a.event == "template_added"]
    assert [r.details["score"] for r in rows] == [5.0, 5.1, 5.2] and rows[-1].details["dropped"] in ([t1], [t3])
    assert all(set(r.details) == {"template_id", "dropped", "score"} for r in rows)      # no embedding in the log
    with pytest.raises(InvalidTemplateError, match="not an auto-added template"):
        store.add_auto_template("Ana", unit(0, 1, 0), "b", "fake", drop=[ids[0]])        # enrolled: never dropped
    assert store.undo_auto_templates("Ana") == [max(ids[1:])]
    assert store.undo_auto_templates("Ana", all_of_them=True) == [min(ids[1:])]
    assert store.undo_auto_templates("Ana", all_of_them=True) == []
    assert store.person("Ana").templates == 1
    assert [a.details for a in store.audit(event="template_undone")] == [{"template_ids": [min(ids[1:])]},
                                                                         {"template_ids": [max(ids[1:])]}]


def test_cli_undo_update(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    with Store(store_path(home)) as s:
        s.enroll("Ana", np.stack([unit(1, 0, 0)]), "b", "fake")
        for v in (unit(1, 1, 0), unit(1, 0, 1), unit(1, -1, 0)):
            learn(s, "Ana", v, "b", "fake", "cosine", 5)
    assert main(["people", "undo-update", "--home", str(home), "Ana"]) == 0
    assert "removed 1 template added by the door" in capsys.readouterr().out
    assert main(["people", "undo-update", "--home", str(home), "Ana", "--all"]) == 0
    assert "removed 2 templates" in capsys.readouterr().out
    with Store(store_path(home)) as s:
        assert s.person("Ana").templates == 1


class LiveRecognizer:
    """Recognizer stand-in with a liveness model: each frame shows Ana's face (embedding `vec`) with the next
    scripted (score, liveness)."""

    def __init__(self, frames, vec, **updates):
        self.bundle = types.SimpleNamespace(id="b", metric="cosine", liveness=object(),
                                            embedder=types.SimpleNamespace(name="fake"))
        self.config = Config.from_dict({"decision": {"k": 1, "n": 1}, "template_updates": {"enabled": True, **updates}})
        self.liveness_on, self.frames, self.vec, self.threshold = True, list(frames), vec, 3.3
        self.templates = TemplateGallery.empty("cosine")
        self.operating = types.SimpleNamespace(describe=lambda: "fake operating point")

    def analyze(self, frame, live=True):
        score, p = self.frames.pop(0)
        face = types.SimpleNamespace(width=100, height=100, box=(0, 0, 100, 100), embedding=self.vec)
        return [types.SimpleNamespace(face=face, problems=(), usable=True, match=Match("Ana", score, 0.5, 1, "Ana"),
                                      liveness=p, quality=None)]


def door(store, frames, vec, **updates):
    rec = LiveRecognizer(frames, vec, **updates)
    runner = Runner(rec, store, LogDoor(), DoorDecider(1, 1, 0.0), io.StringIO())
    for i in range(len(rec.frames)):
        runner.process(float(i), np.zeros((8, 8, 3), np.uint8))
    runner.close()
    return store.person_templates("Ana", "b")[2]


def test_the_door_learns_only_from_confident_live_openings(store):
    assert door(store, [(4.0, 0.9), (5.0, 0.3), (6.0, 0.1)], unit(1, 0.2, 0)) == [None]   # near / attacks
    added = door(store, [(5.0, 0.9)], unit(1, 0.2, 0))
    assert len(added) == 2 and added[1] is not None
    row, = store.audit(event="template_added")
    assert row.person_name == "Ana" and row.details["score"] == 5.0 and row.details["liveness"] == 0.9
    assert row.details["threshold"] == 3.3 and row.details["margin"] == 1.0


def test_off_by_default():
    assert Config().template_updates.enabled is False


def test_the_lfw_protocol_on_synthetic_faces_that_age():
    """Faces drift from their enrolled photo; updates follow the drift, impostors never get in."""
    from facegate.edge_runtime.eval.template_update_eval import evaluate_template_updates, template_update_stream

    rng = np.random.default_rng(0)
    dim, table, people = 32, {}, {}
    for p in range(40):
        base, drift = rng.normal(size=dim), rng.normal(size=dim)
        people[f"p{p:02d}"] = [f"p{p:02d}/{t}" for t in range(6)]
        for t in range(6):                                   # the face moves away from the enrolled photo
            table[f"p{p:02d}/{t}"] = l2_normalize((base + 0.45 * t * drift + 0.3 * rng.normal(size=dim))[None])[0]
    impostors = [f"x/{i}" for i in range(200)]
    table.update({r: l2_normalize(rng.normal(size=(1, dim)))[0] for r in impostors})
    stream = template_update_stream(people, impostors)
    assert [r for r, who in stream if who is not None][:2] == ["p00/1", "p01/1"]          # round by round
    assert len(stream) == 40 * 5 + 200 and stream[-1][1] is not None
    report = evaluate_template_updates(table, "cosine", people, impostors, margins=(0.2,), max_auto=3)
    base, upd = report["runs"]["no_updates"], report["runs"]["updates_margin_0.2"]
    assert report["impostor_probes"] == 200 and base["fpir"] <= 0.01
    assert upd["added"] > 0 and upd["fnir"] < base["fnir"]
    assert upd["added_from_impostors"] == 0 and upd["added_to_wrong_person"] == 0
    assert upd["templates"] <= 40 * (1 + 3)


def test_an_update_waits_for_a_locked_store_and_lands_in_order(tmp_path):
    import sqlite3
    import time

    from door_fakes import wait_until

    from facegate.edge_runtime.door.audit import AuditWriter

    path = tmp_path / "store.db"
    with Store(path) as s:
        s.enroll("Ana", np.stack([unit(1, 0, 0)]), "b", "fake")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                               # another process holds the store
    w = AuditWriter(path, busy_timeout_ms=50, retry_s=0.05)
    w.log("door_open", "Ana", score=5.0)
    w.call("template_added", "Ana", lambda st: learn(st, "Ana", unit(1, 0.2, 0), "b", "fake", "cosine", 5, score=5.0))
    time.sleep(0.3)
    assert w.pending == 2
    holder.execute("COMMIT")
    assert wait_until(lambda: w.pending == 0)
    assert w.close(1.0) == 0
    with Store(path) as s:
        assert [a.event for a in reversed(s.audit())] == ["enroll", "door_open", "template_added"]
        assert s.person("Ana").templates == 2
