"""One-file backups of the data home, taken while the door runs, and their checked restore.

A backup is an uncompressed tar file (mode 0o600: it holds biometric data and password hashes) with:

- `manifest.json` first: format and version, when and by which facegate it was made, the bundle ids
  the store's templates were made with, and per member its size, sha256, schema version and row counts;
- `store.db` (always), `admin.db` and `photos.db` (when present): consistent copies made with SQLite's
  online backup API in one read transaction, so a door writing meanwhile is neither blocked nor half
  copied; each copy passes `PRAGMA integrity_check` before it is written;
- `config.toml` (when present), byte for byte.

The file is written to a temporary name in the target folder, synced and renamed, so a crash or a
killed process leaves either the old file or the whole new one. A restore reads and checks everything
(manifest, member list, sizes, sha256, integrity, counts) before it changes anything in the data home,
then re-applies the erasure ledger (`reapply_erasures`) to the unpacked copy before moving it in: a person
deleted after the backup was taken is not brought back.
"""
from __future__ import annotations

import calendar
import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..admin.db import ADMIN_FILE
from ..admin.db import MIGRATIONS as ADMIN_MIGRATIONS
from ..errors import FacegateError
from ..paths import BEFORE_RESTORE, CONFIG_FILE, STORE_FILE
from ..photos.db import PHOTOS_FILE, PhotoDB
from ..photos.erase import forgotten_marks, reapply_forgotten
from ..photos.schema import MIGRATIONS as PHOTOS_MIGRATIONS
from ..sqlite_db import FILE_MODE, StoreError
from ..store import Erasure, Store
from ..store_schema import SCHEMA_VERSION

FORMAT = "facegate-backup"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
DATABASES = (STORE_FILE, ADMIN_FILE, PHOTOS_FILE)       # SQLite files of the data home, in backup order
MEMBERS = (*DATABASES, CONFIG_FILE)                     # everything a backup may hold besides the manifest
SHM_DMS_BYTE = 128         # byte of a WAL database's -shm file every open SQLite connection read-locks
# what is counted in each database (table names; fixed here, never taken from a file)
COUNTED = {STORE_FILE: ("people", "templates", "images", "audit", "erasures"),
           ADMIN_FILE: ("admins", "api_tokens", "sessions"),
           PHOTOS_FILE: ("photos", "faces", "people")}


def known_schema(name: str) -> int:
    """The newest schema version this facegate reads for the database file `name`."""
    return {STORE_FILE: SCHEMA_VERSION, ADMIN_FILE: len(ADMIN_MIGRATIONS), PHOTOS_FILE: len(PHOTOS_MIGRATIONS)}[name]


class BackupError(FacegateError):
    """A backup cannot be made, or a backup file is unreadable, altered or incomplete."""


class RestoreRefused(FacegateError):
    """A restore would overwrite files, replace a store in use, or bring templates of another bundle."""


@dataclass(frozen=True)
class Member:
    """One file of a backup: name, size in bytes, sha256 (hex), and for a database its PRAGMA user_version
    and row counts per table (None for config.toml)."""

    name: str
    size: int
    sha256: str
    schema_version: int | None = None
    counts: dict | None = None

    def to_json(self) -> dict:
        out = {"name": self.name, "bytes": self.size, "sha256": self.sha256}
        if self.counts is not None:
            out.update(schema_version=self.schema_version, counts=dict(self.counts))
        return out


@dataclass(frozen=True)
class Manifest:
    """What a backup holds (manifest.json).

    created: seconds since the epoch; bundle_ids: {bundle id: templates made with it} in store.db.
    """

    created: float
    facegate_version: str
    bundle_ids: dict
    members: tuple[Member, ...]

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "created": self.created,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
                "facegate_version": self.facegate_version, "bundle_ids": dict(self.bundle_ids),
                "members": [m.to_json() for m in self.members]}

    @classmethod
    def from_json(cls, raw, where: str) -> "Manifest":
        """Parse manifest.json; BackupError naming `where` for anything missing or of the wrong kind."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise BackupError(f"{where} is not a facegate backup (its manifest.json has no format "
                              f"{FORMAT!r})")
        if raw.get("format_version") != FORMAT_VERSION:
            raise BackupError(f"{where} has backup format version {raw.get('format_version')!r}; this facegate "
                              f"reads version {FORMAT_VERSION}: restore it with the facegate that wrote it "
                              f"({raw.get('facegate_version', 'unknown')}) or a newer one")
        try:
            members = []
            for m in raw["members"]:
                counts = m.get("counts")
                if counts is not None and not all(isinstance(v, int) for v in counts.values()):
                    raise TypeError("counts")
                members.append(Member(str(m["name"]), int(m["bytes"]), str(m["sha256"]),
                                      None if counts is None else int(m["schema_version"]), counts))
            bundle_ids = {str(k): int(v) for k, v in raw["bundle_ids"].items()}
            return cls(float(raw["created"]), str(raw["facegate_version"]), bundle_ids, tuple(members))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BackupError(f"{where}: manifest.json is incomplete or malformed ({type(e).__name__}: {e})") from None


# -- making a backup -----------------------------------------------------------------------------
def default_backup_name(now: float) -> str:
    """facegate-backup-YYYYmmdd-HHMMSS.tar (UTC), the name used when the target is a folder."""
    return time.strftime("facegate-backup-%Y%m%d-%H%M%S.tar", time.gmtime(now))


def create_backup(home: Path, out: Path, *, facegate_version: str, config_file: Path | None = None,
                  overwrite: bool = False, clock: Callable[[], float] = time.time) -> tuple[Path, Manifest]:
    """Back up the data home into one tar file (see the module docstring).

    Args:
        home: the data home; its store.db must exist.
        out: the backup file, or an existing folder (the file is then named by `default_backup_name`).
        facegate_version: recorded in the manifest.
        config_file: the config file to include (default <home>/config.toml; left out when missing).
        overwrite: replace an existing backup file (otherwise BackupError).
    Returns:
        (the backup file, its manifest).
    Raises:
        BackupError: no store, target exists, a database copy fails its integrity check, disk full.
    """
    home, out = Path(home), Path(out)
    now = clock()
    if out.is_dir():
        out = out / default_backup_name(now)
    if out.exists() and not overwrite:
        raise BackupError(f"{out} exists; choose another name or add --force to replace it")
    if not (home / STORE_FILE).is_file():
        raise BackupError(f"no enrollment store at {home / STORE_FILE}: nothing to back up (check --home)")
    if not out.parent.is_dir():
        raise BackupError(f"folder {out.parent} does not exist; create it first")
    config_file = Path(config_file) if config_file is not None else home / CONFIG_FILE
    with _private_tempdir(out.parent) as tmp:
        members, bundle_ids = [], {}
        for name in DATABASES:
            if (home / name).is_file():
                copy = tmp / name
                copy_database(home / name, copy)
                members.append(_db_member(copy, name))
                if name == STORE_FILE:
                    bundle_ids = template_bundles(copy)
        if config_file.is_file():
            shutil.copyfile(config_file, tmp / CONFIG_FILE)
            members.append(Member(CONFIG_FILE, (tmp / CONFIG_FILE).stat().st_size, sha256_of(tmp / CONFIG_FILE)))
        manifest = Manifest(now, facegate_version, bundle_ids, tuple(members))
        try:
            _write_tar(out, manifest, tmp)
        except OSError as e:
            raise BackupError(f"cannot write {out}: {e.strerror}; nothing was written (free some space or "
                              f"choose another folder)") from e
    return out, manifest


def prune_backups(folder: Path, keep_days: float, now: float) -> list[Path]:
    """Delete the backups in `folder` taken more than `keep_days` days before `now` ([privacy]
    keep_backups_days): only files named as `default_backup_name` names them, aged by the UTC time in the
    name (a copy or a touch does not make a backup younger). Other files are never touched.
    Returns the files deleted, oldest first."""
    if keep_days <= 0:
        raise ValueError(f"keep_days = {keep_days}: backups must be kept at least a day")
    gone = []
    for p in sorted(Path(folder).glob("facegate-backup-*.tar")):
        try:
            taken = calendar.timegm(time.strptime(p.name, "facegate-backup-%Y%m%d-%H%M%S.tar"))
        except ValueError:
            continue
        if now - taken > keep_days * 86400:
            p.unlink(missing_ok=True)
            gone.append(p)
    if gone:
        _fsync_dir(Path(folder))
    return gone


def copy_database(src: Path, dst: Path) -> None:
    """A consistent copy of the SQLite file `src` (with what its WAL holds) at the new file `dst`.

    One read transaction of SQLite's online backup API: a writer in another process goes on writing;
    the copy is the database as of one commit, in rollback-journal mode (a single file; facegate puts it
    back in WAL mode when it opens it). The copy is checked with PRAGMA integrity_check.
    `src` must exist (connecting would create it). Raises BackupError.
    """
    try:
        source = sqlite3.connect(str(src), timeout=5.0)
    except sqlite3.Error as e:
        raise BackupError(f"cannot open {src} to back it up: {e}") from e
    try:
        _create_private(dst)
        target = sqlite3.connect(dst)
        try:
            source.backup(target)            # pages=-1: the whole file in one step, one snapshot
            target.execute("PRAGMA journal_mode = DELETE")      # one self-contained file; WAL again once opened
            problems = integrity_problems(target)
        finally:
            target.close()
    except sqlite3.Error as e:
        raise BackupError(f"cannot back up {src}: {e} (if it is damaged: `facegate doctor` names the problem)") from e
    finally:
        source.close()
    if problems:
        raise BackupError(f"the copy of {src} fails SQLite's integrity check ({problems[0]}); the database is "
                          f"damaged: restore an older backup")


def integrity_problems(conn: sqlite3.Connection, limit: int = 10) -> list[str]:
    """PRAGMA integrity_check's complaints, one line each (empty when the database is sound)."""
    rows = [r[0] for r in conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()]
    if rows == ["ok"]:
        return []
    return [line.strip() for r in rows for line in str(r).splitlines() if line.strip() and not line.startswith("***")]


def table_counts(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    """{table: rows} of the tables COUNTED for the database file `name` that exist in `conn`."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in COUNTED[name] if t in have}


def template_bundles(db: Path) -> dict[str, int]:
    """{bundle id: templates} of a store file (read only)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return {b: n for b, n in conn.execute("SELECT bundle_id, count(*) FROM templates GROUP BY bundle_id "
                                              "ORDER BY bundle_id")}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _db_member(copy: Path, name: str) -> Member:
    with contextlib.closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        counts = table_counts(conn, name)
    return Member(name, copy.stat().st_size, sha256_of(copy), version, counts)


def _create_private(path: Path) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    os.chmod(path, FILE_MODE)


@contextlib.contextmanager
def _private_tempdir(parent: Path) -> Iterator[Path]:
    """A fresh mode-0o700 folder in `parent` (same file system, for the final renames), removed at the end."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".facegate-backup-", dir=parent))
    except OSError as e:
        raise BackupError(f"cannot write in {parent}: {e.strerror}") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_tar(out: Path, manifest: Manifest, folder: Path) -> None:
    """manifest.json then every member from `folder`, to a 0o600 temporary file renamed over `out`."""
    part = out.with_name(f".{out.name}.{secrets.token_hex(6)}.partial")
    fd = os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                data = json.dumps(manifest.to_json(), indent=1, sort_keys=True).encode()
                tar.addfile(_tar_info(MANIFEST_FILE, len(data), manifest.created), io.BytesIO(data))
                for m in manifest.members:
                    with open(folder / m.name, "rb") as src:
                        tar.addfile(_tar_info(m.name, m.size, manifest.created), src)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(part, FILE_MODE)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)


def _tar_info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), FILE_MODE
    return info


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading and checking a backup -------------------------------------------------------------------
def read_manifest(backup: Path) -> Manifest:
    """The manifest of a backup file, without checking the members (see `unpack_checked`)."""
    with _open_tar(backup) as tar:
        return _manifest_of(tar, backup)


def unpack_checked(backup: Path, folder: Path) -> Manifest:
    """Unpack a backup into the empty `folder` (files mode 0o600) and check every part of it.

    Checked: it is a tar file of plain files only, named as the manifest lists them and nothing else;
    every size and sha256 matches; every database passes PRAGMA integrity_check and holds the row
    counts and schema version the manifest records. Raises BackupError naming the first problem.
    """
    backup = Path(backup)
    with _open_tar(backup) as tar:
        manifest = _manifest_of(tar, backup)
        listed = {m.name for m in manifest.members}
        if STORE_FILE not in listed:
            raise BackupError(f"{backup} holds no {STORE_FILE}; it is not a complete facegate backup")
        unknown = listed - set(MEMBERS)
        if unknown:
            raise BackupError(f"{backup} lists files facegate does not restore: {', '.join(sorted(unknown))}")
        seen = set()
        for info in tar:
            if info.name == MANIFEST_FILE:
                continue
            if info.name not in listed or info.name in seen or not info.isfile():
                raise BackupError(f"{backup} holds {info.name!r}, which its manifest does not list (or twice, or "
                                  f"not as a plain file): the file was altered; use another backup")
            seen.add(info.name)
            _extract(tar, info, folder / info.name, backup)
        missing = listed - seen
        if missing:
            raise BackupError(f"{backup} is incomplete: {', '.join(sorted(missing))} listed but missing (truncated "
                              f"copy?); use another backup")
    for m in manifest.members:
        _check_member(folder / m.name, m, backup)
    return manifest


@contextlib.contextmanager
def _open_tar(backup: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(backup, mode="r:")
    except FileNotFoundError:
        raise BackupError(f"backup file {backup} not found") from None
    except (tarfile.TarError, OSError) as e:
        raise BackupError(f"{backup} is not a facegate backup or is damaged ({e})") from None
    try:
        yield tar
    except (tarfile.TarError, EOFError) as e:
        raise BackupError(f"{backup} is damaged or truncated ({e}); use another backup") from None
    finally:
        tar.close()


def _manifest_of(tar: tarfile.TarFile, backup: Path) -> Manifest:
    try:
        info = tar.getmember(MANIFEST_FILE)
    except KeyError:
        raise BackupError(f"{backup} has no {MANIFEST_FILE}; it is not a facegate backup") from None
    f = tar.extractfile(info)
    if f is None:
        raise BackupError(f"{backup}: {MANIFEST_FILE} is not a plain file")
    try:
        raw = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackupError(f"{backup}: {MANIFEST_FILE} is not valid JSON ({e})") from None
    return Manifest.from_json(raw, str(backup))


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo, dst: Path, backup: Path) -> None:
    src = tar.extractfile(info)
    _create_private(dst)
    with open(dst, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)
        f.flush()
        os.fsync(f.fileno())
    if dst.stat().st_size != info.size:
        raise BackupError(f"{backup} is truncated inside {info.name}; use another backup")


def _check_member(path: Path, m: Member, backup: Path) -> None:
    size = path.stat().st_size
    if size != m.size or sha256_of(path) != m.sha256:
        raise BackupError(f"{m.name} in {backup} does not match its manifest (size {size} vs {m.size} or sha256 "
                          f"differs): the backup is damaged or was altered; use another backup")
    if m.counts is None:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            problems = integrity_problems(conn)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            counts = table_counts(conn, m.name)
    except sqlite3.Error as e:
        raise BackupError(f"{m.name} in {backup} is not a readable SQLite database ({e})") from None
    if problems:
        raise BackupError(f"{m.name} in {backup} fails SQLite's integrity check ({problems[0]})")
    if version != m.schema_version or counts != m.counts:
        raise BackupError(f"{m.name} in {backup} holds schema {version} and rows {counts}, but its manifest says "
                          f"{m.schema_version} and {m.counts}; use another backup")


# -- restoring -----------------------------------------------------------------------------------------
STALE_POLICIES = ("refuse", "re-embed", "keep-stale")


@dataclass(frozen=True)
class RestorePlan:
    """A checked backup unpacked next to the data home, and what restoring it will do.

    bundle_id: the configured bundle's id; stale: {bundle id: templates} of the backup's templates not made
    with it. replaced: the files of the data home it replaces (kept as <name>.before-restore).
    """

    manifest: Manifest
    staging: Path
    home: Path
    bundle_id: str
    stale: dict
    replaced: tuple[str, ...]


def db_in_use(db: Path) -> bool:
    """Whether another process has the WAL database `db` open (the door, the admin page, a photo scan).

    Every open SQLite connection to a WAL database holds a read lock on one byte of its -shm file;
    asking for a write lock on that byte without waiting tells whether anyone does. This process must
    not have `db` open itself (its own locks never conflict, and closing the probe would drop them).
    """
    shm = Path(f"{db}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SHM_DMS_BYTE, os.SEEK_SET)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, SHM_DMS_BYTE, os.SEEK_SET)
        return False
    finally:
        os.close(fd)


def plan_restore(backup: Path, manifest: Manifest, staging: Path, home: Path, *, bundle_id: str,
                 force: bool = False, stale: str = "refuse") -> RestorePlan:
    """Decide whether the backup unpacked and checked in `staging` (`unpack_checked`, in a folder on the
    data home's file system) may replace the data home's files. Nothing in the home is changed.

    Args:
        backup: the backup file (for messages).
        bundle_id: the id of the bundle the door will use after the restore (Bundle.id), against which
            the templates' bundle ids are compared.
        force: replace existing files (they are kept as <name>.before-restore).
        stale: what to do with templates of another bundle: "refuse", "re-embed" (from the kept crops,
            after the restore) or "keep-stale" (restore them as they are; they match nobody).
    Raises:
        RestoreRefused when a database is newer than this facegate reads, a database is in use by another
        process, a file exists without `force`, or templates are stale with stale="refuse".
    """
    if stale not in STALE_POLICIES:
        raise ValueError(f"stale = {stale!r}: use one of {', '.join(STALE_POLICIES)}")
    home = Path(home)
    names = [m.name for m in manifest.members]
    newer = [f"{m.name} (schema {m.schema_version}, this facegate reads up to {known_schema(m.name)})"
             for m in manifest.members if m.counts is not None and m.schema_version > known_schema(m.name)]
    if newer:
        raise RestoreRefused(f"{backup} was written by a newer facegate ({manifest.facegate_version}): "
                             f"{', '.join(newer)}; upgrade facegate (pip install -U facegate) and restore again")
    busy = [n for n in names if n in DATABASES and db_in_use(home / n)]
    if busy:
        raise RestoreRefused(f"{', '.join(str(home / n) for n in busy)} is open in another facegate process (the "
                             f"door, the admin page or a photo scan): stop it (systemctl stop facegate-door "
                             f"facegate-admin) and restore again")
    existing = tuple(n for n in names if (home / n).exists())
    if existing and not force:
        raise RestoreRefused(f"{home} already holds {', '.join(existing)}: restoring would replace them. Add "
                             f"--force to restore anyway (each replaced file is kept as <name>{BEFORE_RESTORE})")
    stale_ids = {b: n for b, n in manifest.bundle_ids.items() if b != bundle_id}
    if stale_ids and stale == "refuse":
        total = sum(stale_ids.values())
        raise RestoreRefused(f"{total} templates in {backup} were made with another model bundle "
                             f"({', '.join(sorted(stale_ids))}) than the one configured ({bundle_id}); they would "
                             f"match nobody. Add --re-embed to re-embed them from the kept face crops after the "
                             f"restore, or --keep-stale to restore them as they are (then `facegate people "
                             f"reembed` or re-enroll)")
    return RestorePlan(manifest, Path(staging), home, bundle_id, stale_ids, existing)


@dataclass(frozen=True)
class Reapplied:
    """What `reapply_erasures` did: the ledger entries that found a person in the backup, the entries of the
    merged ledger, and the photo-library faces forgotten again."""

    erasures: tuple[Erasure, ...]
    ledger: int
    photo_faces: int


def reapply_erasures(plan: RestorePlan, current_ledger: bool = True) -> Reapplied:
    """Before anything in the data home changes: erase again, in the unpacked backup (its store and photo
    library), every person the data home's current store erased and every person the backup's own
    ledger names, and give the backup's store the union of both ledgers, so the restored home holds no one
    who was erased, and the ledger outlives the restore. Names are also erased from the home's event files.
    The faces the current photo library was told to forget (`photos forget-person`) are forgotten again in
    the backup's photo library (photos/erase.py reapply_forgotten).

    Opens the current store only when it exists (never creates one); no key is needed. A current store that
    cannot be read (damaged) raises RestoreRefused, since the people it erased would come back (the same for
    the current photo library); with `current_ledger` False neither is read (the operator's explicit choice).
    """
    current = plan.home / STORE_FILE
    ledger = []
    if current_ledger and current.is_file():
        try:
            with Store(current) as s:
                ledger = s.erasures()
        except StoreError as e:
            raise RestoreRefused(f"the erasure ledger of the current store cannot be read ({e}), so people deleted "
                                 f"after this backup was taken could come back; nothing was changed. Add "
                                 f"--without-current-ledger to restore anyway (only the backup's own ledger is "
                                 f"re-applied), then delete again anyone deleted since the backup") from e
    with Store(plan.staging / STORE_FILE) as restored:
        applied = restored.reapply_erasures([*ledger, *restored.erasures()], also=[plan.home])
        entries = len(restored.erasures())
    faces = 0
    if current_ledger and (plan.home / PHOTOS_FILE).is_file() and (plan.staging / PHOTOS_FILE).is_file():
        try:
            with PhotoDB(plan.home / PHOTOS_FILE) as db:       # faces forgotten since (photos forget-person)
                marks = forgotten_marks(db)
        except StoreError as e:
            raise RestoreRefused(f"the forgotten faces of the current photo library cannot be read ({e}), so "
                                 f"faces forgotten after this backup was taken could come back; nothing was "
                                 f"changed. Add --without-current-ledger to restore anyway") from e
        if marks:
            with PhotoDB(plan.staging / PHOTOS_FILE) as db:
                faces, _ = reapply_forgotten(db, marks)
    return Reapplied(tuple(applied), entries, faces)


def apply_restore(plan: RestorePlan) -> list[Path]:
    """Move the checked files of `plan` into the data home; returns the files kept as *.before-restore.

    Per file: the old file and, for a database, its -wal and -shm files are renamed to
    <name>.before-restore (and -wal/-shm after it, so the kept database opens with its last commits),
    then the new file is renamed into place; a crash in between leaves the old data under that name,
    never half of either. A copy kept by an earlier restore is replaced. Refuses (RestoreRefused), before
    moving anything, when a database was opened by another process since the plan was made.
    """
    busy = [str(plan.home / m.name) for m in plan.manifest.members if m.name in DATABASES
            and db_in_use(plan.home / m.name)]
    if busy:
        raise RestoreRefused(f"{', '.join(busy)} was opened by another facegate process during the restore; stop "
                             f"it and restore again")
    kept = []
    for m in plan.manifest.members:
        target = plan.home / m.name
        suffixes = ("", "-wal", "-shm") if m.name in DATABASES else ("",)
        if target.exists():
            for suffix in suffixes:              # a copy kept by an earlier restore gives way to this one
                Path(f"{target}{BEFORE_RESTORE}{suffix}").unlink(missing_ok=True)
        for suffix in suffixes:
            old = Path(f"{target}{suffix}")
            if old.exists():
                keep = Path(f"{target}{BEFORE_RESTORE}{suffix}")
                os.replace(old, keep)
                kept.append(keep)
        os.chmod(plan.staging / m.name, FILE_MODE)
        os.replace(plan.staging / m.name, target)
    _fsync_dir(plan.home)
    return kept
