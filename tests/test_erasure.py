"""`facegate people delete` leaves no trace: on a real data home (two people enrolled from photos, the door
run on a video with rotating event files, a rename, a backup taken after the delete), no file holds the
deleted person's names (UTF-8 or UTF-16), the bytes of any of their templates or of their kept face crops;
the other person is intact."""
import json
import tarfile
from pathlib import Path

import numpy as np
from door_fakes import NoFaceRecognizer

from facegate.edge_runtime.event_log import rotated_files
from facegate.edge_runtime.store import Store
from facegate.main import main

GONE, FORMER, KEEP = "Lin-Manuel Miranda", "Lin Erasure-Former-Name", "Aaron Eckhart"


def _files(*roots):
    """(label, bytes) of every file under the roots, and of every member of every tar file among them."""
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if not p.is_file():
                continue
            data = p.read_bytes()
            yield str(p), data
            if tarfile.is_tarfile(p):
                with tarfile.open(p) as tar:
                    for m in tar.getmembers():
                        if m.isfile():
                            yield f"{p}:{m.name}", tar.extractfile(m).read()


def _needles(templates, crops):
    """What must not be found: the names in UTF-8 and UTF-16, every template vector (whole, and its first
    32 bytes), every kept crop (whole, and 256-byte runs of it: its middle and one per KB)."""
    out = {}
    for n in (GONE, FORMER):
        out[f"name {n!r} utf-8"] = n.encode("utf-8")
        out[f"name {n!r} utf-16"] = n.encode("utf-16-le")
    for i, v in enumerate(templates):
        out[f"template {i}"] = v.tobytes()
        out[f"template {i} head"] = v.tobytes()[:32]
    for i, c in enumerate(crops):
        out[f"crop {i}"] = c
        out[f"crop {i} middle"] = c[len(c) // 2: len(c) // 2 + 256]
        for at in range(0, len(c) - 256, 1024):
            out[f"crop {i} bytes {at}.."] = c[at:at + 256]
    return out


def test_deleting_a_person_leaves_no_trace_in_any_file(data_dir, tmp_path):
    clips = data_dir / "videos/face_recognition"
    home, logs = tmp_path / "home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    (home / "config.toml").write_text("[privacy]\nevents_rotate_mb = 0.004\n")     # rotate every ~4 KB
    events = logs / "events.jsonl"
    assert main(["enroll", "--home", str(home), "--name", FORMER, str(clips / "lin-manuel-miranda.png")]) == 0
    assert main(["people", "rename", FORMER, GONE, "--home", str(home)]) == 0
    assert main(["enroll", "--home", str(home), "--name", KEEP,
                 str(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")]) == 0
    assert main(["run", "--home", str(home), "--source", str(clips / "short_hamilton_clip.mp4"),
                 "--events", str(events)]) == 0
    assert rotated_files(events), "the event file should have rotated"
    with Store(home / "store.db") as s:
        gone = s.subject_record(GONE)
        keep_before = s.subject_record(KEEP)
        assert s.audit(event="door_open", person=GONE)                 # the door opened for him
    templates = [t["embedding"] for t in gone["templates"]]
    crops = [i["jpeg"] for i in gone["images"]]
    assert templates and crops
    shared = [i["jpeg"] for i in keep_before["images"]]        # JPEG headers and tables are the same for every crop
    needles = {k: v for k, v in _needles(templates, crops).items() if not any(v in c for c in shared)}
    assert sum(k.startswith("crop") for k in needles) >= 3
    before = {what for label, data in _files(home, logs) for what, b in needles.items() if b in data}
    # the scan sees them before (a whole crop spans SQLite overflow pages, so runs of it are looked for too)
    assert {f"name {GONE!r} utf-8", f"name {FORMER!r} utf-8", "template 0", "crop 0 middle"} <= before

    assert main(["people", "delete", GONE, "--yes", "--home", str(home)]) == 0
    assert main(["backup", str(home / "after-delete.tar"), "--home", str(home)]) == 0

    found = [f"{what} in {label}" for label, data in _files(home, logs) for what, b in needles.items() if b in data]
    assert not found, found
    with Store(home / "store.db") as s:                                 # the other person is intact
        keep = s.subject_record(KEEP)
        assert [p.name for p in s.people()] == [KEEP]
        for a, b in zip(keep["templates"], keep_before["templates"]):
            np.testing.assert_array_equal(a["embedding"], b["embedding"])
        assert [i["jpeg"] for i in keep["images"]] == [i["jpeg"] for i in keep_before["images"]]
        assert [r.person_name for r in s.audit(event="enroll", limit=10)] == [KEEP, None]
        assert s.audit(event="delete")[0].person_name is None
    rows = [json.loads(line) for p in [*rotated_files(events), events] for line in p.read_text().splitlines()]
    assert rows and any(r["decision"] == "open" and r["person"] is None for r in rows)  # events stay, nameless


def test_delete_erases_names_from_audit_rows_and_every_event_file(tmp_path):
    """The same rule without models or research data: a renamed person with a non-ASCII name, event lines
    written raw and \\u-escaped across rotated files; after the delete no file holds either name."""
    from facegate.edge_runtime.event_log import EventLog, register

    home, logs = tmp_path / "home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    old, new, other = "Zoë Old-Ærase", "Zoë Ærase", "Bob Stays"
    marker = np.frombuffer(b"TPL!" * 32, "<f4").reshape(1, 32)
    crop = b"\xff\xd8\xff" + b"ZOE-CROP-BYTES" * 50
    with Store(home / "store.db") as s:
        s.enroll(old, np.repeat(marker, 2, axis=0), "b", "sface", images=[crop, crop])
        s.rename(old, new)
        s.enroll(other, np.ones((1, 32), np.float32), "b", "sface")
        s.log("door_open", new, score=4.0)
        s.log("note", None, text=f"{new} came in with {other}")
    log = EventLog(logs / "events.jsonl", max_bytes=300, rotate_s=3600, keep_s=86400)
    register(home, log.path)
    for i in range(12):
        who = (new, other, None)[i % 3]
        line = {"ts": i, "person": who, "candidate": who, "decision": "open" if who else "none"}
        log.write(json.dumps(line, ensure_ascii=bool(i % 2)) + "\n")
    assert rotated_files(log.path)

    with Store(home / "store.db") as s:
        s.delete(new)
    log.write(json.dumps({"ts": 99, "person": other}) + "\n")           # the running log goes on appending
    log.close()
    needles = {"names": [n.encode(enc) for n in (old, new) for enc in ("utf-8", "utf-16-le")] +
               [json.dumps(n).encode()[1:-1] for n in (old, new)],
               "bytes": [marker.tobytes(), b"ZOE-CROP-BYTES" * 4]}
    found = [(str(p), b) for p in [*home.rglob("*"), *logs.rglob("*")] if p.is_file()
             for b in needles["names"] + needles["bytes"] if b in p.read_bytes()]
    assert not found, found
    rows = [json.loads(line) for p in [*reversed(rotated_files(log.path)), log.path]
            for line in p.read_text().splitlines()]
    assert [r["ts"] for r in rows] == [*range(12), 99]                  # every line kept, in order
    assert [r["person"] for r in rows[:3]] == [None, other, None]
    with Store(home / "store.db") as s:
        assert [p.name for p in s.people()] == [other]
        assert [r.details.get("text") for r in s.audit(event="note")] == [f"[erased] came in with {other}"]


def test_the_scrub_rule_leaves_other_names_that_contain_the_erased_one(tmp_path):
    from facegate.edge_runtime.erasure import scrubbed, scrubbed_line

    assert scrubbed({"person": "Ann Lee", "candidate": "Ann Lee Jr", "text": "Ann Lee met Ann Leeds and Ann Lee Jr",
                     "tags": ["Ann Lee", "x"], "n": 3}, ["Ann Lee"]) == \
        {"person": None, "candidate": "Ann Lee Jr", "text": "[erased] met Ann Leeds and [erased] Jr",
         "tags": [None, "x"], "n": 3}
    assert scrubbed_line("not json: Ann Lee, Ann Leeds\n", ["Ann Lee"]) == "not json: [erased], Ann Leeds\n"
    with Store(tmp_path / "store.db") as s:
        s.enroll("Ann Lee", np.ones((1, 8), np.float32), "b", "sface")
        s.enroll("Ann Leeds", np.full((1, 8), 2, np.float32), "b", "sface")
        s.log("door_open", "Ann Leeds", score=4.0)
        assert s.delete("Ann Lee").templates == 1
        assert s.audit(event="delete")[0].details["audit_rows_anonymised"] == 1     # her enroll row only
        assert [(r.event, r.person_name) for r in s.audit()][1:] == [("door_open", "Ann Leeds"), ("enroll", "Ann Leeds"),
                                                                      ("enroll", None)]


def test_door_rows_that_waited_in_the_queue_do_not_bring_a_deleted_name_back(tmp_path):
    from facegate.edge_runtime.door.audit import AuditWriter

    db = tmp_path / "store.db"
    with Store(db) as s:
        s.enroll("Ann Lee", np.ones((1, 8), np.float32), "b", "sface")
        s.enroll("Bo", np.full((1, 8), 2, np.float32), "b", "sface")
        s.delete("Ann Lee")                            # deleted while the door's rows about her still wait
    w = AuditWriter(db, retry_s=0.05)
    w.log("door_open", "Ann Lee", score=4.0, note="Ann Lee at the door")
    w.log("door_open", "Bo", score=3.5)
    assert w.flush(10.0) and w.close(1.0) == 0
    with Store(db) as s:
        rows = [(r.person_name, r.details) for r in s.audit(event="door_open")]
    assert rows == [("Bo", {"score": 3.5}), (None, {"score": 4.0, "note": "[erased] at the door"})]


def test_the_running_door_erases_lines_it_wrote_before_it_saw_the_delete(tmp_path):
    from facegate.edge_runtime.door.actuators import LogDoor
    from facegate.edge_runtime.door.decision import DoorDecider
    from facegate.edge_runtime.door.runner import Runner
    from facegate.edge_runtime.event_log import EventLog, register

    home = tmp_path / "home"
    home.mkdir()
    db = home / "store.db"
    with Store(db) as s:
        s.enroll("Ann Lee", np.ones((1, 8), np.float32), "b", "sface")
        s.enroll("Bo", np.full((1, 8), 2, np.float32), "b", "sface")
    events = EventLog(tmp_path / "events.jsonl", max_bytes=10**6, rotate_s=3600, keep_s=86400)
    register(home, events.path)
    frame = np.zeros((8, 8, 3), np.uint8)
    with Store(db) as door_store:
        r = Runner(NoFaceRecognizer("b"), door_store, LogDoor(), DoorDecider(1, 1, 0.0), events, refresh_s=0.0)
        assert set(r.recognizer.templates.names) == {"Ann Lee", "Bo"}
        with Store(db) as admin:
            admin.delete("Ann Lee")                    # from another process, while the door runs
        events.write(json.dumps({"person": "Ann Lee", "note": "before the door saw it"}) + "\n")
        events.write(json.dumps({"person": "Bo"}) + "\n")
        r.process(1.0, frame)                          # the refresh sees her gone
        assert r.recognizer.templates.names == ("Bo",)
        r.close()
    events.close()
    rows = [json.loads(line) for line in events.path.read_text().splitlines()]
    assert rows == [{"person": None, "note": "before the door saw it"}, {"person": "Bo"}]


# -- the photo library and backups ------------------------------------------------------------------------
OLD, NEW, OTHER = "Zoë Old-Ærase", "Zoë Ærase", "Bob Stays"


def _name_needles(*names):
    return [n.encode(enc) for n in names for enc in ("utf-8", "utf-16-le")] + \
        [json.dumps(n).encode()[1:-1] for n in names]


def _door_home(home):
    """A data home: OLD enrolled (template and crop with marker bytes), renamed NEW, OTHER enrolled; a photo
    library whose people were named from the door before and after the rename; audit and event lines naming
    NEW. Returns (NEW's template bytes, crop, OTHER's template)."""
    from facegate.edge_runtime.event_log import EventLog, register
    from facegate.edge_runtime.photos.db import FaceRecord, PhotoDB, photos_path
    from facegate.edge_runtime.photos.organize import DoorNames, name_from_door, organize

    home.mkdir()
    rng = np.random.default_rng(1)
    gone = (np.eye(32)[0] + 0.01 * rng.standard_normal(32)).astype("<f4").reshape(1, 32)
    keep = (np.eye(32)[1] + 0.01 * rng.standard_normal(32)).astype("<f4").reshape(1, 32)
    crop = b"\xff\xd8\xff" + b"ZOE-CROP-BYTES" * 50
    with Store(home / "store.db") as s:
        s.enroll(OLD, gone, "b", "sface", images=[crop])
        s.enroll(OTHER, keep, "b", "sface")
        s.log("door_open", OLD, score=4.0)
        with PhotoDB(photos_path(home)) as db:
            for i, v in enumerate([gone[0] * 0.95, gone[0] * 0.9, keep[0] * 1.05, keep[0] * 1.1]):
                db.put_photo(f"/photos/{i}.jpg", 10, i, f"{i:064d}", "b", "ok", "", [FaceRecord(
                    np.array([0, 0, 50, 60], np.float32), np.zeros((5, 2), np.float32), 0.9, (), v, b"\xff\xd8\xffT")])
            organize(db, "b", "cosine", 0.5, DoorNames(s.templates("b"), 0.5))        # named OLD and OTHER
            s.rename(OLD, NEW)
            name_from_door(db, "b", DoorNames(s.templates("b"), 0.5))                 # now NEW
            assert sorted(r[0] for r in db.read("SELECT name FROM people WHERE name_source = 'door'")) == [OTHER, NEW]
        s.log("door_open", NEW, score=4.1)
    log = EventLog(home.parent / "events.jsonl", max_bytes=10**6, rotate_s=3600, keep_s=86400)
    register(home, log.path)
    log.write(json.dumps({"person": NEW}, ensure_ascii=False) + "\n")
    log.write(json.dumps({"person": OTHER}) + "\n")
    log.close()
    return gone.tobytes(), crop, keep.tobytes()


def _files_holding(roots, needles):
    return [(str(p), b[:16]) for root in roots for p in sorted(root.rglob("*")) if p.is_file()
            for b in needles if b in p.read_bytes()]


def test_delete_takes_the_door_names_off_the_photo_library(tmp_path):
    from facegate.edge_runtime.photos.db import PhotoDB, photos_path

    home = tmp_path / "home"
    _door_home(home)
    assert {n for _, n in _files_holding([home], _name_needles(OLD, NEW))}     # photos.db (+ WAL) holds them
    reader = PhotoDB(photos_path(home))          # a photo library open elsewhere (the admin page): the WAL stays
    try:
        with Store(home / "store.db") as s:
            s.delete(NEW)
        assert (home / "photos.db-wal").exists()
        found = _files_holding([home], _name_needles(OLD, NEW))
        assert not found, found                                   # photos.db, its -wal and -shm, the store
        rows = reader.read("SELECT name, name_source, (SELECT count(*) FROM faces f WHERE f.person_id = p.id) "
                           "FROM people p ORDER BY id")
        assert rows == [(None, None, 2), (OTHER, "door", 2)]      # unnamed, faces kept; the other one kept
    finally:
        reader.close()


def test_a_name_the_user_gave_in_the_photo_library_is_the_users(tmp_path):
    from facegate.edge_runtime.photos.db import PhotoDB, photos_path
    from facegate.edge_runtime.photos.people import name_person

    home = tmp_path / "home"
    _door_home(home)
    with PhotoDB(photos_path(home)) as db:
        bob = db.read("SELECT id FROM people WHERE name = ?", (OTHER,))[0][0]
        name_person(db, bob, NEW)                       # the user calls another face group by the same name
    with Store(home / "store.db") as s:
        s.delete(NEW)
    with PhotoDB(photos_path(home)) as db:
        assert db.read("SELECT name, name_source FROM people ORDER BY id") == [(None, None), (NEW, "user")]


def test_restoring_a_backup_taken_before_a_delete_does_not_bring_the_person_back(tmp_path, capsys):
    home = tmp_path / "home"
    template, crop, other = _door_home(home)
    assert main(["backup", str(tmp_path / "before.tar"), "--home", str(home)]) == 0
    with Store(home / "store.db") as s:
        s.delete(NEW)
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "before.tar"), "--force", "--keep-stale", "--home", str(home)]) == 0
    assert "re-applied 1 erasure made after this backup" in capsys.readouterr().out
    needles = _name_needles(OLD, NEW) + [template, template[:32], b"ZOE-CROP-BYTES" * 4]
    found = _files_holding([home, tmp_path / "events.jsonl"], needles)   # store, photos.db, .before-restore ...
    assert not found, found
    with Store(home / "store.db") as s:
        assert [p.name for p in s.people()] == [OTHER]
        assert s.templates("b").matrix.tobytes() == other
        assert len(s.erasures()) == 1                                    # the ledger survives the restore
        assert s.audit(event="erasure_reapplied")[0].details["templates"] == 1
        assert [r.person_name for r in s.audit(event="door_open")] == [None, None]


def test_the_ledger_comes_with_a_backup_and_outlives_restores(tmp_path, capsys):
    home = tmp_path / "home"
    _door_home(home)
    assert main(["backup", str(tmp_path / "before.tar"), "--home", str(home)]) == 0
    with Store(home / "store.db") as s:
        s.delete(NEW)
    assert main(["backup", str(tmp_path / "after.tar"), "--home", str(home)]) == 0
    device = tmp_path / "new-device"                  # a new device: the newest backup first, then an older one
    assert main(["restore", str(tmp_path / "after.tar"), "--keep-stale", "--home", str(device)]) == 0
    assert "re-applied 0 erasures" in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "before.tar"), "--force", "--keep-stale", "--home", str(device)]) == 0
    assert "re-applied 1 erasure made after this backup" in capsys.readouterr().out
    with Store(device / "store.db") as s:
        assert [p.name for p in s.people()] == [OTHER] and len(s.erasures()) == 1
    assert not _files_holding([device], _name_needles(OLD, NEW))


def test_delete_reaches_the_copies_a_forced_restore_kept(tmp_path, capsys):
    home = tmp_path / "home"
    template, crop, other = _door_home(home)
    assert main(["backup", str(tmp_path / "b.tar"), "--home", str(home)]) == 0
    assert main(["restore", str(tmp_path / "b.tar"), "--force", "--keep-stale", "--home", str(home)]) == 0
    assert (home / "store.db.before-restore").is_file() and (home / "photos.db.before-restore").is_file()
    with Store(home / "store.db") as s:
        s.delete(NEW)
    found = _files_holding([home], _name_needles(OLD, NEW) + [template, b"ZOE-CROP-BYTES" * 4])
    assert not found, found
    with Store(home / "store.db.before-restore") as s:
        assert [p.name for p in s.people()] == [OTHER] and len(s.erasures()) == 1


def test_stores_and_photo_libraries_of_the_last_schema_are_migrated(tmp_path):
    """A store of schema 3 gets the erasure ledger (4), a photo library of schema 1 the forgotten faces (2)."""
    import sqlite3

    from facegate.edge_runtime.photos.db import PhotoDB
    from facegate.edge_runtime.photos.schema import MIGRATIONS as PHOTO_STEPS
    from facegate.edge_runtime.sqlite_db import migrate
    from facegate.edge_runtime.store_schema import MIGRATIONS

    old = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    assert migrate(old, MIGRATIONS[:3]) == 3
    old.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('Ann Lee', 1.5, 1.5)")
    old.close()
    with Store(tmp_path / "store.db") as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == 4 and s.erasures() == []
        s.delete("Ann Lee")
        assert [(e.person_id, e.enrolled_at) for e in s.erasures()] == [(1, 1.5)]
    old = sqlite3.connect(tmp_path / "photos.db", isolation_level=None)
    assert migrate(old, PHOTO_STEPS[:1]) == 1
    old.close()
    with PhotoDB(tmp_path / "photos.db") as db:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.read("SELECT count(*) FROM forgotten_faces") == [(0,)]


def test_a_running_photo_watch_does_not_name_anyone_after_a_deleted_door_person(data_dir, tmp_path, capsys):
    """`photos watch` keeps its pipeline open; a door person deleted meanwhile names no one at its next scan."""
    import shutil

    from facegate.edge_runtime.photos.db import photos_path
    from facegate.main import build_parser
    from facegate.photos import open_pipeline, scan_and_sort

    home, folder = tmp_path / "home", tmp_path / "photos"
    folder.mkdir(parents=True)
    lfw = data_dir / "lfw/Colin_Powell"
    assert main(["enroll", "--home", str(home), "--name", "Colin Door-Name", str(lfw / "Colin_Powell_0001.jpg")]) == 0
    for n in (2, 3):
        shutil.copy(lfw / f"Colin_Powell_000{n}.jpg", folder)
    args = build_parser().parse_args(["photos", "watch", str(folder), "--poll", "1", "--home", str(home)])
    db, rec, door, threshold = open_pipeline(args)
    with db:
        scan_and_sort(db, rec, door, threshold, [str(folder)], quiet=True)
        assert db.read("SELECT name, name_source FROM people") == [("Colin Door-Name", "door")]
        assert main(["people", "delete", "Colin Door-Name", "--yes", "--home", str(home)]) == 0
        assert db.read("SELECT name FROM people") == [(None,)]
        shutil.copy(lfw / "Colin_Powell_0004.jpg", folder)           # the watch's next scan
        scan_and_sort(db, rec, door, threshold, [str(folder)], quiet=True)
        assert db.read("SELECT name FROM people") == [(None,)]
    assert b"Colin Door-Name" not in photos_path(home).read_bytes()
