"""The SQLite enrollment store: atomic writes, crash safety, deletion, names, locking, full disk, audit."""
import multiprocessing
import os
import signal
import sqlite3
import stat
import time

import numpy as np
import pytest

from facegate.edge_runtime import store as store_mod
from facegate.edge_runtime.errors import ImageError
from facegate.edge_runtime.store import (
    SCHEMA_VERSION,
    DuplicateNameError,
    InvalidNameError,
    InvalidTemplateError,
    PersonNotFoundError,
    Store,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreVersionError,
    migrate,
    normalize_name,
)

JPEG = b"\xff\xd8\xff\xe0" + b"thumbnail" * 10


def _emb(n, d=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _counts(path):
    """Rows per table, read with a separate raw connection."""
    with sqlite3.connect(path) as c:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("people", "templates", "images", "audit")}


def _integrity(path):
    with sqlite3.connect(path) as c:
        return c.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store.db"


def test_new_store_is_private_wal_and_current(db):
    with Store(db) as s:
        assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
        c = s.conn
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert c.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 1          # NORMAL
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_enroll_round_trips_embeddings_and_images(db):
    e1, e2 = _emb(3, seed=1), _emb(2, seed=2)
    with Store(db, clock=lambda: 100.0) as s:
        p = s.enroll("Alice", e1, "bundleA", "sface", images=[JPEG + b"0", JPEG + b"1", JPEG + b"2"],
                     quality=[0.9, 0.8, 0.7])
        assert (p.name, p.templates, p.images, p.created_at, p.last_seen_at) == ("Alice", 3, 3, 100.0, None)
        p2 = s.enroll("Alice", e2, "bundleA", "sface", create=False)      # adds to the same person
        assert (p2.id, p2.templates, p2.images) == (p.id, 5, 3)
        g = s.templates("bundleA")
        assert g.names == ("Alice",) * 5 and g.person_ids == (p.id,) * 5
        np.testing.assert_array_equal(g.matrix, np.concatenate([e1, e2]))   # bit-exact float32
        assert s.images("Alice") == [JPEG + b"0", JPEG + b"1", JPEG + b"2"]
        # 3 images for 3 embeddings: image i belongs to template i
        links = s.conn.execute("SELECT i.jpeg, t.embedding FROM images i JOIN templates t ON t.id = i.template_id "
                               "ORDER BY i.id").fetchall()
        assert [bytes(j)[-1:] for j, _ in links] == [b"0", b"1", b"2"]
        assert [np.frombuffer(b, "<f4").tolist() for _, b in links] == e1.tolist()
        with pytest.raises(PersonNotFoundError, match="Bob"):
            s.enroll("Bob", e1, "bundleA", "sface", create=False)
        s.touch_seen("Alice", 123.5)
        assert s.person("Alice").last_seen_at == 123.5
        with pytest.raises(PersonNotFoundError):
            s.touch_seen("Bob", 1.0)
        with pytest.raises(PersonNotFoundError):
            s.images("Bob")
        assert [r.event for r in s.audit()] == ["enroll", "enroll"]
        assert s.audit()[1].details == {"templates": 3, "images": 3, "dim": 8, "bundle_id": "bundleA",
                                        "embedder": "sface", "created": True}


@pytest.mark.parametrize("bad,exc", [
    (np.zeros((0, 8), np.float32), InvalidTemplateError),
    (np.zeros(8, np.float32), InvalidTemplateError),
    (np.array([[1.0, np.nan]], np.float32), InvalidTemplateError),
    (np.ones((2, 4), np.int64), InvalidTemplateError),
])
def test_enroll_rejects_bad_embeddings(db, bad, exc):
    with Store(db) as s:
        with pytest.raises(exc):
            s.enroll("Alice", bad, "b", "sface")
        with pytest.raises(ImageError, match="JPEG"):
            s.enroll("Alice", _emb(1), "b", "sface", images=[b"\x89PNG\r\n\x1a\n...."])
        assert s.people() == []


def test_failure_mid_enroll_stores_nothing(db, monkeypatch):
    with Store(db) as s:
        s.enroll("Alice", _emb(2), "b", "sface", images=[JPEG])
        before = _counts(db)
        updated = s.conn.execute("SELECT updated_at FROM people").fetchone()[0]

        def boom(self, conn, *args):      # runs after the template and image rows were inserted
            assert conn.execute("SELECT count(*) FROM templates").fetchone()[0] > before["templates"]
            raise RuntimeError("injected")
        monkeypatch.setattr(Store, "_append_audit", boom)
        with pytest.raises(RuntimeError, match="injected"):
            s.enroll("Alice", _emb(3), "b", "sface", images=[JPEG, JPEG])
        with pytest.raises(RuntimeError, match="injected"):
            s.enroll("Bob", _emb(3), "b", "sface", images=[JPEG])
        assert _counts(db) == before
        assert s.conn.execute("SELECT updated_at FROM people").fetchone()[0] == updated
        assert not s.conn.in_transaction
        monkeypatch.undo()
        assert s.enroll("Bob", _emb(1), "b", "sface").templates == 1       # the store still works


def test_sql_failure_mid_enroll_stores_nothing(db):
    with Store(db) as s:
        s.enroll("Alice", _emb(1), "b", "sface")
        before = _counts(db)
        s.conn.execute("CREATE TEMP TRIGGER fail_images BEFORE INSERT ON images "
                       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
        with pytest.raises(StoreError, match="injected failure"):
            s.enroll("Bob", _emb(4), "b", "sface", images=[JPEG])
        assert _counts(db) == before


def _enroll_then_hang(path, ready):
    """Child: one committed enroll, then a big enroll that stops inside its transaction."""
    s = Store(path)
    s.enroll("old", _emb(2), "b", "sface", images=[JPEG])

    def hang(self, conn, *args):
        ready.set()
        time.sleep(60)
    Store._append_audit = hang
    big = [b"\xff\xd8\xff" + os.urandom(1 << 20) for _ in range(6)]     # > SQLite's page cache: spills to the WAL
    s.enroll("new", _emb(6, seed=3), "b", "sface", images=big)


def _enroll_forever(path, done):
    s = Store(path)
    i = 0
    while True:
        s.enroll(f"person{i}", _emb(3, seed=i), "b", "sface",
                 images=[b"\xff\xd8\xff" + os.urandom(300_000) for _ in range(2)])
        i += 1
        done.value = i


def test_killed_mid_enroll_keeps_old_state(db):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_enroll_then_hang, args=(str(db), ready))
    p.start()
    try:
        assert ready.wait(20), "child never reached the middle of its transaction"
        assert os.path.getsize(str(db) + "-wal") > 1 << 20        # uncommitted pages already on disk
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    assert p.exitcode == -signal.SIGKILL
    with Store(db) as s:
        assert [(x.name, x.templates, x.images) for x in s.people()] == [("old", 2, 1)]
        assert [r.event for r in s.audit()] == ["enroll"]
    assert _integrity(db) == "ok"


def test_killed_at_random_point_is_all_or_nothing(db):
    ctx = multiprocessing.get_context("fork")
    done = ctx.Value("i", 0)
    p = ctx.Process(target=_enroll_forever, args=(str(db), done))
    p.start()
    try:
        deadline = time.monotonic() + 20
        while done.value < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(np.random.default_rng().uniform(0, 0.02))
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    assert done.value >= 3
    assert _integrity(db) == "ok"
    with Store(db) as s:
        people = s.people()
        assert len(people) >= done.value
        assert all((x.templates, x.images) == (3, 2) for x in people)     # never a half-written person
        assert len(s.audit(limit=1000, event="enroll")) == len(people)


def test_delete_removes_every_row_and_overwrites_the_bytes(db):
    marker_img = b"\xff\xd8\xff" + b"FACEGATE-SECRET-IMAGE-MARKER" * 40
    marker_emb = np.frombuffer(b"EMB1" * 128, "<f4").reshape(1, 128)     # finite floats, recognisable bytes
    with Store(db) as s:
        s.enroll("Keep", _emb(2, 128), "b", "sface", images=[JPEG])
        victim = s.enroll("Gone", np.repeat(marker_emb, 3, axis=0), "b", "sface", images=[marker_img] * 3)

    def raw():
        return b"".join(open(f, "rb").read() for f in (str(db), str(db) + "-wal") if os.path.exists(f))
    assert b"FACEGATE-SECRET-IMAGE-MARKER" in raw() and b"EMB1" * 16 in raw()

    with Store(db) as s:
        gone = s.delete("Gone")
        assert (gone.templates, gone.images) == (3, 3)
        assert [x.name for x in s.people()] == ["Keep"]
        for table in ("templates", "images"):
            assert s.conn.execute(f"SELECT count(*) FROM {table} WHERE person_id = ?", (victim.id,)).fetchone()[0] == 0
        assert s.conn.execute("SELECT count(*) FROM people WHERE id = ?", (victim.id,)).fetchone()[0] == 0
        assert s.conn.execute("SELECT count(*) FROM images WHERE template_id NOT IN (SELECT id FROM templates)"
                              ).fetchone()[0] == 0
        assert os.path.getsize(str(db) + "-wal") == 0                      # checkpointed and truncated
        assert b"FACEGATE-SECRET-IMAGE-MARKER" not in raw() and b"EMB1" * 16 not in raw()
        assert s.templates("b").names == ("Keep", "Keep")
        assert [(r.event, r.person_name, r.details) for r in s.audit(limit=1)] == \
            [("delete", None, {"templates": 3, "images": 3, "audit_rows_anonymised": 1})]   # no name left
        with pytest.raises(PersonNotFoundError):
            s.delete("Gone")
    assert b"FACEGATE-SECRET-IMAGE-MARKER" not in raw()
    assert _integrity(db) == "ok"


def test_unicode_names_round_trip(db):
    names = ["Zoë Ødegård", "李小龙", "Ana 🙂", "José María", "ميلاد\u200cرضا"]
    with Store(db) as s:
        for n in names:
            s.enroll(n, _emb(1), "b", "sface")
        assert sorted(p.name for p in s.people()) == sorted(names)
        # the decomposed spelling (e + combining diaeresis) is the same person
        assert s.person("Zoe\u0308 Ødegård").name == "Zoë Ødegård"
        assert s.enroll("  Zoe\u0308 Ødegård ", _emb(1), "b", "sface").templates == 2
        assert len(s.people()) == len(names)
        s.rename("李小龙", "李小龍")
        assert s.person("李小龍").templates == 1
    with Store(db) as s:                                                   # and after reopening
        assert "Ana 🙂" in {p.name for p in s.people()}


@pytest.mark.parametrize("bad", ["", "   ", "a" * 101, "bob\nsmith", "x\x00y", "tab\tname", "a\u2028b", "\x7f", 42, None])
def test_invalid_names(db, bad):
    with pytest.raises(InvalidNameError):
        normalize_name(bad)
    with Store(db) as s, pytest.raises(InvalidNameError):
        s.enroll(bad, _emb(1), "b", "sface")


def test_name_limits():
    assert normalize_name("  " + "é" * 100 + " ") == "é" * 100
    assert normalize_name("e\u0301") == "é"


# (name, the code points the refusal must name): invisible, text-direction and other format (Cf) characters
HIDDEN = [("Bob\u200b", ["U+200B"]), ("\u202eBob", ["U+202E"]), ("A\u2066B\u2069", ["U+2066", "U+2069"]),
          ("Bo\u00adb", ["U+00AD"]), ("x\u2060y", ["U+2060"]), ("\ufeffBob", ["U+FEFF"]),
          ("Bob\U000e0041", ["U+E0041"]), ("Ana\u200b\u200bMaria", ["U+200B"]),
          ("B\u200co", ["U+200C"]),        # a joiner between Latin letters changes nothing on screen
          ("Bob\u200d", ["U+200D"]), ("\u3164", ["U+3164"]), ("Ann\u3164", ["U+3164"])]


@pytest.mark.parametrize("bad, codes", HIDDEN)
def test_names_with_invisible_or_direction_characters_are_refused(db, bad, codes):
    with pytest.raises(InvalidNameError, match="invisible or text-direction") as e:
        normalize_name(bad)
    for code in codes:
        assert code in str(e.value)
    assert str(e.value).count("U+") == len(codes)                   # each code point named once
    with Store(db) as s:
        s.enroll("Bob", _emb(1), "b", "sface")
        with pytest.raises(InvalidNameError, match=codes[0].replace("+", r"\+")):
            s.enroll(bad, _emb(1), "b", "sface")
        with pytest.raises(InvalidNameError, match=codes[0].replace("+", r"\+")):
            s.rename("Bob", bad)
        assert [p.name for p in s.people()] == ["Bob"]


def test_joiners_that_shape_the_script_are_kept():
    for name in ["ميلاد\u200cرضا",                  # Persian: ZWNJ between Arabic letters
                 "क्\u200dष",                        # Devanagari: ZWJ after a virama
                 "ශ්\u200dරී"]:                      # Sinhala
        assert normalize_name(name) == name


def test_whitespace_runs_become_one_space(db):
    for raw in ["Ana  Maria", "Ana\u00a0Maria", " Ana \u3000 Maria ", "Ana\u2009Maria"]:
        assert normalize_name(raw) == "Ana Maria"
    with Store(db) as s:
        s.enroll("Ana Maria", _emb(1), "b", "sface")
        s.enroll("Bob", _emb(1), "b", "sface")
        with pytest.raises(DuplicateNameError):                        # no look-alike second "Ana Maria"
            s.rename("Bob", "Ana\u00a0 Maria")
        assert s.enroll("Ana  Maria", _emb(1), "b", "sface").templates == 2     # the same person


def test_names_stored_before_the_rules_stay_reachable(db):
    """People enrolled when hidden characters and double spaces were still accepted can be found,
    recognised, renamed and deleted by their stored name (only new names must follow the rules)."""
    with Store(db) as s:
        s.enroll("Zed", _emb(1), "b", "sface", images=[JPEG])
        legacy = {"Zed": "Zed\u200b", "Two": "Two  Spaces"}
        s.enroll("Two", _emb(1), "b", "sface")
        for new, old in legacy.items():
            s.conn.execute("UPDATE people SET name = ? WHERE name = ?", (old, new))
        assert s.person("Zed\u200b").templates == 1 and s.images("Zed\u200b") == [JPEG]
        s.touch_seen("Zed\u200b", 5.0)                         # the door records a legacy name's visit
        assert s.rename("Zed\u200b", "Zed").last_seen_at == 5.0
        assert s.delete("Two  Spaces").templates == 1
        with pytest.raises(InvalidNameError, match="U\\+200B"):  # new templates need a clean name
            s.enroll("Zed\u200b", _emb(1), "b", "sface")
        assert [p.name for p in s.people()] == ["Zed"]


def test_duplicate_names(db):
    with Store(db) as s:
        a = s.enroll("Alice", _emb(2), "b", "sface")
        s.enroll("Bob", _emb(1), "b", "sface")
        with pytest.raises(DuplicateNameError, match="Bob"):
            s.rename("Alice", "Bob")
        with pytest.raises(DuplicateNameError):
            s.rename("Alice", " Bob ")
        assert [(p.name, p.templates) for p in s.people()] == [("Alice", 2), ("Bob", 1)]
        with pytest.raises(PersonNotFoundError):
            s.rename("Carol", "Dave")
        assert s.rename("Alice", "Alicia").id == a.id
        assert [r.details for r in s.audit(event="rename")] == [{"from": "Alice"}]
        with pytest.raises(sqlite3.IntegrityError):                        # the schema itself refuses
            s.conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('Bob', 0, 0)")


def test_locked_database_raises_busy_and_loses_nothing(db):
    with Store(db) as s:
        s.enroll("Alice", _emb(1), "b", "sface")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Store(db, busy_timeout_ms=50) as s:
            t0 = time.monotonic()
            with pytest.raises(StoreBusyError, match="locked by another"):
                s.enroll("Bob", _emb(1), "b", "sface")
            with pytest.raises(StoreBusyError):
                s.log("door_open", "Alice")
            assert time.monotonic() - t0 < 3
            assert [p.name for p in s.people()] == ["Alice"]                # readers are not blocked
            other.execute("ROLLBACK")
            s.enroll("Bob", _emb(1), "b", "sface")
            assert [p.name for p in s.people()] == ["Alice", "Bob"]
    finally:
        other.close()


def test_full_disk_rolls_back_and_keeps_earlier_data(db):
    with Store(db) as s:
        s.enroll("Alice", _emb(2), "b", "sface", images=[JPEG])
        before = _counts(db)
        pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
        s.conn.execute(f"PRAGMA max_page_count = {pages + 3}")
        big = [b"\xff\xd8\xff" + os.urandom(50_000)]
        with pytest.raises(StoreFullError, match="full"):
            s.enroll("Bob", _emb(2), "b", "sface", images=big)
        with pytest.raises(StoreFullError):
            s.enroll("Alice", _emb(2), "b", "sface", images=big)
        assert not s.conn.in_transaction
        assert _counts(db) == before
        assert s.person("Alice").templates == 2
        s.conn.execute("PRAGMA max_page_count = 1073741823")
        assert s.enroll("Bob", _emb(2), "b", "sface", images=big).images == 1
    assert _integrity(db) == "ok"


def test_audit_is_append_only_and_filterable(db):
    t = iter([10.0, 20.0, 30.0, 40.0])
    with Store(db, clock=lambda: next(t)) as s:
        s.log("door_open", "Zoë", score=0.71, frames=[1, 2])
        s.log("unknown_face", score=0.12)
        s.log("door_open", "Bob", score=0.8)
        rows = s.audit()
        assert [(r.ts, r.event, r.person_name) for r in rows] == [(30.0, "door_open", "Bob"),
                                                                  (20.0, "unknown_face", None),
                                                                  (10.0, "door_open", "Zoë")]
        assert rows[2].details == {"score": 0.71, "frames": [1, 2]}
        assert [r.ts for r in s.audit(event="door_open")] == [30.0, 10.0]
        assert [r.ts for r in s.audit(since=20.0)] == [30.0, 20.0]
        assert [r.ts for r in s.audit(limit=1)] == [30.0]
        with pytest.raises(TypeError, match="JSON"):
            s.log("bad", blob=object())
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            s.conn.execute("UPDATE audit SET event = 'edited'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            s.conn.execute("DELETE FROM audit")
        assert len(s.audit()) == 3
        assert not hasattr(s, "delete_audit")


def test_templates_are_per_bundle_and_stale_ones_are_reported(db):
    with Store(db) as s:
        s.enroll("Alice", _emb(2, 8, 1), "old-bundle", "dlib")
        s.enroll("Alice", _emb(1, 16, 2), "new-bundle", "sface")
        s.enroll("Bob", _emb(3, 8, 3), "old-bundle", "dlib")
        s.enroll("Carol", _emb(2, 16, 4), "new-bundle", "sface")
        g = s.templates("new-bundle")
        assert g.names == ("Alice", "Carol", "Carol") and g.matrix.shape == (3, 16)
        assert s.stale_templates("new-bundle") == {"Alice": 2, "Bob": 3}
        assert s.stale_templates("old-bundle") == {"Alice": 1, "Carol": 2}
        assert s.stale_templates("third") == {"Alice": 3, "Bob": 3, "Carol": 2}
        assert len(s.templates("unknown-bundle")) == 0
        with pytest.raises(InvalidTemplateError, match="16-dimensional"):
            s.enroll("Dave", _emb(1, 8), "new-bundle", "sface")


def test_migrates_an_empty_file_and_refuses_a_future_version(db):
    db.write_bytes(b"")
    with Store(db) as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"people", "templates", "images", "audit"} <= tables
        s.enroll("Alice", _emb(1), "b", "sface")
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreVersionError, match="upgrade facegate"):
        Store(db)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert c.execute("SELECT name FROM people").fetchall() == [("Alice",)]


def test_migration_steps_apply_in_order_in_one_transaction(db):
    with Store(db) as s:
        s.enroll("Alice", _emb(1), "b", "sface")
    c = sqlite3.connect(db, isolation_level=None)
    try:
        failing = store_mod.MIGRATIONS + (("ALTER TABLE people ADD COLUMN note TEXT",
                                           "CREATE TABLE extra (a INTEGER)",
                                           "THIS IS NOT SQL"),)
        with pytest.raises(sqlite3.OperationalError):
            migrate(c, failing)
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "note" not in [r[1] for r in c.execute("PRAGMA table_info(people)")]
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0
        good = store_mod.MIGRATIONS + (("ALTER TABLE people ADD COLUMN note TEXT",),
                                       ("UPDATE people SET note = 'v3'",))
        assert migrate(c, good) == SCHEMA_VERSION + 2
        assert c.execute("SELECT name, note FROM people").fetchall() == [("Alice", "v3")]
        assert migrate(c, good) == SCHEMA_VERSION + 2                                       # already current: no-op
    finally:
        c.close()


def test_not_a_database(tmp_path):
    bad = tmp_path / "store.db"
    bad.write_bytes(b"this is a text file, not SQLite" * 100)
    with pytest.raises(StoreError, match="not a facegate store"):
        Store(bad)


def test_closed_store_says_so(db):
    s = Store(db)
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.people()


def test_replace_templates_swaps_rows_keeps_images_and_audits(db):
    import cv2
    ok, jpg = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))
    with Store(db) as s:
        s.enroll("Alice", _emb(2, 4, 1), "old", "sface", images=[jpg.tobytes()] * 2)
        s.enroll("Bob", _emb(1, 4, 2), "old", "sface")                        # no crop kept
        crops = s.kept_crops("new")
        assert [(c[1], c[2]) for c in crops] == [("Alice", "sface")] * 2
        assert s.replace_templates("new", "sface", {crops[0][0]: np.ones(4, np.float32)}) == 1
        assert s.templates("new").names == ("Alice",)
        np.testing.assert_array_equal(s.templates("new").matrix, np.ones((1, 4), np.float32))
        assert s.stale_templates("new") == {"Alice": 1, "Bob": 1}
        assert len(s.images("Alice")) == 2                                   # images kept, relinked
        assert [c[0] for c in s.kept_crops("new")] == [crops[1][0]]
        assert s.audit(event="reembed")[0].person_name == "Alice"
        with pytest.raises(InvalidTemplateError, match="no longer exists"):   # one transaction: all or nothing
            s.replace_templates("new", "sface", {crops[1][0]: np.ones(4), 999: np.ones(4)})
        assert s.stale_templates("new") == {"Alice": 1, "Bob": 1}
        with pytest.raises(InvalidTemplateError, match="NaN"):
            s.replace_templates("new", "sface", {crops[1][0]: np.full(4, np.nan)})


# -- the shared SQLite helper, the stale-templates warning, atomic file writes ----------------------

NOTES = (("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",),)


class NotesError(StoreError):
    """The error class a caller of open_db chooses for create / WAL failures."""


def test_sqlite_helper_opens_a_private_wal_file_and_migrates(tmp_path):
    from facegate.edge_runtime.sqlite_db import open_db

    path = tmp_path / "notes.db"
    conn = open_db(path, NOTES, what="the notes", synchronous="FULL", busy_timeout_ms=250)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert conn.isolation_level is None
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2                 # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 250
        assert [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("foreign_keys", "secure_delete")] == [1, 1]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()
    with pytest.raises(NotesError, match="cannot create the notes .*check the folder exists"):
        open_db(tmp_path / "missing" / "notes.db", NOTES, what="the notes", synchronous="FULL", error=NotesError)
    with pytest.raises(ValueError, match="synchronous"):
        open_db(path, NOTES, what="the notes", synchronous="OFF")


def test_sqlite_write_transaction_rolls_back_and_translates_a_held_lock(tmp_path):
    from facegate.edge_runtime.sqlite_db import open_db, write_transaction

    path = tmp_path / "notes.db"
    conn = open_db(path, NOTES, what="the notes", synchronous="NORMAL", busy_timeout_ms=50)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        with write_transaction(conn, str(path), "add a note") as c:
            c.execute("INSERT INTO notes (text) VALUES ('kept')")
        with pytest.raises(RuntimeError, match="boom"):
            with write_transaction(conn, str(path), "add a note") as c:
                c.execute("INSERT INTO notes (text) VALUES ('rolled back')")
                raise RuntimeError("boom")
        assert not conn.in_transaction
        other.execute("BEGIN IMMEDIATE")                                  # another process holds the lock
        with pytest.raises(StoreBusyError, match="cannot add a note: .* is locked by another facegate process"):
            with write_transaction(conn, str(path), "add a note") as c:
                c.execute("INSERT INTO notes (text) VALUES ('never')")
        other.execute("ROLLBACK")
        assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]
    finally:
        other.close()
        conn.close()


def test_stale_templates_message_names_everyone_and_the_fix():
    from facegate.edge_runtime.store import stale_templates_message

    text = stale_templates_message({"Carol": 2, "Alice": 1})
    assert text.startswith("2 people have templates from another model bundle and cannot be matched: Alice, Carol;")
    assert "facegate people reembed" in text and "re-enroll" in text
    with pytest.raises(ValueError, match="nothing to warn"):
        stale_templates_message({})


def test_atomic_write_replaces_the_file_and_keeps_the_old_one_when_the_write_fails(tmp_path, monkeypatch):
    from facegate.edge_runtime import files
    from facegate.edge_runtime.files import atomic_write_bytes

    target = tmp_path / "bundle.json"
    assert atomic_write_bytes(target, b"old content") == target
    assert target.read_bytes() == b"old content"

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new content that never lands")
    monkeypatch.undo()
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json"]          # no temporary file left
    atomic_write_bytes(target, memoryview(b"new content"))
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json"]
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "x.bin", b"x")
