"""The enrollment store: people, their face templates and images, and an append-only audit log.

One SQLite file in WAL mode (readers never block the writer), one connection per `Store`
object (use one Store per thread or process). Every write is one `BEGIN IMMEDIATE` transaction:
it either lands completely or not at all, also when the process is killed or the disk fills.
Deleted biometric data is overwritten (`secure_delete`) and the WAL is truncated after a delete.
Opening, write transactions, migrations and error messages come from sqlite_db.py (shared with the
admin database); StoreError and its lock / full-disk / version subclasses are defined there too.

With a key (crypto.SealKey, from [privacy] key_file) templates and kept crops are written sealed
(AES-256-GCM, bound to their row) and opened once when read: the gallery in memory is plain. A sealed
row read without the key, or with another key, raises StoreLockedError: never an empty gallery.
Deleting a person also erases their name from the audit rows (see `delete`) and records them, by id only,
in the erasure ledger, which a restore re-applies (`reapply_erasures`); audit rows older than the retention
are removed by `prune_audit`.
"""
from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import unicodedata
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .crypto import SealedDataError, SealKey, blob_key_id
from .erasure import names_in, scrubbed
from .errors import ImageError
from .event_log import erase_names as erase_from_event_files
from .matching import TemplateGallery
from .paths import BEFORE_RESTORE
from .photos.erase import erase_door_names
from .sqlite_db import (  # noqa: F401  (StoreError ... migrate: the store's public names, defined there)
    BUSY_TIMEOUT_MS,
    FILE_MODE,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreVersionError,
    migrate,
    open_db,
    translate_error,
    truncate_wal,
    write_transaction,
)
from .store_schema import MIGRATIONS, SCHEMA_VERSION  # noqa: F401  (SCHEMA_VERSION: public name)

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 100
_SPACES = re.compile(r"\s+")                   # after control characters are refused: spaces of any width
JOINERS = frozenset("\u200c\u200d")           # ZERO WIDTH NON-JOINER, ZERO WIDTH JOINER
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")     # Hangul fillers: letters that draw nothing
VIRAMA = 9                                      # canonical combining class of a virama
JOINING_SCRIPTS = frozenset({"ARABIC", "SYRIAC", "NKO", "MONGOLIAN", "MANDAIC", "MANICHAEAN", "PSALTER", "ADLAM",
                             "HANIFI", "SOGDIAN", "PHAGS-PA"})   # cursive scripts whose letters a ZWNJ keeps apart



class StoreLockedError(StoreError):
    """Sealed templates or crops cannot be opened: no key, or another key than the one that sealed them."""


class PersonNotFoundError(StoreError):
    """No enrolled person has that name."""


class DuplicateNameError(StoreError):
    """A person with that name is already enrolled."""


class InvalidNameError(StoreError, ValueError):
    """A name is empty, too long, or holds control, invisible or text-direction characters."""


class InvalidTemplateError(StoreError, ValueError):
    """Embeddings to enroll are not a finite float (N, D) array matching the bundle."""


@dataclass(frozen=True)
class Person:
    """One enrolled person; `templates` and `images` are counts."""

    id: int
    name: str
    templates: int
    images: int
    created_at: float
    last_seen_at: float | None


@dataclass(frozen=True)
class Erasure:
    """One entry of the erasure ledger: the deleted person's row id, when they were enrolled (people.created_at:
    with the id, one person) and when they were erased (seconds since the epoch). Never a name."""

    person_id: int
    enrolled_at: float
    erased_at: float


@dataclass(frozen=True)
class AuditRow:
    """One audit event; `details` is the decoded JSON object."""

    id: int
    ts: float
    event: str
    person_name: str | None
    details: dict


def normalize_name(name: str) -> str:
    """A new person's name as stored: NFC-normalised, stripped, runs of spaces made one space, 1..100
    characters, and nothing that shows differently from what it is.

    Refused: control characters (tab, newline, ...), and invisible or text-direction characters
    (Unicode format characters, category Cf, such as U+200B ZERO WIDTH SPACE and U+202E RIGHT-TO-LEFT
    OVERRIDE, and the Hangul fillers), with which two names that look the same would be two people.
    ZERO WIDTH (NON-)JOINER stay where they shape a script (see `_joiner_shapes`). The message names
    the code points. Raises InvalidNameError.
    """
    n = stored_name(name)
    bad = [c for c in n if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]
    if bad:
        raise InvalidNameError(f"the name {n!r} holds control characters ({', '.join(f'U+{ord(c):04X}' for c in bad)}); "
                               f"remove them")
    n = _SPACES.sub(" ", n)
    hidden = dict.fromkeys(c for i, c in enumerate(n) if _hidden(n, i))
    if hidden:
        codes = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in hidden)
        raise InvalidNameError(f"the name {n!r} holds invisible or text-direction characters ({codes}), with which "
                               f"two names can look the same; remove them (to add photos to someone enrolled under "
                               f"such a name, rename them first)")
    if not n:
        raise InvalidNameError("the name is empty: give the person's name")
    if len(n) > MAX_NAME_CHARS:
        raise InvalidNameError(f"the name has {len(n)} characters; at most {MAX_NAME_CHARS} are allowed")
    return n


def stored_name(name: str) -> str:
    """A name as looked up: NFC-normalised and stripped, nothing refused but non-text.

    Finds people by their stored name, also those enrolled before `normalize_name` refused hidden
    characters and double spaces, so they stay reachable to be recognised, renamed or deleted.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"a name must be text, got {type(name).__name__}")
    return unicodedata.normalize("NFC", name.strip())


def _hidden(n: str, i: int) -> bool:
    """Whether n[i] draws nothing on its own: a format character (Cf) or a Hangul filler, except a
    joiner that shapes its neighbours."""
    c = n[i]
    if c in INVISIBLE_LETTERS:
        return True
    return unicodedata.category(c) == "Cf" and not (c in JOINERS and _joiner_shapes(n, i))


def _joiner_shapes(n: str, i: int) -> bool:
    """Whether the joiner n[i] changes how its neighbours are drawn (after RFC 5892's CONTEXTJ rules):
    after a virama (Indic conjuncts), or between two letters of one cursive script (Persian names)."""
    before, after = n[i - 1] if i > 0 else "", n[i + 1] if i + 1 < len(n) else ""
    if before and unicodedata.combining(before) == VIRAMA:
        return True
    script = _script(before)
    return script in JOINING_SCRIPTS and _script(after) == script


def _script(c: str) -> str:
    """The script word of a letter or mark's Unicode name ('ARABIC' for U+0645); '' for anything else."""
    if not c or unicodedata.category(c)[0] not in "LM":
        return ""
    return unicodedata.name(c, "").split(" ")[0]


def stale_templates_message(stale: dict[str, int]) -> str:
    """The warning for people whose templates were made by another model bundle.

    Args:
        stale: {name: template count}, as `Store.stale_templates` returns it; must not be empty.
    Returns:
        one sentence naming them (sorted) and saying how to fix it.
    """
    if not stale:
        raise ValueError("no stale templates: there is nothing to warn about")
    return (f"{len(stale)} people have templates from another model bundle and cannot be matched: "
            f"{', '.join(sorted(stale))}; run `facegate people reembed` (uses the kept face crops) "
            f"or re-enroll them")


def checked_templates(embeddings, bundle_id: str, embedder: str, images, quality
                      ) -> tuple[np.ndarray, list[bytes], list[float] | None]:
    """Templates to enroll, checked: (little-endian float32 (N, D) embeddings, JPEG crops, per-template
    quality or None). Raises InvalidTemplateError or ImageError naming what is wrong."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1 or not np.issubdtype(emb.dtype, np.floating):
        raise InvalidTemplateError(f"embeddings must be a float (N, D) array with N, D >= 1; got "
                                   f"{emb.dtype} {emb.shape}")
    emb = np.ascontiguousarray(emb, dtype="<f4")
    if not np.all(np.isfinite(emb)):
        raise InvalidTemplateError("embeddings hold NaN or infinite values; the embedder failed on this face")
    for label, v in (("bundle_id", bundle_id), ("embedder", embedder)):
        if not isinstance(v, str) or not v.strip():
            raise InvalidTemplateError(f"{label} must be a non-empty string")
    images = list(images or [])
    for i, img in enumerate(images):
        if not isinstance(img, (bytes, bytearray, memoryview)) or bytes(img[:3]) != b"\xff\xd8\xff":
            raise ImageError(f"image {i} to enroll is not JPEG data; encode crops with cv2.imencode('.jpg', ...)")
    if quality is not None:
        quality = [float(q) for q in quality]
        if len(quality) != emb.shape[0]:
            raise InvalidTemplateError(f"got {len(quality)} quality scores for {emb.shape[0]} embeddings")
    return emb, images, quality


class Store:
    """The enrollment store in one SQLite file.

    Args:
        path: the database file (created with mode 0o600 if missing).
        busy_timeout_ms: how long a write waits for another process's lock before StoreBusyError.
        clock: returns the current time in seconds (time.time); injectable for tests.
        key: seal new templates and crops with this key, and open sealed ones (None: write them plain;
            reading a sealed one then raises StoreLockedError).
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                 clock: Callable[[], float] = time.time, key: SealKey | None = None):
        self.path = Path(path)
        self._clock = clock
        self.key = key
        self._conn: sqlite3.Connection | None = None
        self._conn = open_db(self.path, MIGRATIONS, what="the store", synchronous="NORMAL",
                             busy_timeout_ms=busy_timeout_ms)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw SQLite connection (autocommit mode); StoreError once closed."""
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed; open a new Store")
        return self._conn

    def _write(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction; rolled back on any error, sqlite errors translated."""
        return write_transaction(self.conn, str(self.path), action)

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise translate_error(e, str(self.path), "read the store") from e

    def _append_audit(self, conn: sqlite3.Connection, event: str, person_name: str | None, details: dict) -> None:
        if not isinstance(event, str) or not event:
            raise ValueError("an audit event needs a non-empty name")
        try:
            text = json.dumps(details, ensure_ascii=False, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"audit details must be plain JSON values (str, number, bool, None, list, dict): {e}") from e
        conn.execute("INSERT INTO audit (ts, event, person_name, details) VALUES (?, ?, ?, ?)",
                     (self._clock(), event, person_name, text))

    def _person_id(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no one named {name!r} is enrolled; see `facegate people list`")
        return row[0]

    _PERSON_SQL = """SELECT p.id, p.name,
                            (SELECT count(*) FROM templates t WHERE t.person_id = p.id),
                            (SELECT count(*) FROM images i WHERE i.person_id = p.id),
                            p.created_at, p.last_seen_at
                     FROM people p"""

    # -- people ----------------------------------------------------------------------------
    def enroll(self, name: str, embeddings: np.ndarray, bundle_id: str, embedder: str,
               images: Sequence[bytes] | None = None, create: bool = True,
               quality: Sequence[float] | None = None) -> Person:
        """Add templates (and optional JPEG crops) to a person, creating the person if needed.

        Args:
            name: the person's name (normalised, see `normalize_name`).
            embeddings: float32 (N, D), N >= 1, finite; D must match this bundle's other templates.
            bundle_id: the model bundle that made the embeddings (templates are only ever
                compared within one bundle).
            embedder: the embedder's name.
            images: JPEG bytes (thumbnails / aligned crops). When there are exactly N, image i
                is linked to template i; otherwise images are stored unlinked.
            create: when False, an unknown name raises PersonNotFoundError instead of creating.
            quality: optional per-template quality scores, length N.
        Returns:
            the person after the write. One transaction; one 'enroll' audit row.
        """
        name = normalize_name(name)
        emb, images, quality = checked_templates(embeddings, bundle_id, embedder, images, quality)
        n, dim = emb.shape
        with self._write(f"enroll {name!r}") as conn:
            row = conn.execute("SELECT dim FROM templates WHERE bundle_id = ? LIMIT 1", (bundle_id,)).fetchone()
            if row is not None and row[0] != dim:
                raise InvalidTemplateError(f"bundle {bundle_id!r} has {row[0]}-dimensional templates but these "
                                           f"embeddings have {dim}: the bundle id does not match the embedder")
            now = self._clock()
            pid, created = self._person_for_enroll(conn, name, create, now)
            tids = [self._insert_template(conn, pid, emb[i], embedder, bundle_id,
                                          None if quality is None else quality[i], now) for i in range(n)]
            link = len(images) == n
            for i, img in enumerate(images):
                self._insert_image(conn, pid, tids[i] if link else None, bytes(img), now)
            self._append_audit(conn, "enroll", name, {"templates": n, "images": len(images), "dim": dim,
                                                      "bundle_id": bundle_id, "embedder": embedder,
                                                      "created": created})
            person = self._person_row(conn, name)
        return person

    def _insert_template(self, conn: sqlite3.Connection, pid: int, vec: np.ndarray, embedder: str, bundle_id: str,
                         quality: float | None, now: float) -> int:
        """One template row (sealed when the store has a key); returns its id. `vec`: little-endian float32 (D,)."""
        plain = vec.tobytes()
        tid = conn.execute(
            "INSERT INTO templates (person_id, embedding, dim, embedder, bundle_id, quality, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (pid, plain if self.key is None else bytes(len(plain)), vec.size,
                                             embedder, bundle_id, quality, now)).lastrowid
        if self.key is not None:
            conn.execute("UPDATE templates SET sealed = ? WHERE id = ?", (self.key.seal(plain, _template_aad(tid, pid)),
                                                                          tid))
        return tid

    def _insert_image(self, conn: sqlite3.Connection, pid: int, tid: int | None, jpeg: bytes, now: float) -> int:
        """One kept-crop row (sealed when the store has a key); returns its id."""
        iid = conn.execute("INSERT INTO images (person_id, template_id, jpeg, created_at) VALUES (?, ?, ?, ?)",
                           (pid, tid, jpeg if self.key is None else b"", now)).lastrowid
        if self.key is not None:
            conn.execute("UPDATE images SET sealed = ? WHERE id = ?", (self.key.seal(jpeg, _image_aad(iid, pid)), iid))
        return iid

    def _opened(self, blob: bytes | None, plain: bytes, aad: str) -> bytes:
        """The plain bytes of a row: `plain` when it is not sealed, else `blob` opened with the store's key."""
        if blob is None:
            return bytes(plain)
        if self.key is None:
            raise StoreLockedError(f"{self.path} holds encrypted templates and face crops (key {blob_key_id(blob)}) "
                                   f"but no key is configured: set [privacy] key_file to the key file they were "
                                   f"encrypted with")
        try:
            return self.key.open(blob, aad)
        except SealedDataError as e:
            raise StoreLockedError(f"cannot read {self.path}: {e}") from None

    @staticmethod
    def _person_for_enroll(conn: sqlite3.Connection, name: str, create: bool, now: float) -> tuple[int, bool]:
        """(person id, whether it was created now) of `name`, inside an enroll transaction."""
        found = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if found is not None:
            conn.execute("UPDATE people SET updated_at = ? WHERE id = ?", (now, found[0]))
            return found[0], False
        if not create:
            raise PersonNotFoundError(f"no one named {name!r} is enrolled; enroll them first "
                                      f"(or check the spelling with `facegate people list`)")
        return conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES (?, ?, ?)",
                            (name, now, now)).lastrowid, True

    def _person_row(self, conn: sqlite3.Connection, name: str) -> Person:
        row = conn.execute(self._PERSON_SQL + " WHERE p.name = ?", (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no one named {name!r} is enrolled; see `facegate people list`")
        return Person(*row)

    def people(self) -> list[Person]:
        """Everyone enrolled, by name."""
        return [Person(*r) for r in self._read(self._PERSON_SQL + " ORDER BY p.name")]

    def person(self, name: str) -> Person:
        """One person; PersonNotFoundError if nobody has that name."""
        name = stored_name(name)
        rows = self._read(self._PERSON_SQL + " WHERE p.name = ?", (name,))
        if not rows:
            raise PersonNotFoundError(f"no one named {name!r} is enrolled; see `facegate people list`")
        return Person(*rows[0])

    def rename(self, old: str, new: str) -> Person:
        """Rename a person; DuplicateNameError if `new` is taken. Audit 'rename'."""
        old, new = stored_name(old), normalize_name(new)
        with self._write(f"rename {old!r}") as conn:
            pid = self._person_id(conn, old)
            if new != old:
                if conn.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                    raise DuplicateNameError(f"{new!r} is already enrolled; pick another name or delete "
                                             f"that person first")
                conn.execute("UPDATE people SET name = ?, updated_at = ? WHERE id = ?", (new, self._clock(), pid))
                self._append_audit(conn, "rename", new, {"from": old})
            person = self._person_row(conn, new)
        return person

    def delete(self, name: str) -> Person:
        """Remove a person with every template and image; audit 'delete'.

        The freed pages are zeroed (secure_delete) and the WAL is checkpointed and truncated, so
        the biometric data does not linger in the files. Their names (now and before renames) are
        erased from the audit rows, from the event files listed in the data home (event_log.py) and,
        where the photo library holds them as door-given names, from the data home's photos.db
        (photos/erase.py); the 'delete' row names nobody. The erasure ledger records the person's id
        and enrollment time (never a name) so a restore of an older backup erases them again
        (`reapply_erasures`); the copies a forced restore kept (<file>.before-restore) are erased too.
        Returns the person as it was.
        """
        name = stored_name(name)
        with self._write(f"delete {name!r}") as conn:
            person = self._person_row(conn, name)
            names, erased = self._erase_person(conn, person)
            conn.execute("INSERT OR IGNORE INTO erasures (person_id, enrolled_at, erased_at) VALUES (?, ?, ?)",
                         (person.id, person.created_at, self._clock()))
            self._append_audit(conn, "delete", None, {"templates": person.templates, "images": person.images,
                                                      "audit_rows_anonymised": erased})
        self._erase_elsewhere(names)
        return person

    def erasures(self) -> list[Erasure]:
        """The erasure ledger: every person deleted from this store (or from a store it was restored over),
        oldest erasure first."""
        return [Erasure(*r) for r in self._read("SELECT person_id, enrolled_at, erased_at FROM erasures "
                                                "ORDER BY erased_at, person_id")]

    def reapply_erasures(self, ledger: Sequence[Erasure], also: Sequence[Path] = ()) -> list[Erasure]:
        """Erase again, as `delete` does, every person of `ledger` this store still holds (a restored backup
        taken before they were deleted), and add every entry to this store's ledger (keeping its time).

        One transaction; one 'erasure_reapplied' audit row per person found (names nobody). Their names are
        erased from the event files and photo library of this store's folder and of the data homes `also`
        (a restore: the home the backup goes into). Returns the entries that found a person here.
        """
        applied, names = [], set()
        with self._write("re-apply erasures") as conn:
            for e in ledger:
                row = conn.execute(self._PERSON_SQL + " WHERE p.id = ? AND p.created_at = ?",
                                   (int(e.person_id), float(e.enrolled_at))).fetchone()
                if row is not None:
                    person = Person(*row)
                    gone, erased = self._erase_person(conn, person)
                    names.update(gone)
                    applied.append(e)
                    self._append_audit(conn, "erasure_reapplied", None, {
                        "templates": person.templates, "images": person.images, "audit_rows_anonymised": erased,
                        "erased_at": float(e.erased_at)})
                conn.execute("INSERT OR IGNORE INTO erasures (person_id, enrolled_at, erased_at) VALUES (?, ?, ?)",
                             (int(e.person_id), float(e.enrolled_at), float(e.erased_at)))
        if applied:
            self._erase_elsewhere(sorted(names), *also)
        return applied

    def _erase_person(self, conn: sqlite3.Connection, person: Person) -> tuple[list[str], int]:
        """Inside a write transaction: remove one person's rows and their names from the audit rows.
        Returns (their names now and before renames, audit rows anonymised)."""
        conn.execute("DELETE FROM images WHERE person_id = ?", (person.id,))
        conn.execute("DELETE FROM templates WHERE person_id = ?", (person.id,))
        conn.execute("DELETE FROM people WHERE id = ?", (person.id,))
        names = _names_of(conn, person.name)
        return names, self._erase_from_audit(conn, names)

    def _erase_elsewhere(self, names: list[str], *homes: Path) -> None:
        """After an erasure committed: the WAL truncated, then `names` erased from the event files and the
        photo libraries of this store's data home (and of `homes`), and this store's whole erasure ledger
        applied to the copy of it a forced restore kept (<store>.before-restore), when there is one (the whole
        ledger: an erasure interrupted before it reached the copy is caught up)."""
        self.checkpoint()
        for home in dict.fromkeys([self.path.parent, *(Path(h) for h in homes)]):
            erase_from_event_files(home, names)
            erase_door_names(home, names)
        kept = self.path.with_name(self.path.name + BEFORE_RESTORE)
        if kept.is_file():
            try:
                with Store(kept) as old:
                    old.reapply_erasures(self.erasures())
            except StoreError as e:           # a damaged store a restore replaced: say so, the delete stands
                log.warning("%s (the store a restore replaced) cannot be opened (%s), so the person just erased "
                            "may still be in it: delete that file", kept, e)

    def _erase_from_audit(self, conn: sqlite3.Connection, marks: list[str]) -> int:
        """Inside a delete: remove a person's names (now and before renames) from every audit row (the rows
        stay, anonymised: person_name NULL, the names in their details made null or "[erased]"). Returns
        the number of rows changed."""
        names, changes = set(marks), []
        for rid, _, _, pname, details in _audit_mentioning(conn, marks):     # a superset: decided per row
            old = json.loads(details)
            new = scrubbed(old, marks)
            if pname in names or new != old:
                changes.append((None if pname in names else pname,
                                json.dumps(new, ensure_ascii=False, sort_keys=True), rid))
        if changes:
            with _audit_unlocked(conn, "erase"):
                conn.executemany("UPDATE audit SET person_name = ?, details = ? WHERE id = ?", changes)
        return len(changes)

    def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate it; False if readers kept it from finishing."""
        done = truncate_wal(self.conn, str(self.path), "checkpoint the store")
        if not done:
            log.warning("store %s: another process is reading, so the write-ahead log could not be truncated "
                        "yet; SQLite will finish it when that process closes the store", self.path)
        return done

    def touch_seen(self, name: str, ts: float) -> None:
        """Record when a person was last recognised (seconds since the epoch)."""
        name = stored_name(name)
        with self._write(f"update {name!r}") as conn:
            if conn.execute("UPDATE people SET last_seen_at = ? WHERE name = ?", (float(ts), name)).rowcount == 0:
                raise PersonNotFoundError(f"no one named {name!r} is enrolled; see `facegate people list`")

    # -- templates and images --------------------------------------------------------------
    def templates(self, bundle_id: str, metric: str = "cosine") -> TemplateGallery:
        """Every template made with `bundle_id`, as a search-ready TemplateGallery (others are ignored)."""
        rows = self._read("SELECT p.name, p.id, t.embedding, t.dim, t.sealed, t.id FROM templates t "
                          "JOIN people p ON p.id = t.person_id WHERE t.bundle_id = ? ORDER BY p.id, t.id", (bundle_id,))
        if not rows:
            return TemplateGallery.empty(metric)
        dims = {r[3] for r in rows}
        if len(dims) != 1:
            raise StoreError(f"bundle {bundle_id!r} has templates of several sizes {sorted(dims)} in {self.path}; "
                             f"delete and re-enroll the affected people")
        plain = b"".join(self._opened(r[4], r[2], _template_aad(r[5], r[1])) for r in rows)
        matrix = np.frombuffer(plain, dtype="<f4").reshape(len(rows), dims.pop())
        return TemplateGallery(tuple(r[0] for r in rows), tuple(r[1] for r in rows), matrix.astype(np.float32), metric)

    def person_templates(self, name: str, bundle_id: str) -> tuple[list[int], np.ndarray, list[float | None]]:
        """One person's templates made with `bundle_id`, oldest first: (template ids, float32 (T, D) embeddings,
        when each was added by a template update, None for enrolled ones). PersonNotFoundError if unknown."""
        name = stored_name(name)
        found = self._read("SELECT id FROM people WHERE name = ?", (name,))
        if not found:
            raise PersonNotFoundError(f"no one named {name!r} is enrolled; see `facegate people list`")
        pid = found[0][0]
        rows = self._read("SELECT id, embedding, dim, sealed, auto_added_at FROM templates WHERE person_id = ? "
                          "AND bundle_id = ? ORDER BY id", (pid, bundle_id))
        vecs = [np.frombuffer(self._opened(r[3], r[1], _template_aad(r[0], pid)), "<f4") for r in rows]
        dim = rows[0][2] if rows else 0
        return ([int(r[0]) for r in rows], np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32),
                [r[4] for r in rows])

    def add_auto_template(self, name: str, embedding: np.ndarray, bundle_id: str, embedder: str,
                          drop: Sequence[int] = (), **details) -> int:
        """Add one template learnt at the door to `name`, flagged as auto-added now, and delete the auto-added
        templates `drop` (the per-person bound), in one transaction with one 'template_added' audit row
        {"template_id", "dropped": [...], **details} (details: plain JSON, no biometric data).
        Returns the new template's id. Enrolled templates are never dropped (InvalidTemplateError)."""
        name = stored_name(name)
        emb, _, _ = checked_templates(np.asarray(embedding).reshape(1, -1), bundle_id, embedder, None, None)
        with self._write(f"add a template to {name!r}") as conn:
            pid = self._person_id(conn, name)
            row = conn.execute("SELECT dim FROM templates WHERE bundle_id = ? LIMIT 1", (bundle_id,)).fetchone()
            if row is not None and row[0] != emb.shape[1]:
                raise InvalidTemplateError(f"bundle {bundle_id!r} has {row[0]}-dimensional templates, not "
                                           f"{emb.shape[1]}")
            for tid in drop:
                if conn.execute("DELETE FROM templates WHERE id = ? AND person_id = ? AND auto_added_at IS NOT NULL",
                                (int(tid), pid)).rowcount != 1:
                    raise InvalidTemplateError(f"template {tid} is not an auto-added template of {name!r}; nothing "
                                               f"changed")
            now = self._clock()
            tid = self._insert_template(conn, pid, emb[0], embedder, bundle_id, None, now)
            conn.execute("UPDATE templates SET auto_added_at = ? WHERE id = ?", (now, tid))
            self._append_audit(conn, "template_added", name, {"template_id": tid, "dropped": [int(t) for t in drop],
                                                              **details})
        return tid

    def undo_auto_templates(self, name: str, all_of_them: bool = False) -> list[int]:
        """Delete `name`'s newest auto-added template (every one with `all_of_them`); one 'template_undone'
        audit row {"template_ids": [...]}. Returns the deleted ids (empty: there were none, nothing logged)."""
        name = stored_name(name)
        with self._write(f"undo template updates of {name!r}") as conn:
            pid = self._person_id(conn, name)
            ids = [r[0] for r in conn.execute("SELECT id FROM templates WHERE person_id = ? AND auto_added_at IS NOT "
                                              "NULL ORDER BY auto_added_at DESC, id DESC", (pid,)).fetchall()]
            ids = ids if all_of_them else ids[:1]
            for tid in ids:
                conn.execute("UPDATE images SET template_id = NULL WHERE template_id = ?", (tid,))
                conn.execute("DELETE FROM templates WHERE id = ?", (tid,))
            if ids:
                self._append_audit(conn, "template_undone", name, {"template_ids": ids})
        if ids:
            self.checkpoint()
        return ids

    def stale_templates(self, bundle_id: str) -> dict[str, int]:
        """{name: count} of templates made with another bundle: those people must re-enroll.

        Such templates are never compared with this bundle's embeddings.
        """
        rows = self._read("SELECT p.name, count(*) FROM templates t JOIN people p ON p.id = t.person_id "
                          "WHERE t.bundle_id != ? GROUP BY p.id ORDER BY p.name", (bundle_id,))
        return {name: count for name, count in rows}

    def kept_crops(self, bundle_id: str) -> list[tuple[int, str, str, bytes]]:
        """(template id, person name, embedder, JPEG crop) of every template made with another
        bundle whose aligned face crop was kept, oldest first; the candidates for re-embedding."""
        rows = self._read("SELECT t.id, p.name, t.embedder, i.jpeg, i.sealed, i.id, p.id FROM templates t "
                          "JOIN people p ON p.id = t.person_id JOIN images i ON i.template_id = t.id "
                          "WHERE t.bundle_id != ? ORDER BY t.id", (bundle_id,))
        return [(int(r[0]), r[1], r[2], self._opened(r[4], r[3], _image_aad(r[5], r[6]))) for r in rows]

    def replace_templates(self, bundle_id: str, embedder: str, new: dict[int, np.ndarray]) -> int:
        """Swap old templates for re-embedded ones in one transaction.

        Args:
            new: {old template id: float32 (D,) embedding of its kept crop by `bundle_id`'s embedder}.
        Each old row is replaced by a row of `bundle_id` (its image relinked, its quality kept) and
        deleted; one 'reembed' audit row per person. Returns the number of templates replaced.
        """
        if not new:
            return 0
        vecs = {int(k): np.ascontiguousarray(np.asarray(v).reshape(-1), dtype="<f4") for k, v in new.items()}
        for v in vecs.values():
            if v.size < 1 or not np.all(np.isfinite(v)):
                raise InvalidTemplateError("re-embedded template is empty or holds NaN/infinite values")
        dims = {v.size for v in vecs.values()}
        if len(dims) != 1:
            raise InvalidTemplateError(f"re-embedded templates have several sizes {sorted(dims)}")
        dim = dims.pop()
        with self._write("re-embed templates") as conn:
            row = conn.execute("SELECT dim FROM templates WHERE bundle_id = ? LIMIT 1", (bundle_id,)).fetchone()
            if row is not None and row[0] != dim:
                raise InvalidTemplateError(f"bundle {bundle_id!r} has {row[0]}-dimensional templates but the "
                                           f"re-embedded ones have {dim}")
            now, per_person = self._clock(), {}
            for old, v in vecs.items():
                found = conn.execute("SELECT t.person_id, t.quality, p.name FROM templates t JOIN people p "
                                     "ON p.id = t.person_id WHERE t.id = ?", (old,)).fetchone()
                if found is None:
                    raise InvalidTemplateError(f"template {old} no longer exists (deleted meanwhile?); nothing changed")
                pid, quality, name = found
                tid = self._insert_template(conn, pid, v, embedder, bundle_id, quality, now)
                conn.execute("UPDATE images SET template_id = ? WHERE template_id = ?", (tid, old))
                conn.execute("DELETE FROM templates WHERE id = ?", (old,))
                per_person[name] = per_person.get(name, 0) + 1
            for name, n in per_person.items():
                self._append_audit(conn, "reembed", name, {"templates": n, "bundle_id": bundle_id,
                                                           "embedder": embedder})
        return len(vecs)

    def images(self, name: str) -> list[bytes]:
        """A person's stored JPEG images, oldest first."""
        name = stored_name(name)
        rows = self._read("SELECT p.id, i.jpeg, i.sealed, i.id FROM people p LEFT JOIN images i ON i.person_id = p.id "
                          "WHERE p.name = ? ORDER BY i.id", (name,))
        if not rows:
            raise PersonNotFoundError(f"no one named {name!r} is enrolled; see `facegate people list`")
        return [self._opened(r[2], r[1], _image_aad(r[3], r[0])) for r in rows if r[1] is not None]

    # -- audit -----------------------------------------------------------------------------
    def log(self, event: str, person_name: str | None = None, **details) -> None:
        """Append one audit row (details: JSON values). Audit rows are never changed nor removed, except
        by retention (`prune_audit`) and by the erasure of a deleted person's name (`delete`)."""
        if person_name is not None:
            person_name = unicodedata.normalize("NFC", str(person_name).strip())
        with self._write(f"log {event!r}") as conn:
            self._append_audit(conn, event, person_name, details)

    def rekey(self, old: SealKey | None, new: SealKey | None) -> tuple[int, int]:
        """Re-seal every template and kept crop with `new` (None: store them plain), opening the sealed
        ones with `old`, in one transaction; one 'rekey' audit row. Plain rows are sealed too. Returns
        (templates, crops) rewritten. StoreLockedError (nothing changed) when a row does not open with `old`.
        """
        def opened(blob, plain, aad):
            if blob is None:
                return bytes(plain)
            if old is None:
                raise StoreLockedError(f"{aad} is encrypted (key {blob_key_id(blob)}); give the key file it was "
                                       f"encrypted with (--old); nothing was changed")
            try:
                return old.open(blob, aad)
            except SealedDataError as e:
                raise StoreLockedError(f"{e}; nothing was changed") from None

        with self._write("re-encrypt the templates and face crops") as conn:
            ts = conn.execute("SELECT id, person_id, embedding, sealed FROM templates").fetchall()
            for tid, pid, emb, sealed in ts:
                plain = opened(sealed, emb, _template_aad(tid, pid))
                conn.execute("UPDATE templates SET embedding = ?, sealed = ? WHERE id = ?",
                             (plain, None, tid) if new is None else
                             (bytes(len(plain)), new.seal(plain, _template_aad(tid, pid)), tid))
            ims = conn.execute("SELECT id, person_id, jpeg, sealed FROM images").fetchall()
            for iid, pid, jpeg, sealed in ims:
                plain = opened(sealed, jpeg, _image_aad(iid, pid))
                conn.execute("UPDATE images SET jpeg = ?, sealed = ? WHERE id = ?",
                             (plain, None, iid) if new is None else (b"", new.seal(plain, _image_aad(iid, pid)), iid))
            self._append_audit(conn, "rekey", None, {"from": old.id if old else None, "to": new.id if new else None,
                                                     "templates": len(ts), "images": len(ims)})
        self.key = new
        self.checkpoint()
        return len(ts), len(ims)

    def subject_record(self, name: str) -> dict:
        """Everything the store holds about one person, for a subject-access request (see subject_access.py).

        Returns {"person": Person fields, "names": [this name and the names it had before renames],
        "templates": [{"id", "bundle_id", "embedder", "dim", "quality", "created_at", "embedding":
        float32 (D,) array}], "images": [{"id", "template_id", "created_at", "jpeg": bytes}],
        "audit": [AuditRow of every row naming them, oldest first]}. Sealed rows are opened.
        """
        name = stored_name(name)
        person = self.person(name)
        try:
            names = _names_of(self.conn, name)
            audit = [AuditRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in _audit_mentioning(self.conn, names)
                     if r[3] in names or names_in(json.loads(r[4]), names)]
        except sqlite3.Error as e:
            raise translate_error(e, str(self.path), "read the store") from e
        templates = [{"id": r[0], "bundle_id": r[1], "embedder": r[2], "dim": r[3], "quality": r[4],
                      "created_at": r[5], "embedding": np.frombuffer(
                          self._opened(r[7], r[6], _template_aad(r[0], person.id)), "<f4").astype(np.float32)}
                     for r in self._read("SELECT id, bundle_id, embedder, dim, quality, created_at, embedding, sealed "
                                         "FROM templates WHERE person_id = ? ORDER BY id", (person.id,))]
        images = [{"id": r[0], "template_id": r[1], "created_at": r[2],
                   "jpeg": self._opened(r[4], r[3], _image_aad(r[0], person.id))}
                  for r in self._read("SELECT id, template_id, created_at, jpeg, sealed FROM images "
                                      "WHERE person_id = ? ORDER BY id", (person.id,))]
        return {"person": dict(person.__dict__), "names": names, "templates": templates, "images": images,
                "audit": audit}

    def prune_audit(self, before: float) -> int:
        """Remove the audit rows written before Unix time `before` (the [privacy] keep_audit_days retention);
        one 'audit_pruned' row {"rows", "before"} records it. Returns the rows removed."""
        with self._write("prune the audit log") as conn:
            with _audit_unlocked(conn, "retention"):
                n = conn.execute("DELETE FROM audit WHERE ts < ?", (float(before),)).rowcount
            if n:
                self._append_audit(conn, "audit_pruned", None, {"rows": n, "before": float(before)})
        if n:
            self.checkpoint()
        return n

    def audit(self, limit: int = 100, event: str | None = None, since: float | None = None,
              until: float | None = None, person: str | None = None) -> list[AuditRow]:
        """The newest audit rows first, at most `limit`, optionally one event kind, one person's
        name, from `since` on and before `until`."""
        where, params = [], []
        if event is not None:
            where.append("event = ?")
            params.append(event)
        if since is not None:
            where.append("ts >= ?")
            params.append(float(since))
        if until is not None:
            where.append("ts < ?")
            params.append(float(until))
        if person is not None:
            where.append("person_name = ?")
            params.append(unicodedata.normalize("NFC", person.strip()))
        sql = "SELECT id, ts, event, person_name, details FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        return [AuditRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in self._read(sql, params)]


def _template_aad(tid: int, pid: int) -> str:
    """What a sealed template is bound to: its row and its person."""
    return f"template {int(tid)} of person {int(pid)}"


def _image_aad(iid: int, pid: int) -> str:
    """What a sealed kept crop is bound to: its row and its person."""
    return f"image {int(iid)} of person {int(pid)}"


@contextmanager
def _audit_unlocked(conn: sqlite3.Connection, why: str) -> Iterator[None]:
    """Inside a write transaction: audit rows may be changed or removed until the block ends (the
    append-only triggers yield while audit_unlock holds a row, which no other connection ever sees)."""
    conn.execute("INSERT INTO audit_unlock (why) VALUES (?)", (why,))
    try:
        yield
    finally:
        conn.execute("DELETE FROM audit_unlock")


def _names_of(conn: sqlite3.Connection, name: str) -> list[str]:
    """`name` and every name the person had before (followed back through the 'rename' audit rows), sorted."""
    names, todo = set(), [name]
    while todo:
        n = todo.pop()
        names.add(n)
        for (details,) in conn.execute("SELECT details FROM audit WHERE event = 'rename' AND person_name = ?", (n,)):
            old = json.loads(details).get("from")
            if isinstance(old, str) and old and old not in names:
                todo.append(old)
    return sorted(names)


def _audit_mentioning(conn: sqlite3.Connection, names: Sequence[str]) -> list[tuple]:
    """(id, ts, event, person_name, details) of every audit row whose person or details name one of `names`."""
    where = " OR ".join([f"person_name IN ({','.join('?' * len(names))})"] + ["instr(details, ?) > 0"] * len(names))
    return conn.execute(f"SELECT id, ts, event, person_name, details FROM audit WHERE {where} ORDER BY id",
                        list(names) * 2).fetchall()
