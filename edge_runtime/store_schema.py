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
    (   # 2: encryption at rest (crypto.py) and retention/erasure of audit rows
        # A sealed template keeps `embedding` as zero bytes of the right length (the CHECK above) and its
        # AES-GCM blob in `sealed`; a sealed image keeps an empty `jpeg`.
        "ALTER TABLE templates ADD COLUMN sealed BLOB",
        "ALTER TABLE images ADD COLUMN sealed BLOB",
        # Audit rows stay append-only for every writer, except inside the store's own retention and
        # erasure transactions, which hold a row here while they run (no other connection ever sees it).
        "CREATE TABLE audit_unlock (why TEXT NOT NULL)",
        "DROP TRIGGER audit_no_update",
        "DROP TRIGGER audit_no_delete",
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN NOT EXISTS (SELECT 1 FROM audit_unlock)
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit WHEN NOT EXISTS (SELECT 1 FROM audit_unlock)
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
    ),
    (   # 3: templates that age (template_update.py): NULL = enrolled; else when the door added it from a live match
        "ALTER TABLE templates ADD COLUMN auto_added_at REAL",
    ),
    (   # 4: the erasure ledger: who was deleted, by ids only (never a name, never biometric data), so that a
        # restore of an older backup erases them again (Store.reapply_erasures). A person is their row id
        # and the time they were enrolled: ids of deleted people may be given again, enrollment times not.
        """CREATE TABLE erasures (
            person_id INTEGER NOT NULL,
            enrolled_at REAL NOT NULL,
            erased_at REAL NOT NULL,
            PRIMARY KEY (person_id, enrolled_at)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
