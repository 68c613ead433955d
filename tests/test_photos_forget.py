"""`facegate photos forget-person`: one person of the photo library erased (face embeddings, thumbnails, name:
no byte of them left in photos.db or its WAL), the photos untouched, the other people intact, and the
forgotten faces not found again by later scans of the same content until `photos unforget`."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np

from facegate.edge_runtime.photos.db import FaceRecord, PhotoDB, photos_path
from facegate.edge_runtime.photos.organize import organize
from facegate.edge_runtime.photos.people import list_people, name_person
from facegate.main import main

DIM = 32


def _face(vec: np.ndarray, thumb: bytes, x: float = 10.0) -> FaceRecord:
    return FaceRecord(np.array([x, 10, x + 50, 70], np.float32), np.zeros((5, 2), np.float32), 0.99, (),
                      vec.astype(np.float32), thumb)


def _library(home, folder):
    """A photo library of two people, 3 photos each (real files, one face each): person A's embeddings are near
    one direction, B's near another. Returns ({person: [embedding bytes]}, {person: [thumb bytes]}, files)."""
    rng = np.random.default_rng(0)
    axes = {"A": np.eye(DIM)[0], "B": np.eye(DIM)[1]}
    emb, thumbs, files = {"A": [], "B": []}, {"A": [], "B": []}, []
    folder.mkdir()
    with PhotoDB(photos_path(home)) as db:
        for who in ("A", "B"):
            for i in range(3):
                v = (axes[who] + 0.05 * rng.standard_normal(DIM)).astype("<f4")
                thumb = b"\xff\xd8\xff" + f"THUMB-{who}-{i}|".encode() * 40
                f = folder / f"{who}{i}.jpg"
                f.write_bytes(f"photo {who}{i}".encode() * 100)
                files.append(f)
                sha = hashlib.sha256(f.read_bytes()).hexdigest()
                db.put_photo(str(f), f.stat().st_size, f.stat().st_mtime_ns, sha, "b", "ok", "", [_face(v, thumb)])
                emb[who].append(v.tobytes())
                thumbs[who].append(thumb)
        organize(db, "b", "cosine", 0.5)
        people = {p.faces: p.id for p in list_people(db)}
        assert len(list_people(db)) == 2 and set(people) == {3}
        ids = {who: db.read("SELECT person_id FROM faces WHERE thumb = ?", (thumbs[who][0],))[0][0] for who in "AB"}
        name_person(db, ids["A"], "Ann Forget-Me")
    return ids, emb, thumbs, files


def _found(home, needles):
    return [(p.name, n[:12]) for p in home.iterdir() if p.is_file() for n in needles if n in p.read_bytes()]


def test_forget_person_erases_faces_embeddings_thumbnails_and_name(tmp_path, capsys):
    home, folder = tmp_path / "home", tmp_path / "photos"
    home.mkdir()
    ids, emb, thumbs, files = _library(home, folder)
    photo_bytes = {f: f.read_bytes() for f in files}
    gone = [*emb["A"], *thumbs["A"], b"Ann Forget-Me"]
    assert len(_found(home, gone)) >= 7                                 # all there before
    reader = PhotoDB(photos_path(home))        # another connection open (the admin page): the WAL file stays
    try:
        assert main(["photos", "forget-person", "ann forget-me", "--home", str(home)]) == 2   # needs --yes
        assert "--yes" in capsys.readouterr().err
        assert main(["photos", "forget-person", "ann forget-me", "--yes", "--home", str(home)]) == 0
        assert "3 faces on 3 photos erased" in capsys.readouterr().out
        assert (home / "photos.db-wal").exists()
        assert _found(home, gone) == []                                  # photos.db, -wal and -shm
        assert [(p.id, p.faces) for p in list_people(reader)] == [(ids["B"], 3)]
        kept = reader.read("SELECT embedding, thumb FROM faces ORDER BY id")
        assert [bytes(e) for e, _ in kept] == emb["B"] and [bytes(t) for _, t in kept] == thumbs["B"]
        assert reader.read("SELECT count(*) FROM photos")[0][0] == 6   # the photos stay in the library
    finally:
        reader.close()
    assert {f: f.read_bytes() for f in files} == photo_bytes           # and as files, untouched
    assert main(["photos", "forget-person", "Ann Forget-Me", "--yes", "--home", str(home)]) == 1
    assert "no person 'Ann Forget-Me'" in capsys.readouterr().err


def test_forgotten_faces_stay_forgotten_when_the_photo_is_read_again(tmp_path, capsys):
    home, folder = tmp_path / "home", tmp_path / "photos"
    home.mkdir()
    ids, emb, thumbs, files = _library(home, folder)
    assert main(["photos", "forget-person", str(ids["A"]), "--yes", "--home", str(home)]) == 0
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copy(files[0], copy / "copy-of-A0.jpg")                      # the same content under a new path
    again = FaceRecord(np.array([12, 11, 61, 72], np.float32), np.zeros((5, 2), np.float32), 0.98, (),
                       np.frombuffer(emb["A"][0], "<f4"), thumbs["A"][0])     # found again, a box moved a little
    with PhotoDB(photos_path(home)) as db:
        f = copy / "copy-of-A0.jpg"
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        db.put_photo(str(f), f.stat().st_size, f.stat().st_mtime_ns, sha, "b", "ok", "", [again])
        other = np.frombuffer(emb["B"][0], "<f4")       # another face on the same content is recorded
        db.put_photo(str(files[0]), 1, 1, sha, "b2", "ok", "", [again, _face(other, b"\xff\xd8\xffX", x=200.0)])
        assert db.read("SELECT count(*) FROM faces WHERE thumb = ?", (thumbs["A"][0],))[0][0] == 0
        assert db.read("SELECT count(*) FROM faces WHERE thumb = ?", (b"\xff\xd8\xffX",))[0][0] == 1
        organize(db, "b", "cosine", 0.5)
        assert [p.faces for p in list_people(db)] == [3]               # nobody came back
    assert main(["photos", "unforget", str(copy), "--home", str(home)]) == 0
    assert "1 forgotten faces" in capsys.readouterr().out
    with PhotoDB(photos_path(home)) as db:
        assert db.photo(str(copy / "copy-of-A0.jpg")).bundle_id == ""  # read again by the next scan
        f = copy / "copy-of-A0.jpg"
        db.put_photo(str(f), f.stat().st_size, f.stat().st_mtime_ns, sha, "b", "ok", "", [again])
        assert db.read("SELECT count(*) FROM faces WHERE thumb = ?", (thumbs["A"][0],))[0][0] == 1


def test_a_real_scan_does_not_find_a_forgotten_person_again(data_dir, tmp_path, capsys):
    from test_photos_helpers import copy_photos, scan_and_sort

    folder, home = tmp_path / "photos", tmp_path / "home"
    home.mkdir()
    copy_photos(data_dir, folder, people=("Colin_Powell", "Serena_Williams"), numbers=range(1, 4))
    with PhotoDB(photos_path(home)) as db:
        scan_and_sort(db, [folder])
        people = list_people(db)
    assert sorted(p.faces for p in people) == [3, 3]
    powell = next(p.id for p in people if any("Colin_Powell" in path for path in _paths(home, p.id)))
    assert main(["photos", "forget-person", str(powell), "--yes", "--home", str(home)]) == 0
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(folder / "Colin_Powell_0001.jpg", extra / "powell-again.jpg")   # same content, new name
    with PhotoDB(photos_path(home)) as db:
        report = scan_and_sort(db, [folder, extra])
        assert report.read == 1                                          # the copy was read: its face is dropped
        people = list_people(db)
        assert [p.faces for p in people] == [3] and powell not in [p.id for p in people]
        assert db.read("SELECT count(*) FROM faces")[0][0] == 3


def _paths(home, person_id):
    with PhotoDB(photos_path(home)) as db:
        return [r[0] for r in db.read("SELECT ph.path FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                                      "WHERE f.person_id = ?", (person_id,))]



def _home_with_library(tmp_path):
    """A data home with an empty store and the two-person photo library: (home, ids, embeddings, thumbnails)."""
    from facegate.edge_runtime.store import Store

    home = tmp_path / "home"
    home.mkdir()
    Store(home / "store.db").close()
    ids, emb, thumbs, _ = _library(home, tmp_path / "photos")
    return home, ids, emb, thumbs


def test_a_restored_older_backup_forgets_the_person_again(tmp_path, capsys):
    home, ids, emb, thumbs = _home_with_library(tmp_path)
    assert main(["backup", str(tmp_path / "before.tar"), "--home", str(home)]) == 0
    assert main(["photos", "forget-person", str(ids["A"]), "--yes", "--home", str(home)]) == 0
    assert main(["restore", str(tmp_path / "before.tar"), "--force", "--home", str(home)]) == 0
    assert "forgot 3 photo-library faces again" in capsys.readouterr().out
    assert _found(home, [*emb["A"], *thumbs["A"], b"Ann Forget-Me"]) == []
    with PhotoDB(photos_path(home)) as db:
        assert [(p.id, p.faces) for p in list_people(db)] == [(ids["B"], 3)]
        assert db.read("SELECT count(*) FROM forgotten_faces")[0][0] == 3     # and stays forgotten


def test_forget_person_reaches_the_library_a_forced_restore_kept(tmp_path, capsys):
    home, ids, emb, thumbs = _home_with_library(tmp_path)
    assert main(["backup", str(tmp_path / "b.tar"), "--home", str(home)]) == 0
    assert main(["restore", str(tmp_path / "b.tar"), "--force", "--home", str(home)]) == 0
    assert (home / "photos.db.before-restore").is_file()
    assert main(["photos", "forget-person", str(ids["A"]), "--yes", "--home", str(home)]) == 0
    assert _found(home, [*emb["A"], *thumbs["A"], b"Ann Forget-Me"]) == []
    with PhotoDB(home / "photos.db.before-restore") as db:
        assert [(p.id, p.faces) for p in list_people(db)] == [(ids["B"], 3)]
