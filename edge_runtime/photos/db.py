"""photos.db: the photo library's own SQLite file in the data home (WAL, sqlite_db rules).

It holds photos (by path, never copied), their faces (box, landmarks, quality problems, embedding, a
small JPEG thumbnail) and the people faces are sorted into. It is not the door's enrollment store:
deleting it never touches an enrollment.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sqlite_db import SQLiteFile, StoreError
from .schema import MIGRATIONS

PHOTOS_FILE = "photos.db"
FORGOTTEN_IOU = 0.5          # a face found again in a photo is a forgotten one when its box overlaps that much


class PhotoLibraryError(StoreError):
    """The photo library cannot do what was asked (unknown person or face, bad name)."""


def photos_path(home: Path) -> Path:
    """The photo library inside the data folder."""
    return Path(home) / PHOTOS_FILE


@dataclass(frozen=True)
class FaceRecord:
    """One face of one photo as the library keeps it.

    box: float32 (4,) x1, y1, x2, y2 in photo pixels (EXIF orientation applied); landmarks: float32 (5, 2);
    problems: quality problems ("" = usable); embedding: float32 (D,) or None when unusable;
    thumb: JPEG bytes of the face.
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    problems: tuple[str, ...]
    embedding: np.ndarray | None
    thumb: bytes


@dataclass(frozen=True)
class PhotoRow:
    """What the library knows of one file."""

    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    reason: str
    bundle_id: str


@dataclass(frozen=True)
class FaceTable:
    """Usable faces of one bundle, ready to cluster.

    face_ids, photo_ids, person_ids (-1 = no person), pinned (bool): int64/bool (N,);
    embeddings: float32 (N, D).
    """

    face_ids: np.ndarray
    photo_ids: np.ndarray
    person_ids: np.ndarray
    pinned: np.ndarray
    embeddings: np.ndarray


class PhotoDB(SQLiteFile):
    """One open photos.db. Every write is one transaction; reads see the last commit."""

    def __init__(self, path: str | Path):
        super().__init__(path, MIGRATIONS, what="the photo library", synchronous="NORMAL", error=PhotoLibraryError)

    def read(self, sql: str, params=()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    # -- photos ----------------------------------------------------------------------------
    def photo(self, path: str) -> PhotoRow | None:
        rows = self.read("SELECT id, path, size, mtime_ns, sha256, status, reason, bundle_id FROM photos "
                         "WHERE path = ?", (path,))
        return PhotoRow(*rows[0]) if rows else None

    def photos_under(self, root: str) -> dict[str, int]:
        """{path: photo id} of every photo at or below the folder `root` (an absolute path string)."""
        prefix = root.rstrip("/") + "/"
        rows = self.read("SELECT path, id FROM photos WHERE path = ? OR substr(path, 1, ?) = ?",
                         (root, len(prefix), prefix))
        return dict(rows)

    def put_photo(self, path: str, size: int, mtime_ns: int, sha256: str, bundle_id: str, status: str,
                  reason: str = "", faces: list[FaceRecord] = (), shape: tuple[int, int] = (0, 0)) -> int:
        """Record one photo and its faces in one transaction (a photo read again loses its old faces). Faces the
        user had the library forget in a photo of this content (`forgotten_faces`: a box overlapping one of
        theirs by IoU >= FORGOTTEN_IOU) are not recorded."""
        with self.write(f"record {path}") as c:
            faces = _not_forgotten(c, sha256, faces)
            old = c.execute("SELECT id FROM photos WHERE path = ?", (path,)).fetchone()
            if old:
                c.execute("DELETE FROM faces WHERE photo_id = ?", (old[0],))
                c.execute("UPDATE photos SET size=?, mtime_ns=?, sha256=?, status=?, reason=?, bundle_id=?, "
                          "width=?, height=?, scanned_at=? WHERE id=?",
                          (size, mtime_ns, sha256, status, reason, bundle_id, shape[1], shape[0], time.time(), old[0]))
                pid = old[0]
            else:
                pid = c.execute("INSERT INTO photos (path, size, mtime_ns, sha256, status, reason, bundle_id, width, "
                                "height, scanned_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                                (path, size, mtime_ns, sha256, status, reason, bundle_id, shape[1], shape[0],
                                 time.time())).lastrowid
            c.executemany("INSERT INTO faces (photo_id, idx, box, landmarks, det_score, problems, embedding, thumb) "
                          "VALUES (?,?,?,?,?,?,?,?)", [_face_row(pid, i, f) for i, f in faces])
        return pid

    def touch_photo(self, photo_id: int, size: int, mtime_ns: int) -> None:
        """Same content under a new size/mtime (copied, touched): remember the new stat only."""
        with self.write("update a photo") as c:
            c.execute("UPDATE photos SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, photo_id))

    def drop_photos(self, photo_ids: list[int]) -> int:
        """Forget photos (their faces go with them); people left without faces are removed unless named
        by the user. Returns the number dropped."""
        if not photo_ids:
            return 0
        with self.write("forget photos") as c:
            n = 0
            for i in range(0, len(photo_ids), 500):
                chunk = photo_ids[i:i + 500]
                n += c.execute(f"DELETE FROM photos WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
            c.execute("DELETE FROM people WHERE name_source IS NOT 'user' AND id NOT IN "
                      "(SELECT person_id FROM faces WHERE person_id IS NOT NULL)")
        return n

    # -- faces -----------------------------------------------------------------------------
    def usable_faces(self, bundle_id: str) -> FaceTable:
        """Every usable face embedded by `bundle_id` (faces of other bundles are never compared)."""
        rows = self.read("SELECT f.id, f.photo_id, coalesce(f.person_id, -1), f.pinned, f.embedding FROM faces f "
                         "JOIN photos p ON p.id = f.photo_id WHERE f.problems = '' AND f.embedding IS NOT NULL "
                         "AND p.bundle_id = ? ORDER BY f.id", (bundle_id,))
        if not rows:
            return FaceTable(*(np.zeros(0, np.int64) for _ in range(3)), np.zeros(0, bool),
                             np.zeros((0, 0), np.float32))
        ids, photos, people, pinned, emb = zip(*rows)
        m = np.frombuffer(b"".join(emb), "<f4").reshape(len(rows), -1).astype(np.float32)
        return FaceTable(np.asarray(ids, np.int64), np.asarray(photos, np.int64), np.asarray(people, np.int64),
                         np.asarray(pinned, bool), m)


def _not_forgotten(c, sha256: str, faces) -> list[tuple[int, FaceRecord]]:
    """(index in the photo, face) of the faces of a photo with content `sha256` that were not forgotten."""
    gone = [b for (b,) in c.execute("SELECT box FROM forgotten_faces WHERE sha256 = ?", (sha256,))] if sha256 else []
    out = list(enumerate(faces))
    hit = forgotten_boxes([np.asarray(f.box, "<f4").tobytes() for _, f in out], gone)
    return [item for item, h in zip(out, hit) if not h]


def forgotten_boxes(boxes: list[bytes], gone: list[bytes]) -> list[bool]:
    """Per face box (float32 (4,) bytes, x1 y1 x2 y2) of one photo: whether it overlaps a forgotten box of that
    photo's content by IoU >= FORGOTTEN_IOU."""
    if not boxes or not gone:
        return [False] * len(boxes)
    from ..detection import box_iou  # here: the store imports this module (door erasure), and not OpenCV

    iou = box_iou(np.stack([np.frombuffer(b, "<f4") for b in boxes]), np.stack([np.frombuffer(b, "<f4") for b in gone]))
    return [bool(v >= FORGOTTEN_IOU) for v in iou.max(axis=1)]


def _face_row(photo_id: int, idx: int, f: FaceRecord) -> tuple:
    emb = None if f.embedding is None else np.asarray(f.embedding, "<f4").tobytes()
    return (photo_id, idx, np.asarray(f.box, "<f4").tobytes(), np.asarray(f.landmarks, "<f4").tobytes(),
            float(f.score), ",".join(f.problems), emb, f.thumb)


# -- read-only look-ups for the admin page ---------------------------------------------------
def face_thumb(db: PhotoDB, face_id: int) -> bytes | None:
    """The stored JPEG thumbnail of one face, or None for an unknown face id."""
    rows = db.read("SELECT thumb FROM faces WHERE id = ?", (int(face_id),))
    return bytes(rows[0][0]) if rows else None


def photo_file(db: PhotoDB, photo_id: int) -> str | None:
    """The path of a photo the library holds with faces read (status 'ok'), or None: the only way the admin
    page turns an id into a file, so it can never reach a file the library does not know."""
    rows = db.read("SELECT path FROM photos WHERE id = ? AND status = 'ok'", (int(photo_id),))
    return rows[0][0] if rows else None
