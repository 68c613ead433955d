"""`facegate people export NAME OUT`: everything stored about one person, for a subject-access request."""
import json
import stat

import numpy as np
import pytest
from facegate.edge_runtime.event_log import EventLog, register
from facegate.edge_runtime.store import PersonNotFoundError, Store
from facegate.edge_runtime.subject_access import FORMAT, ExportError, export_person
from facegate.main import main

JPEG = b"\xff\xd8\xff" + b"crop-of-alice" * 20


def _emb(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)


@pytest.fixture()
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with Store(home / "store.db") as s:
        s.enroll("Alice Old", _emb(2, 1), "b", "sface", images=[JPEG, JPEG + b"2"], quality=[0.5, 0.75])
        s.rename("Alice Old", "Alice")
        s.enroll("Bob", _emb(1, 2), "b", "sface", images=[JPEG + b"bob"])
        s.log("door_open", "Alice", score=4.2)
        s.log("door_open", "Bob", score=3.9)
        s.enroll("Alicea", _emb(1, 3), "b", "sface")          # her name holds "Alice": not hers to export
        s.log("door_open", "Alicea", score=3.7)
    log = EventLog(tmp_path / "events.jsonl", max_bytes=120, rotate_s=3600, keep_s=86400)
    register(home, log.path)
    for who in ("Alice", "Bob", None, "Alicea", "Alice"):
        log.write(json.dumps({"person": who, "candidate": who, "decision": "open" if who else "none"}) + "\n")
    log.close()
    return home


def test_export_holds_templates_crops_audit_rows_and_events_of_that_person_only(home, tmp_path):
    out = tmp_path / "sar"
    with Store(home / "store.db") as s:
        n = export_person(s, home, "Alice", out)
        vecs = s.subject_record("Alice")["templates"]
    assert n == {"templates": 2, "images": 2, "audit": 3, "events": 2}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "person.json").stat().st_mode) == 0o600
    doc = json.loads((out / "person.json").read_text())
    assert doc["format"] == FORMAT and doc["person"]["name"] == "Alice" and doc["names"] == ["Alice", "Alice Old"]
    np.testing.assert_array_equal(np.array([t["embedding"] for t in doc["templates"]], np.float32), _emb(2, 1))
    assert [t["quality"] for t in doc["templates"]] == [0.5, 0.75] and len(vecs) == 2
    assert [(out / i["file"]).read_bytes() for i in doc["images"]] == [JPEG, JPEG + b"2"]
    assert [stat.S_IMODE((out / i["file"]).stat().st_mode) for i in doc["images"]] == [0o600, 0o600]
    assert [a["event"] for a in doc["audit"]] == ["enroll", "rename", "door_open"]
    assert [e["person"] for e in doc["events"]] == ["Alice", "Alice"]          # the rotated file too
    assert "Bob" not in (out / "person.json").read_text() and "Alicea" not in (out / "person.json").read_text()


def test_export_refuses_a_used_folder_and_an_unknown_name(home, tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with Store(home / "store.db") as s:
        with pytest.raises(ExportError, match="not an empty folder"):
            export_person(s, home, "Alice", used)
        with pytest.raises(PersonNotFoundError):
            export_person(s, home, "Nobody", tmp_path / "new")
    assert main(["people", "export", "Alice", str(tmp_path / "cli"), "--home", str(home)]) == 0
    assert "exported Alice" in capsys.readouterr().out
    assert (tmp_path / "cli" / "person.json").is_file() and len(list((tmp_path / "cli" / "crops").iterdir())) == 2
