"""The photo scan on real LFW photos: incremental, resumable, removed photos dropped, bad input survived."""
from __future__ import annotations

import os
import shutil

import pytest
from test_photos_helpers import copy_photos, recognizer, scan_and_sort

from facegate.edge_runtime.photos.db import PhotoDB
from facegate.edge_runtime.photos.lock import ScanBusyError, scan_lock
from facegate.edge_runtime.photos.scan import scan


@pytest.fixture
def lib(data_dir, tmp_path):
    """(photo folder with 2 photos each of 2 LFW people, open PhotoDB)."""
    folder = tmp_path / "photos"
    copy_photos(data_dir, folder, people=("Colin_Powell", "Hugo_Chavez"), numbers=range(1, 3))
    db = PhotoDB(tmp_path / "photos.db")
    yield folder, db
    db.close()


def face_rows(db):
    return db.read("SELECT ph.path, f.idx, f.embedding FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                   "ORDER BY ph.path, f.idx")


def test_second_scan_reads_nothing_and_touched_file_is_hashed_not_read(lib):
    folder, db = lib
    first = scan(db, recognizer(), [folder])
    assert (first.found, first.read) == (4, 4) and first.faces >= 4
    before = face_rows(db)
    again = scan(db, recognizer(), [folder])
    assert (again.read, again.unchanged) == (0, 4)
    p = sorted(folder.iterdir())[0]
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))     # new mtime, same content
    touched = scan(db, recognizer(), [folder])
    assert (touched.read, touched.unchanged) == (0, 4)
    assert face_rows(db) == before


def test_changed_file_is_read_again(lib, data_dir):
    folder, db = lib
    scan(db, recognizer(), [folder])
    target = folder / "Colin_Powell_0001.jpg"
    old = db.read("SELECT f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path = ?",
                  (str(target),))
    shutil.copy(data_dir / "lfw/Serena_Williams/Serena_Williams_0001.jpg", target)
    r = scan(db, recognizer(), [folder])
    assert (r.read, r.unchanged) == (1, 3)
    new = db.read("SELECT f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path = ?",
                  (str(target),))
    assert new and new != old


def test_scan_stopped_midway_resumes_without_loss_or_doubles(lib, tmp_path):
    folder, db = lib
    clean = PhotoDB(tmp_path / "clean.db")
    scan(clean, recognizer(), [folder])

    def stop_after_two(done, total, path):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(db, recognizer(), [folder], stop_after_two)
    assert db.read("SELECT count(*) FROM photos")[0][0] == 2
    r = scan(db, recognizer(), [folder])
    assert (r.read, r.unchanged) == (2, 2)
    assert face_rows(db) == face_rows(clean)
    clean.close()


def test_removed_photos_are_dropped_with_their_faces(lib):
    folder, db = lib
    scan_and_sort(db, [folder])
    gone = folder / "Hugo_Chavez_0002.jpg"
    gone.unlink()
    r = scan(db, recognizer(), [folder])
    assert r.removed == 1
    assert not db.read("SELECT 1 FROM photos WHERE path = ?", (str(gone),))
    assert db.read("SELECT count(*) FROM faces WHERE photo_id NOT IN (SELECT id FROM photos)")[0][0] == 0


def test_bad_files_are_recorded_and_not_read_again(lib, data_dir):
    folder, db = lib
    (folder / "junk.jpg").write_bytes(b"not an image at all")
    (folder / "empty.png").write_bytes(b"")
    good = (data_dir / "lfw/Colin_Powell/Colin_Powell_0005.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("ignored: not a photo suffix")
    r = scan(db, recognizer(), [folder])
    assert r.read == 4 and {os.path.basename(p) for p, _ in r.problems} == {"junk.jpg", "empty.png", "cut.jpg"}
    rows = dict(db.read("SELECT path, reason FROM photos WHERE status = 'error'"))
    assert set(map(os.path.basename, rows)) == {"junk.jpg", "empty.png", "cut.jpg"}
    assert all(rows.values())
    again = scan(db, recognizer(), [folder])
    assert (again.read, again.unchanged, again.problems) == (0, 7, [])


def test_symlink_loop_unreadable_folder_and_missing_root_do_not_stop_the_scan(lib, tmp_path):
    folder, db = lib
    (folder / "loop").symlink_to(folder)
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        r = scan(db, recognizer(), [folder, tmp_path / "missing"])
    finally:
        locked.chmod(0o700)
    assert r.read == 4
    reasons = " ".join(reason for _, reason in r.problems)
    assert "symlink loop" in reasons and "no such file" in reasons
    if os.geteuid() != 0:
        assert "ermission denied" in reasons


def test_photo_without_faces_is_recorded(lib, tmp_path):
    import cv2
    import numpy as np

    folder, db = lib
    cv2.imwrite(str(folder / "wall.png"), np.full((200, 300, 3), 127, np.uint8))
    scan(db, recognizer(), [folder])
    assert db.read("SELECT status FROM photos WHERE path = ?", (str(folder / "wall.png"),)) == [("no_faces",)]


def test_second_scan_of_the_same_library_is_refused(lib):
    folder, db = lib
    with scan_lock(db.path):
        with pytest.raises(ScanBusyError, match="another `facegate photos scan`"):
            scan(db, recognizer(), [folder])
    assert scan(db, recognizer(), [folder]).read == 4
