"""`facegate backup` / `facegate restore`: a round trip keeps every row, a backup is checked before anything is
replaced, a store in use is never replaced, another bundle's templates need --re-embed or --keep-stale, and a
door killed in the middle of a backup leaves a backup (and a store) that restore and recognise as before."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest
from door_fakes import wait_until

from facegate.edge_runtime.admin.db import AdminDB, admin_db_path
from facegate.edge_runtime.ops import backup as ops_backup
from facegate.edge_runtime.ops.backup import BackupError, read_manifest, unpack_checked
from facegate.edge_runtime.paths import config_path, store_path
from facegate.edge_runtime.store import Store
from facegate.main import main

PASSWORD = "correct horse battery"


def _home(tmp_path, name="home", bundle_id="fake-bundle"):
    """A data home with two people (fake 4-value templates of `bundle_id`), audit rows, an administrator and a
    config file."""
    home = tmp_path / name
    home.mkdir(mode=0o700)
    with Store(store_path(home)) as s:
        s.enroll("Ana", np.ones((2, 4), np.float32), bundle_id, "fake")
        s.enroll("Ben", np.full((1, 4), 2.0, np.float32), bundle_id, "fake")
        s.log("door_open", "Ana", votes=3)
    with AdminDB(admin_db_path(home)) as db:
        db.create_admin("admin", PASSWORD)
    config_path(home).write_text("[decision]\nk = 2\n")
    return home


def _photo_library(home):
    from facegate.edge_runtime.photos.db import PhotoDB, photos_path

    with PhotoDB(photos_path(home)) as db:
        db.put_photo("/photos/a.jpg", 1000, 1, "ab" * 32, "fake-bundle", "ok")
        db.put_photo("/photos/b.jpg", 2000, 2, "cd" * 32, "fake-bundle", "ok")


def _rows(db, table):
    with contextlib.closing(sqlite3.connect(db)) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _integrity(db):
    with contextlib.closing(sqlite3.connect(db)) as c:
        return c.execute("PRAGMA integrity_check").fetchone()[0]


def test_round_trip_keeps_every_row_and_file(tmp_path, capsys):
    home = _home(tmp_path)
    _photo_library(home)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600                     # biometric data: owner only
    with tarfile.open(out) as tar:
        assert tar.getnames() == ["manifest.json", "store.db", "admin.db", "photos.db", "config.toml"]
    m = read_manifest(out)
    assert m.bundle_ids == {"fake-bundle": 3}
    assert m.member("store.db").counts == {"people": 2, "templates": 3, "images": 0, "audit": 3, "erasures": 0}
    assert m.member("admin.db").counts["admins"] == 1
    assert m.member("photos.db").counts == {"photos": 2, "faces": 0, "people": 0}
    assert "store.db" in capsys.readouterr().out

    # a second backup to the same name is refused; a folder gets a dated name
    assert main(["backup", "--home", str(home), str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    folder = tmp_path / "backups"
    folder.mkdir()
    assert main(["backup", "--home", str(home), str(folder)]) == 0
    assert [p.name.startswith("facegate-backup-") and p.suffix == ".tar" for p in folder.iterdir()] == [True]

    fresh = tmp_path / "fresh"
    assert main(["restore", "--home", str(fresh), "--keep-stale", str(out)]) == 0
    assert "Ana, Ben" in capsys.readouterr().err                           # the fake bundle's templates are stale
    for name in ("store.db", "admin.db", "photos.db"):
        assert _integrity(fresh / name) == "ok"
        assert stat.S_IMODE((fresh / name).stat().st_mode) == 0o600
    with Store(store_path(fresh)) as s:
        assert [(p.name, p.templates) for p in s.people()] == [("Ana", 2), ("Ben", 1)]
        assert [a.event for a in s.audit()] == ["door_open", "enroll", "enroll"]
        np.testing.assert_array_equal(s.templates("fake-bundle").matrix[0], np.ones(4, np.float32))
    with AdminDB(admin_db_path(fresh)) as db:
        assert db.authenticate("admin", PASSWORD) is not None
    assert config_path(fresh).read_text() == "[decision]\nk = 2\n"
    assert not [p for p in fresh.iterdir() if p.name.startswith(".restore-")]    # the staging folder is gone


def test_restore_never_overwrites_without_force_and_keeps_what_it_replaced(tmp_path, capsys):
    home = _home(tmp_path)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    with Store(store_path(home)) as s:
        s.enroll("Cy", np.full((1, 4), 3.0, np.float32), "fake-bundle", "fake")   # a change after the backup
    capsys.readouterr()
    assert main(["restore", "--home", str(home), "--keep-stale", str(out)]) == 1
    err = capsys.readouterr().err
    assert "already holds store.db, admin.db, config.toml" in err and "--force" in err
    with Store(store_path(home)) as s:
        assert [p.name for p in s.people()] == ["Ana", "Ben", "Cy"]         # nothing was touched
    assert main(["restore", "--home", str(home), "--keep-stale", "--force", str(out)]) == 0
    with Store(store_path(home)) as s:
        assert [p.name for p in s.people()] == ["Ana", "Ben"]
    with Store(home / "store.db.before-restore") as s:                    # the replaced store, with Cy
        assert [p.name for p in s.people()] == ["Ana", "Ben", "Cy"]
    assert (home / "admin.db.before-restore").exists() and (home / "config.toml.before-restore").exists()


def test_another_bundles_templates_need_re_embed_or_keep_stale(tmp_path, capsys):
    home = _home(tmp_path)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    assert main(["restore", "--home", str(fresh), str(out)]) == 1
    err = capsys.readouterr().err
    assert "3 templates" in err and "fake-bundle" in err and "--re-embed" in err and "--keep-stale" in err
    assert not store_path(fresh).exists()


def test_an_altered_or_truncated_backup_is_refused_before_anything_changes(tmp_path):
    home = _home(tmp_path)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    data = bytearray(out.read_bytes())
    with tarfile.open(out) as tar:
        store_at = tar.getmember("store.db").offset_data
    altered = tmp_path / "altered.tar"
    data[store_at + 5000] ^= 0xFF                                           # one flipped byte inside store.db
    altered.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="store.db .* does not match its manifest"):
        unpack_checked(altered, _empty(tmp_path / "stage1"))
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(out.read_bytes()[: store_at + 100])
    with pytest.raises(BackupError, match="truncated|damaged|incomplete"):
        unpack_checked(truncated, _empty(tmp_path / "stage2"))
    fresh = tmp_path / "fresh"
    assert main(["restore", "--home", str(fresh), "--keep-stale", str(altered)]) == 1
    assert not store_path(fresh).exists() and [p.name for p in fresh.iterdir()] == []


WRITER = textwrap.dedent("""
    import sys, time
    from facegate.edge_runtime.store import Store
    s = Store(sys.argv[1])
    i = 0
    while True:                                   # what the door does to the store: audit rows, last seen
        s.log("door_denied", None, frame=i)
        s.touch_seen(sys.argv[2], time.time())
        i += 1
        if i == 1:
            print("writing", flush=True)
""")


def _writer(store_file, name):
    """A process writing to the store through the Store API as fast as it can (the door's writes)."""
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(store_file), name], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    return p


def test_a_store_open_in_another_process_is_not_replaced(tmp_path, capsys):
    home = _home(tmp_path)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    door = _writer(store_path(home), "Ana")
    try:
        capsys.readouterr()
        assert main(["restore", "--home", str(home), "--force", "--keep-stale", str(out)]) == 1
        assert "open in another facegate process" in capsys.readouterr().err
    finally:
        door.kill()
        door.wait()
    assert main(["restore", "--home", str(home), "--force", "--keep-stale", str(out)]) == 0


def _enroll_powell(home, powell):
    """Colin Powell enrolled from 3 photos with the shipped bundle (crops kept); the bundle."""
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.enrollment import check_photos, enroll_checked, open_bundle
    from facegate.edge_runtime.recognizer import Recognizer

    bundle = open_bundle(Config())
    with Store(store_path(home)) as s:
        results = check_photos(Recognizer(bundle, Config()), [(str(p), p) for p in powell[:3]])
        assert enroll_checked(s, bundle, "Colin Powell", results).person.templates == 3
    return bundle


def _recognised(home, bundle, photo) -> str | None:
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.imageio import load_image
    from facegate.edge_runtime.recognizer import Recognizer

    with Store(store_path(home)) as s:
        face = Recognizer(bundle, Config(), s.templates(bundle.id, bundle.metric)).single_face(load_image(photo))
    return face.match.name


def test_the_door_killed_mid_backup_leaves_backups_that_restore_and_recognise(tmp_path, powell, monkeypatch,
                                                                                capsys):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    bundle = _enroll_powell(home, powell)
    with AdminDB(admin_db_path(home)) as db:
        db.create_admin("admin", PASSWORD)
    door = _writer(store_path(home), "Colin Powell")
    assert wait_until(lambda: _rows(store_path(home), "audit") > 50, timeout=20)

    # SIGKILL the door between the store's copy and the admin database's, while it is writing
    real_copy, killed = ops_backup.copy_database, []

    def copy_then_kill(src, dst):
        real_copy(src, dst)
        if not killed:
            door.send_signal(signal.SIGKILL)
            door.wait()
            killed.append(door.returncode)
    monkeypatch.setattr(ops_backup, "copy_database", copy_then_kill)
    mid = tmp_path / "mid.tar"
    assert main(["backup", "--home", str(home), str(mid)]) == 0
    assert killed == [-signal.SIGKILL]
    monkeypatch.undo()
    # after the kill the store has a write-ahead log no one checkpointed: a backup now holds its last commits
    after = tmp_path / "after.tar"
    assert main(["backup", "--home", str(home), str(after)]) == 0
    written = _rows(store_path(home), "audit")
    assert read_manifest(after).member("store.db").counts["audit"] == written
    assert 50 < read_manifest(mid).member("store.db").counts["audit"] <= written

    for name, backup in (("from-mid", mid), ("from-after", after)):
        fresh = tmp_path / name
        assert main(["restore", "--home", str(fresh), str(backup)]) == 0      # templates of the bundle in use
        m = read_manifest(backup)
        assert m.bundle_ids == {bundle.id: 3}
        for member in ("store.db", "admin.db"):
            assert _integrity(fresh / member) == "ok"
            assert {t: _rows(fresh / member, t) for t in m.member(member).counts} == m.member(member).counts
        assert _recognised(fresh, bundle, powell[5]) == "Colin Powell"       # a photo that was not enrolled
    capsys.readouterr()


def test_re_embed_moves_restored_templates_to_the_configured_bundle(tmp_path, powell, capsys):
    from facegate.edge_runtime.bundle import bundle_id, default_bundle_dir
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.enrollment import open_bundle

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    old = _enroll_powell(home, powell)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    # a newer bundle with the same embedders (another fusion threshold: another id)
    newer = tmp_path / "newer-bundle"
    import shutil
    shutil.copytree(default_bundle_dir(), newer)
    raw = json.loads((newer / "bundle.json").read_text())
    raw["fusion"]["threshold"] = raw["fusion"]["threshold"] + 0.01
    raw["id"] = bundle_id(raw)
    (newer / "bundle.json").write_text(json.dumps(raw, indent=1))
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    assert main(["restore", "--home", str(fresh), "--bundle", str(newer), str(out)]) == 1
    assert old.id in capsys.readouterr().err
    assert main(["restore", "--home", str(fresh), "--bundle", str(newer), "--re-embed", str(out)]) == 0
    assert "Colin Powell: 3 templates re-embedded" in capsys.readouterr().out
    bundle = open_bundle(Config(), newer)
    with Store(store_path(fresh)) as s:
        assert s.stale_templates(bundle.id) == {} and s.person("Colin Powell").templates == 3
    assert _recognised(fresh, bundle, powell[5]) == "Colin Powell"
    assert os.stat(fresh).st_mode & 0o077 == 0


def _empty(folder):
    folder.mkdir()
    return folder


def test_a_backup_from_a_newer_facegate_is_refused(tmp_path, capsys):
    home = _home(tmp_path)
    with contextlib.closing(sqlite3.connect(store_path(home))) as c:
        c.execute("PRAGMA user_version = 99")                               # a schema this facegate does not know
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    assert main(["restore", "--home", str(fresh), "--keep-stale", str(out)]) == 1
    assert "store.db (schema 99, this facegate reads up to" in capsys.readouterr().err
    assert not store_path(fresh).exists()


def _audit_count(db, event) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        return c.execute("SELECT count(*) FROM audit WHERE event = ?", (event,)).fetchone()[0]


def _looped(src, dst, times: int):
    """`src` played `times` over as one MJPG video at its frame rate (a fake camera that outlasts the test)."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    cap.release()
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for _ in range(times):
        for f in frames:
            out.write(f)
    out.release()
    return dst


def test_a_running_door_blocks_restore_and_killed_mid_backup_restores(tmp_path, data_dir, monkeypatch, capsys):
    """The real `facegate run` on a video played at its frame rate (the fake camera), with its enrolled person."""
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.enrollment import open_bundle

    clips = data_dir / "videos/face_recognition"
    home = tmp_path / "home"
    assert main(["enroll", "--home", str(home), "--name", "Lin-Manuel Miranda", str(clips / "lin-manuel-miranda.png")]) == 0
    door = subprocess.Popen([sys.executable, "-m", "facegate", "run", "--home", str(home), "--realtime",
                             "--source", str(_looped(clips / "short_hamilton_clip.mp4", tmp_path / "cam.avi", 3)),
                             "--events", str(tmp_path / "ev")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _audit_count(store_path(home), "door_open") > 0, timeout=60, step=0.1)
        early = tmp_path / "early.tar"
        assert main(["backup", "--home", str(home), str(early)]) == 0             # while the door runs
        capsys.readouterr()
        assert main(["restore", "--home", str(home), "--force", str(early)]) == 1  # never under a running door
        assert "open in another facegate process" in capsys.readouterr().err

        real_copy = ops_backup.copy_database

        def copy_then_kill(src, dst):
            real_copy(src, dst)
            if door.poll() is None:
                door.send_signal(signal.SIGKILL)
                door.wait()
        monkeypatch.setattr(ops_backup, "copy_database", copy_then_kill)
        mid = tmp_path / "mid.tar"
        assert main(["backup", "--home", str(home), str(mid)]) == 0
    finally:
        if door.poll() is None:
            door.kill()
        door.wait()
    monkeypatch.undo()
    assert door.returncode == -signal.SIGKILL                                    # killed while it was running
    bundle = open_bundle(Config())
    for name, backup in (("from-early", early), ("from-mid", mid)):
        fresh = tmp_path / name
        assert main(["restore", "--home", str(fresh), str(backup)]) == 0
        m = read_manifest(backup)
        assert _integrity(fresh / "store.db") == "ok"
        assert {t: _rows(fresh / "store.db", t) for t in m.member("store.db").counts} == m.member("store.db").counts
        assert _audit_count(fresh / "store.db", "door_open") >= 1
        assert _recognised(fresh, bundle, clips / "lin-manuel-miranda.png") == "Lin-Manuel Miranda"
    assert main(["restore", "--home", str(home), "--force", str(mid)]) == 0         # the killed door holds nothing


def test_a_backup_into_a_folder_deletes_the_backups_older_than_keep_backups_days(tmp_path, capsys):
    import time

    from facegate.edge_runtime.ops.backup import default_backup_name

    home = _home(tmp_path)
    config_path(home).write_text("[privacy]\nkeep_backups_days = 10\n")
    folder = tmp_path / "backups"
    folder.mkdir()
    now = time.time()
    old, young = (folder / default_backup_name(now - d * 86400) for d in (10.5, 9.5))
    other = [folder / "facegate-backup-mine.tar", folder / "notes.txt"]
    for p in [old, young, *other]:
        p.write_bytes(b"x")
    os.utime(young, (now - 30 * 86400,) * 2)                 # the name's time counts, not the file's mtime
    assert main(["backup", "--home", str(home), str(folder)]) == 0
    assert f"deleted 1 backup older than 10 days ([privacy] keep_backups_days): {old.name}" in capsys.readouterr().out
    left = sorted(p.name for p in folder.iterdir())
    assert old.name not in left and {young.name, *(p.name for p in other)} <= set(left) and len(left) == 4
    assert main(["backup", "--home", str(home), str(tmp_path / "one-file.tar")]) == 0   # a file: no retention
    assert "deleted" not in capsys.readouterr().out


def test_a_damaged_current_store_needs_without_current_ledger(tmp_path, capsys, caplog):
    """The current store's erasure ledger is re-applied by a restore; a store too damaged to read it stops the
    restore (nothing changed) until the operator says --without-current-ledger."""
    home = _home(tmp_path)
    out = tmp_path / "b.tar"
    assert main(["backup", "--home", str(home), str(out)]) == 0
    damaged = b"not a database " * 300
    store_path(home).write_bytes(damaged)
    capsys.readouterr()
    assert main(["restore", "--home", str(home), "--force", "--keep-stale", str(out)]) == 1
    assert "--without-current-ledger" in capsys.readouterr().err
    assert store_path(home).read_bytes() == damaged                          # nothing was touched
    assert main(["restore", "--home", str(home), "--force", "--keep-stale", "--without-current-ledger", str(out)]) == 0
    with Store(store_path(home)) as s:
        assert [p.name for p in s.people()] == ["Ana", "Ben"]
    assert (home / "store.db.before-restore").read_bytes() == damaged
    with Store(store_path(home)) as s:           # a later delete stands, and says the kept copy cannot be reached
        with caplog.at_level("WARNING", logger="facegate.edge_runtime.store"):
            s.delete("Ben")
        assert [p.name for p in s.people()] == ["Ana"]
    assert "store.db.before-restore (the store a restore replaced) cannot be opened" in caplog.text
