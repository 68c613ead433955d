"""The schema of photos.db, one migration step per version (sqlite_db.migrate)."""
from __future__ import annotations

MIGRATIONS = [
    [
        # one row per file ever seen: status 'ok' (faces read), 'no_faces' or 'error' (reason says why)
        """CREATE TABLE photos (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('ok', 'no_faces', 'error')),
            reason TEXT NOT NULL DEFAULT '',
            bundle_id TEXT NOT NULL,
            width INTEGER NOT NULL DEFAULT 0,
            height INTEGER NOT NULL DEFAULT 0,
            scanned_at REAL NOT NULL)""",
        # ids are never reused (AUTOINCREMENT): a person id the user saw keeps meaning that person
        """CREATE TABLE people (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT,
            name_source TEXT CHECK (name_source IN ('user', 'door')),
            user_touched INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL)""",
        # problems '' = usable (embedded); person_id NULL = unsorted; pinned = placed by the user
        """CREATE TABLE faces (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            box BLOB NOT NULL,
            landmarks BLOB NOT NULL,
            det_score REAL NOT NULL,
            problems TEXT NOT NULL DEFAULT '',
            embedding BLOB,
            thumb BLOB NOT NULL,
            person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
            pinned INTEGER NOT NULL DEFAULT 0,
            UNIQUE (photo_id, idx))""",
        "CREATE INDEX faces_person ON faces(person_id)",
        "CREATE INDEX faces_photo ON faces(photo_id)",
    ],
    [
        # 2: faces the user had the library forget (`photos forget-person`): by the photo's content hash and
        # the face's box only (no embedding, no thumbnail, no name), so a later scan of the same content
        # does not record them again (PhotoDB.put_photo)
        """CREATE TABLE forgotten_faces (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL,
            box BLOB NOT NULL,
            forgotten_at REAL NOT NULL)""",
        "CREATE INDEX forgotten_faces_sha ON forgotten_faces(sha256)",
    ],
]
