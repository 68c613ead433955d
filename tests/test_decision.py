"""k-of-n door decisions, fed with frame sequences."""
import pytest

from facegate.edge_runtime.config import DecisionConfig
from facegate.edge_runtime.door.decision import Decision, DoorDecider
from facegate.edge_runtime.matching import Match


def M(name, score=0.8):
    """A frame where `name` (None = unknown) was the result."""
    return Match(name, score, 0.1, None if name is None else 1, name or "someone")


def run(decider, frames, dt=0.1, t0=0.0):
    """Feed frames 'A'/'B' (known), '?' (unknown face), '.' (no face); returns the actions."""
    out = []
    for i, f in enumerate(frames):
        match = None if f == "." else M(None if f == "?" else f)
        out.append(decider.update(t0 + i * dt, match))
    return out


def actions(ds):
    return "".join({"open": "O", "deny": "d", "none": "-", "cooldown": "c"}[d.action] for d in ds)


def test_opens_on_k_of_n_same_person():
    d = DoorDecider(k=3, n=5, cooldown_s=5.0)
    ds = run(d, "A.A?A")
    assert actions(ds) == "d-d" + "dO"
    assert ds[-1] == Decision("open", "A", 3, "", 0.8)
    assert [x.votes for x in ds] == [1, 0, 2, 0, 3]
    assert [x.reason for x in ds] == ["agreement", "", "agreement", "unknown", ""]


def test_needs_the_matches_within_the_last_n_frames():
    d = DoorDecider(k=3, n=5, cooldown_s=0.0)
    assert actions(run(d, "A..A..A..A")) == "d--d--d--d"       # never 3 in any 5 consecutive frames


def test_two_people_do_not_add_up():
    d = DoorDecider(k=3, n=5, cooldown_s=0.0)
    ds = run(d, "ABAB")
    assert actions(ds) == "dddd" and [x.name for x in ds] == ["A", "B", "A", "B"]
    assert [x.votes for x in ds] == [1, 1, 2, 2]
    assert run(d, "A", t0=0.4)[0].action == "open"             # A's third frame in the window


def test_unknown_faces_never_open():
    d = DoorDecider(k=1, n=1, cooldown_s=0.0)
    ds = run(d, "?" * 50)
    assert {x.action for x in ds} == {"deny"} and {x.reason for x in ds} == {"unknown"}
    assert all(x.name is None for x in ds)


def test_k_equals_one_opens_on_first_known_frame():
    assert actions(run(DoorDecider(k=1, n=1, cooldown_s=1.0), "?A")) == "dO"


def test_cooldown_blocks_reopening_then_needs_fresh_frames():
    d = DoorDecider(k=2, n=3, cooldown_s=1.0)
    # frames every 0.25 s: opens at t=0.25, cooldown until t=1.25
    ds = run(d, "AAAAA.AAAA", dt=0.25)
    assert actions(ds) == "dO" + "ccc" + "-" + "dO" + "cc"
    assert ds[2].reason == "cooldown" and ds[2].name == "A"
    assert ds[6].votes == 1 and ds[7].votes == 2                # cooldown frames were not counted
    assert sum(x.action == "open" for x in ds) == 2


def test_cooldown_also_holds_for_someone_else():
    d = DoorDecider(k=1, n=1, cooldown_s=2.0)
    ds = run(d, "AB?B", dt=0.5)
    assert actions(ds) == "Occc"
    assert run(d, "B", t0=2.0)[0].action == "open"              # exactly cooldown_s later


def test_window_drops_old_frames():
    d = DoorDecider(k=3, n=5, cooldown_s=0.0, window_s=1.0)
    for t in (0.0, 0.5):                                         # two matches, then the camera stalls
        d.update(t, M("A"))
    assert d.update(10.0, M("A")) == Decision("deny", "A", 1, "agreement", 0.8)
    assert d.update(10.2, M("A")).votes == 2
    assert d.update(10.4, M("A")).action == "open"
    no_window = DoorDecider(k=3, n=5, cooldown_s=0.0)
    no_window.update(0.0, M("A"))
    no_window.update(0.5, M("A"))
    assert no_window.update(10.0, M("A")).action == "open"


def test_deterministic_and_reset():
    seq = "A?AB.AAB?AAA.BBB"
    a = [(x.action, x.name, x.votes) for x in run(DoorDecider(3, 5, 0.5), seq)]
    b = [(x.action, x.name, x.votes) for x in run(DoorDecider(3, 5, 0.5), seq)]
    assert a == b
    d = DoorDecider(k=2, n=2, cooldown_s=100.0)
    assert actions(run(d, "AA")) == "dO"
    d.reset()
    assert actions(run(d, "AA", t0=0.3)) == "dO"


def test_from_config_and_validation():
    d = DoorDecider.from_config(DecisionConfig(k=2, n=4, cooldown_s=1.5, window_s=2.5))
    assert (d.k, d.n, d.cooldown_s, d.window_s) == (2, 4, 1.5, 2.5)
    for bad in (dict(k=0, n=5), dict(k=6, n=5), dict(k=2.0, n=5), dict(cooldown_s=-1.0),
                dict(cooldown_s=float("inf")), dict(window_s=0.0)):
        with pytest.raises(ValueError):
            DoorDecider(**bad)
    d = DoorDecider()
    d.update(5.0, None)
    with pytest.raises(ValueError, match="monotonic"):
        d.update(4.0, M("A"))
    with pytest.raises(ValueError, match="finite"):
        d.update(float("nan"), None)
