"""Erasure in the photo library: a door person's names when the door deletes them, and one of the library's
own people when the user asks (`facegate photos forget-person`).

Both write one transaction with SQLite secure_delete on (freed bytes are zeroed; PhotoDB opens that way),
then checkpoint and truncate the WAL, so the erased bytes are in neither file. The photos themselves (the
user's files) are never touched.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..paths import BEFORE_RESTORE
from ..sqlite_db import StoreError
from .db import PhotoDB, PhotoLibraryError, forgotten_boxes, photos_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Forgotten:
    """What `forget_person` removed: the person's id, faces (rows with their embeddings and thumbnails) and the
    photos they were on (which stay in the library, as files and rows)."""

    person_id: int
    faces: int
    photos: int


def erase_door_names(home: Path, names: Sequence[str]) -> int:
    """Take `names` (a deleted door person's names, now and before renames) off every person of the data home's
    photo library that was named after the door (name_source 'door'): they become unnamed; their faces stay.

    A name the user gave (name_source 'user') is the user's and stays, also when it equals a deleted door
    name. The copy a forced restore kept (photos.db.before-restore) is treated the same. Never creates a
    photos.db. Returns the people unnamed.
    """
    names, n = sorted(set(names)), 0
    path = photos_path(home)
    for p in (path, path.with_name(path.name + BEFORE_RESTORE)):
        if not names or not p.is_file():
            continue
        try:
            with PhotoDB(p) as db:
                with db.write("erase a deleted person's names") as c:
                    n += c.execute(f"UPDATE people SET name = NULL, name_source = NULL WHERE name_source = 'door' "
                                   f"AND name IN ({','.join('?' * len(names))})", names).rowcount
                _truncate(db)
        except StoreError as e:
            if p == path:
                raise
            _kept_unreadable(p, e)
    return n


def forget_person(db: PhotoDB, person_id: int, clock=time.time) -> Forgotten:
    """Erase one person of the photo library: their face rows (embeddings, thumbnails, boxes, landmarks) and
    their person row (name, user's or door's), in one transaction; the WAL is truncated after.

    Each face is remembered only as its photo's content hash and its box (`forgotten_faces`), so a later
    scan of the same content (also after a copy or a move, or with another model bundle) does not record
    it again: the person is not re-clustered back. The photos stay. The same faces are forgotten in the
    copy a forced restore kept (photos.db.before-restore), when there is one. PhotoLibraryError for an unknown id.
    """
    with db.write("forget a person") as c:
        if c.execute("SELECT 1 FROM people WHERE id = ?", (int(person_id),)).fetchone() is None:
            raise PhotoLibraryError(f"no person {person_id} in the photo library; see `facegate photos people`")
        faces = c.execute("SELECT f.id, ph.sha256, f.box, f.photo_id FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                          "WHERE f.person_id = ?", (int(person_id),)).fetchall()
        now = clock()
        c.executemany("INSERT INTO forgotten_faces (sha256, box, forgotten_at) VALUES (?, ?, ?)",
                      [(sha, box, now) for _, sha, box, _ in faces if sha])
        c.executemany("DELETE FROM faces WHERE id = ?", [(fid,) for fid, _, _, _ in faces])
        c.execute("DELETE FROM people WHERE id = ?", (int(person_id),))
    _truncate(db)
    kept = db.path.with_name(db.path.name + BEFORE_RESTORE)     # the library a forced restore replaced
    if kept.is_file() and faces:
        try:
            with PhotoDB(kept) as old:
                reapply_forgotten(old, [(sha, bytes(box), now) for _, sha, box, _ in faces if sha])
        except StoreError as e:
            _kept_unreadable(kept, e)
    return Forgotten(int(person_id), len(faces), len({r[3] for r in faces}))


def forgotten_marks(db: PhotoDB) -> list[tuple[str, bytes, float]]:
    """(photo content sha256, face box as float32 (4,) bytes, when) of every face the library was told to forget."""
    return [(sha, bytes(box), at) for sha, box, at in db.read("SELECT sha256, box, forgotten_at FROM forgotten_faces "
                                                              "ORDER BY id")]


def reapply_forgotten(db: PhotoDB, marks: list[tuple[str, bytes, float]]) -> tuple[int, int]:
    """Forget again, in a library restored from an older backup, the faces `marks` (another library's
    `forgotten_marks`) name: such faces are deleted, people left with no face by that are deleted (names
    included), and the marks are added (one transaction, then the WAL truncated). Returns (faces, people)."""
    with db.write("forget faces again") as c:
        have = set(c.execute("SELECT sha256, box FROM forgotten_faces").fetchall())
        new = [(sha, box, at) for sha, box, at in marks if (sha, box) not in have]
        c.executemany("INSERT INTO forgotten_faces (sha256, box, forgotten_at) VALUES (?, ?, ?)", new)
        faces, people = [], set()
        for sha in sorted({m[0] for m in marks}):
            gone = [b for (b,) in c.execute("SELECT box FROM forgotten_faces WHERE sha256 = ?", (sha,))]
            rows = c.execute("SELECT f.id, f.box, f.person_id FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                             "WHERE ph.sha256 = ?", (sha,)).fetchall()
            for (fid, _, pid), hit in zip(rows, forgotten_boxes([bytes(r[1]) for r in rows], gone)):
                if hit:
                    faces.append(fid)
                    people.add(pid)
        c.executemany("DELETE FROM faces WHERE id = ?", [(f,) for f in faces])
        emptied = [p for p in people if p is not None and c.execute(
            "SELECT 1 FROM faces WHERE person_id = ? LIMIT 1", (p,)).fetchone() is None]
        c.executemany("DELETE FROM people WHERE id = ?", [(p,) for p in emptied])
    if faces:
        _truncate(db)
    return len(faces), len(emptied)


def remember_faces(db: PhotoDB, folder: str) -> int:
    """Undo `forget_person` for the photos at or below `folder` (an absolute path): their forgotten-face marks
    are dropped and the photos are read again by the next scan (their faces then sorted like new ones).
    Returns the marks dropped."""
    ids = db.photos_under(folder)
    if not ids:
        return 0
    n = 0
    with db.write("remember forgotten faces") as c:
        for pid in ids.values():
            sha = c.execute("SELECT sha256 FROM photos WHERE id = ?", (pid,)).fetchone()[0]
            n += c.execute("DELETE FROM forgotten_faces WHERE sha256 = ?", (sha,)).rowcount
            c.execute("UPDATE photos SET bundle_id = '' WHERE id = ?", (pid,))      # read again by the next scan
    return n


def _kept_unreadable(path: Path, e: Exception) -> None:
    """A damaged library a restore replaced: said loudly; the erasure in the live library stands."""
    log.warning("%s (the photo library a restore replaced) cannot be opened (%s), so what was just erased may "
                "still be in it: delete that file", path, e)


def _truncate(db: PhotoDB) -> None:
    if not db.checkpoint():
        log.warning("photo library %s: another process is reading, so its write-ahead log could not be truncated "
                    "yet; SQLite will finish it when that process closes the library", db.path)
