"""The SQLite files facegate keeps (the enrollment store, the admin database): how they are created,
opened, written and migrated, and how SQLite errors become StoreErrors whose message says what to do.

Every file is private (mode 0o600), in WAL mode (readers never block the writer) with a busy
timeout, foreign keys and secure_delete on. Connections are in autocommit mode; every write is one
`BEGIN IMMEDIATE` transaction (`write_transaction`), and the schema version is PRAGMA user_version.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .errors import FacegateError

FILE_MODE = 0o600              # biometric data and credentials: readable by the owner only
BUSY_TIMEOUT_MS = 5000         # how long a write waits for another process's write lock
SYNCHRONOUS = ("FULL", "NORMAL")


class StoreError(FacegateError):
    """A facegate database (the enrollment store, the admin database) cannot do what was asked."""


class StoreBusyError(StoreError):
    """Another process holds the database's write lock for longer than the busy timeout."""


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full; the write was rolled back."""


class StoreVersionError(StoreError):
    """The database was written by a newer facegate than this one."""


def translate_error(e: sqlite3.Error, path: str, action: str) -> StoreError:
    """A StoreError (or subclass) for a SQLite error, with a message that says what to do.

    Args:
        e: the error SQLite raised.
        path: the database file, as the message should name it.
        action: what was being done, completing "cannot ..." (e.g. "open the store").
    """
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    msg = str(e)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in msg:
        return StoreBusyError(f"cannot {action}: {path} is locked by another facegate process; nothing was "
                              f"changed. Wait for it to finish (or stop it) and try again")
    if primary == sqlite3.SQLITE_FULL or "database or disk is full" in msg:
        return StoreFullError(f"cannot {action}: the disk holding {path} is full; nothing was written. "
                              f"Free some space (or delete old images) and try again")
    if primary == sqlite3.SQLITE_READONLY or "readonly" in msg:
        return StoreError(f"cannot {action}: {path} is read-only; check the file's owner and permissions")
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or "not a database" in msg:
        return StoreError(f"cannot {action}: {path} is not a facegate store or is damaged ({msg}); "
                          f"move it away and re-enroll, or restore a backup")
    return StoreError(f"cannot {action} in {path}: {msg}")


def migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]], path: str = "the database") -> int:
    """Bring the schema to version len(migrations), all pending steps in one transaction.

    Each step is a sequence of SQL statements; step i (0-based) takes the schema from version i to
    i + 1. `conn` must be in autocommit mode (isolation_level=None). Returns the new version.
    Raises StoreVersionError when the file is newer than `migrations`; on any error nothing changes.
    """
    target = len(migrations)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == target:
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]    # re-read under the lock
        if version > target:
            raise StoreVersionError(f"{path} has schema version {version} but this facegate knows only up to "
                                    f"{target}: upgrade facegate (pip install -U facegate) to open it")
        for step in range(version, target):
            for sql in migrations[step]:
                conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return target


def create_private_file(path: Path, what: str, error: type[StoreError] = StoreError) -> None:
    """Create `path` empty with mode 0o600 unless it exists (an existing file is left as it is).

    Raises `error` when the file cannot be created (missing or read-only folder).
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return
    except OSError as e:
        raise error(f"cannot create {what} {path}: {e.strerror}; check the folder exists and is writable") from e
    os.close(fd)
    os.chmod(path, FILE_MODE)          # the umask may have taken bits away; set exactly 0o600


def open_db(path: str | Path, migrations: Sequence[Sequence[str]], *, what: str, synchronous: str,
            busy_timeout_ms: int = BUSY_TIMEOUT_MS, error: type[StoreError] = StoreError) -> sqlite3.Connection:
    """Open (creating with mode 0o600 if missing) a SQLite file and migrate its schema.

    Args:
        path: the database file.
        migrations: the schema steps (see `migrate`).
        what: how messages name the file, e.g. "the store" or "the admin database".
        synchronous: "NORMAL" (a power cut may lose the last commits, never corrupts the file) or
            "FULL" (every commit survives a power cut).
        busy_timeout_ms: how long a write waits for another process's lock before StoreBusyError.
        error: the StoreError subclass raised when the file cannot be created or cannot use WAL.
    Returns:
        an autocommit connection in WAL mode, with foreign keys and secure_delete on.
    Raises:
        StoreError (or a subclass, see `translate_error`); no connection is left open then.
    """
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous = {synchronous!r}: use one of {', '.join(SYNCHRONOUS)}")
    path = Path(path)
    where = str(path)
    if not path.exists():
        create_private_file(path, what, error)
    try:
        conn = sqlite3.connect(where, timeout=busy_timeout_ms / 1000.0, isolation_level=None)
    except sqlite3.Error as e:
        raise translate_error(e, where, f"open {what}") from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise error(f"{where} cannot use WAL journaling (got {mode!r}); keep {what} on a local disk, "
                        f"not a network share")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA secure_delete = ON")
        migrate(conn, migrations, where)
    except sqlite3.Error as e:
        conn.close()
        raise translate_error(e, where, f"open {what}") from e
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: str, action: str) -> Iterator[sqlite3.Connection]:
    """One `BEGIN IMMEDIATE` write transaction on an autocommit connection.

    Commits when the block ends; rolls back on any error and re-raises it, SQLite errors translated
    (see `translate_error`; `path` and `action` go into the message).
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as e:
        raise translate_error(e, path, action) from e
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as e:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:          # SQLite already rolled back (e.g. disk full)
                pass
        if isinstance(e, sqlite3.Error):
            raise translate_error(e, path, action) from e
        raise


def truncate_wal(conn: sqlite3.Connection, path: str, action: str) -> bool:
    """Copy the write-ahead log into the database file and truncate it (after an erasure, so that freed
    pages leave the WAL too). False if a reader in another process kept it from finishing: SQLite then
    finishes it when that reader closes. `action` completes "cannot ..." in error messages."""
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as e:
        raise translate_error(e, path, action) from e
    return not busy


class SQLiteFile:
    """One private SQLite file opened by `open_db`, and what every facegate database does with it:
    `write(action)` (one BEGIN IMMEDIATE transaction), `close`, use as a context manager. Subclasses
    pass their schema and how messages name the file."""

    def __init__(self, path: str | Path, migrations: Sequence[Sequence[str]], *, what: str, synchronous: str,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS, error: type[StoreError] = StoreError):
        self.path = Path(path)
        self.conn = open_db(self.path, migrations, what=what, synchronous=synchronous,
                            busy_timeout_ms=busy_timeout_ms, error=error)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction, rolled back on any error; `action` completes "cannot ..."
        in error messages."""
        return write_transaction(self.conn, str(self.path), action)

    def checkpoint(self) -> bool:
        """truncate_wal on this file; False if a reader in another process kept it from finishing."""
        return truncate_wal(self.conn, str(self.path), "checkpoint the database")
