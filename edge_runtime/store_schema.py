"""The enrollment store's SQLite schema, as migration steps (applied by sqlite_db.migrate)."""
from __future__ import annotations

# Each step is a list of SQL statements applied in one transaction; the step's index + 1 is the
# schema version stored in PRAGMA user_version. Append new steps; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_seen_at REAL
        )""",
        """CREATE TABLE templates (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            embedding BLOB NOT NULL,
            dim INTEGER NOT NULL CHECK (dim > 0 AND length(embedding) = 4 * dim),
            embedder TEXT NOT NULL,
            bundle_id TEXT NOT NULL,
            quality REAL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX templates_person ON templates(person_id)",
        "CREATE INDEX templates_bundle ON templates(bundle_id)",
        """CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            template_id INTEGER REFERENCES templates(id) ON DELETE SET NULL,
            jpeg BLOB NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX images_person ON images(person_id)",
        "CREATE INDEX images_template ON images(template_id)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            event TEXT NOT NULL,
            person_name TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX audit_ts ON audit(ts)",
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
