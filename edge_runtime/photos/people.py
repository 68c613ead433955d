"""What the user sees and changes: the people list, one person, naming, merging, moving a face.

A person the user names, merges or moves a face into or out of is "touched": `recluster` leaves it
whole, and a face the user moved is pinned where it was put. Naming a photo person never enrolls
anyone at the door.
"""
from __future__ import annotations

from dataclasses import dataclass

from .db import PhotoDB, PhotoLibraryError

UNSORTED = "unsorted"
MAX_NAME = 100


@dataclass(frozen=True)
class PersonSummary:
    """id, name (None = unnamed), name_source ('user', 'door' or None), faces and distinct photos."""

    id: int
    name: str | None
    name_source: str | None
    faces: int
    photos: int

    @property
    def label(self) -> str:
        """The name, or 'person <id>' for an unnamed person."""
        return self.name or f"person {self.id}"

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "name_source": self.name_source, "faces": self.faces,
                "photos": self.photos}


def list_people(db: PhotoDB) -> list[PersonSummary]:
    """Every person with at least one face, most faces first (ties: lower id first)."""
    rows = db.read("SELECT p.id, p.name, p.name_source, count(f.id), count(DISTINCT f.photo_id) FROM people p "
                   "JOIN faces f ON f.person_id = p.id GROUP BY p.id ORDER BY count(f.id) DESC, p.id")
    return [PersonSummary(*r) for r in rows]


def find_person(db: PhotoDB, ref: str) -> int:
    """A person id from `ref`: an id number or a (case-insensitive) name. Raises PhotoLibraryError."""
    ref = ref.strip()
    if ref.isdigit() and db.read("SELECT 1 FROM people WHERE id = ?", (int(ref),)):
        return int(ref)
    rows = db.read("SELECT id FROM people WHERE lower(name) = lower(?) ORDER BY id", (ref,))
    if len(rows) == 1:
        return rows[0][0]
    if len(rows) > 1:
        raise PhotoLibraryError(f"{len(rows)} people are called {ref!r} (ids {', '.join(str(r[0]) for r in rows)}); "
                                f"use the id, or merge them with `facegate photos merge`")
    raise PhotoLibraryError(f"no person {ref!r} in the photo library; see `facegate photos people`")


def person_faces(db: PhotoDB, person_id: int) -> list[tuple[int, str, tuple[float, ...]]]:
    """(face id, photo path, box (x1, y1, x2, y2)) of each face of a person, by photo path."""
    import numpy as np

    rows = db.read("SELECT f.id, ph.path, f.box FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                   "WHERE f.person_id = ? ORDER BY ph.path, f.idx", (person_id,))
    return [(fid, path, tuple(round(float(v), 1) for v in np.frombuffer(box, "<f4"))) for fid, path, box in rows]


def name_person(db: PhotoDB, person_id: int, name: str) -> None:
    """Give a person a name (the user's; door names never overwrite it). Enrolls no one at the door."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME or name.lower() == UNSORTED or name.isdigit():
        raise PhotoLibraryError(f"a name must be 1 to {MAX_NAME} characters, not only digits and not "
                                f"{UNSORTED!r}; got {name!r}")
    with db.write("name a person") as c:
        c.execute("UPDATE people SET name = ?, name_source = 'user', user_touched = 1 WHERE id = ?", (name, person_id))


def merge_people(db: PhotoDB, keep: int, other: int) -> int:
    """Move every face of `other` into `keep` and remove `other` (its name is kept only if `keep` has none).

    Two faces of one photo may end up in one person this way: the user decides. Returns faces moved.
    """
    if keep == other:
        raise PhotoLibraryError("cannot merge a person with themself")
    with db.write("merge people") as c:
        moved = c.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (keep, other)).rowcount
        c.execute("UPDATE people SET user_touched = 1, name = coalesce(name, (SELECT name FROM people WHERE id = ?)), "
                  "name_source = CASE WHEN name IS NULL THEN (SELECT name_source FROM people WHERE id = ?) "
                  "ELSE name_source END WHERE id = ?", (other, other, keep))
        c.execute("DELETE FROM people WHERE id = ?", (other,))
    return moved


def move_face(db: PhotoDB, face_id: int, target: str) -> int | None:
    """Put one face into a person (`target` = id or name) or into "unsorted"; it stays there through every
    re-cluster. Returns the person id, or None for unsorted."""
    rows = db.read("SELECT person_id FROM faces WHERE id = ?", (face_id,))
    if not rows:
        raise PhotoLibraryError(f"no face {face_id}; face ids are listed by `facegate photos show PERSON`")
    dest = None if target.strip().lower() == UNSORTED else find_person(db, target)
    with db.write("move a face") as c:
        c.execute("UPDATE faces SET person_id = ?, pinned = 1 WHERE id = ?", (dest, face_id))
        c.execute("UPDATE people SET user_touched = 1 WHERE id IN (?, ?)", (rows[0][0], dest))
    return dest


def forget_folder(db: PhotoDB, folder: str) -> int:
    """Drop every photo at or below `folder` (an absolute path) from the library; files are not touched."""
    return db.drop_photos(list(db.photos_under(folder).values()))


# -- read-only views for the admin page --------------------------------------------------------
@dataclass(frozen=True)
class FaceOnPhoto:
    """One face drawn on a photo: its id, box (x1, y1, x2, y2) in photo pixels, person id (None = unsorted)
    and that person's label ('' when unsorted)."""

    id: int
    box: tuple[float, float, float, float]
    person_id: int | None
    label: str


@dataclass(frozen=True)
class PhotoView:
    """A photo of a person with every face on it; width and height as shown (EXIF orientation applied)."""

    id: int
    name: str
    width: int
    height: int
    faces: tuple[FaceOnPhoto, ...]


def person_summary(db: PhotoDB, person_id: int) -> PersonSummary | None:
    """One person (faces and photos counted), or None when there is no such person."""
    rows = db.read("SELECT p.id, p.name, p.name_source, count(f.id), count(DISTINCT f.photo_id) FROM people p "
                   "LEFT JOIN faces f ON f.person_id = p.id WHERE p.id = ? GROUP BY p.id", (int(person_id),))
    return PersonSummary(*rows[0]) if rows else None


def face_ids_by_person(db: PhotoDB, person_ids: list[int], per_person: int) -> dict[int, list[int]]:
    """{person id: the ids of their first `per_person` faces (usable faces first)} for a page of people."""
    out: dict[int, list[int]] = {int(p): [] for p in person_ids}
    for i in range(0, len(person_ids), 500):
        chunk = [int(p) for p in person_ids[i:i + 500]]
        rows = db.read("SELECT id, person_id FROM (SELECT f.id, f.person_id, row_number() OVER (PARTITION BY "
                       "f.person_id ORDER BY f.problems != '', f.id) AS n FROM faces f WHERE f.person_id IN "
                       f"({','.join('?' * len(chunk))})) WHERE n <= ? ORDER BY person_id, n", (*chunk, per_person))
        for fid, pid in rows:
            out[pid].append(fid)
    return out


def faces_of(db: PhotoDB, person_id: int | None, limit: int, offset: int = 0) -> list[tuple[int, str]]:
    """(face id, quality problems) of a person's faces, or of the unsorted ones (None), by face id."""
    where = "person_id IS NULL" if person_id is None else "person_id = ?"
    params = () if person_id is None else (int(person_id),)
    return [tuple(r) for r in db.read(f"SELECT id, problems FROM faces WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                                      (*params, int(limit), int(offset)))]


def count_faces(db: PhotoDB, person_id: int | None) -> int:
    """How many faces a person has; None: how many faces are unsorted."""
    if person_id is None:
        return db.read("SELECT count(*) FROM faces WHERE person_id IS NULL")[0][0]
    return db.read("SELECT count(*) FROM faces WHERE person_id = ?", (int(person_id),))[0][0]


def person_photos(db: PhotoDB, person_id: int, limit: int, offset: int = 0) -> list[PhotoView]:
    """A page of a person's photos (by path), each with all its faces and whose they are."""
    import os

    import numpy as np

    photos = db.read("SELECT DISTINCT ph.id, ph.path, ph.width, ph.height FROM photos ph JOIN faces f "
                     "ON f.photo_id = ph.id WHERE f.person_id = ? ORDER BY ph.path LIMIT ? OFFSET ?",
                     (int(person_id), int(limit), int(offset)))
    if not photos:
        return []
    ids = [r[0] for r in photos]
    faces: dict[int, list[FaceOnPhoto]] = {i: [] for i in ids}
    for fid, phid, box, pid, name in db.read(
            "SELECT f.id, f.photo_id, f.box, f.person_id, p.name FROM faces f LEFT JOIN people p ON p.id = f.person_id "
            f"WHERE f.photo_id IN ({','.join('?' * len(ids))}) ORDER BY f.photo_id, f.idx", ids):
        b = tuple(float(v) for v in np.frombuffer(box, "<f4"))
        label = "" if pid is None else (name or f"person {pid}")
        faces[phid].append(FaceOnPhoto(fid, b, pid, label))
    return [PhotoView(i, os.path.basename(path), w, h, tuple(faces[i])) for i, path, w, h in photos]


def face_person(db: PhotoDB, face_id: int) -> tuple[bool, int | None]:
    """(whether the face exists, its person id or None when unsorted)."""
    rows = db.read("SELECT person_id FROM faces WHERE id = ?", (int(face_id),))
    return (True, rows[0][0]) if rows else (False, None)
