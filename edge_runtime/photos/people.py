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
