"""The admin page's own SQLite file (`admin.db` in the data home): administrators, login sessions,
API tokens, failed-login counters and a few settings.

Kept apart from the enrollment store so credentials and biometric data never share a file, and
so a store backup never carries password hashes. Same rules as the store (both use sqlite_db.py):
mode 0o600, WAL, busy_timeout, one `BEGIN IMMEDIATE` transaction per write, schema steps in PRAGMA
user_version; unlike the store, every commit is synced to disk (synchronous=FULL).
Secrets (session ids, API tokens, the setup token) are stored only as SHA-256 hashes; passwords
as werkzeug scrypt hashes.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from werkzeug.security import check_password_hash, generate_password_hash

from ..sqlite_db import BUSY_TIMEOUT_MS, SQLiteFile, StoreError

ADMIN_FILE = "admin.db"
PASSWORD_METHOD = "scrypt"
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
USERNAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
TOKEN_PREFIX = "fgt_"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE admins (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            password_changed_at REAL NOT NULL
        )""",
        """CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,
            admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            last_seen_at REAL NOT NULL
        )""",
        """CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            created_by TEXT,
            created_at REAL NOT NULL,
            last_used_at REAL,
            revoked_at REAL
        )""",
        """CREATE TABLE login_attempts (
            key TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            last_failure_at REAL NOT NULL,
            locked_until REAL NOT NULL
        )""",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
)


class AdminDBError(StoreError):
    """The admin database cannot do what was asked."""


class BadPasswordError(AdminDBError, ValueError):
    """A new password is too short, too long or does not match its confirmation."""


class BadUsernameError(AdminDBError, ValueError):
    """A username is empty, too long or holds characters other than letters, digits and . _ @ -."""


class AdminExistsError(AdminDBError):
    """An administrator with that username already exists."""


@dataclass(frozen=True)
class Admin:
    id: int
    username: str
    password_changed_at: float


@dataclass(frozen=True)
class ApiToken:
    """An API token as listed (never the token itself; `hint` is its first characters)."""

    id: int
    name: str
    hint: str
    created_by: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Backoff:
    """How a failed-login counter closes: after `after` failures, for `first_s` seconds, doubling with
    every further failure up to `max_s`."""

    after: int
    first_s: float
    max_s: float

    def closed_for(self, failures: int) -> float:
        """Seconds the counter stays closed after its `failures`-th failure (0 below `after`)."""
        if failures < self.after:
            return 0.0
        doublings = min(failures - self.after, 64)      # past any cap already; 2.0 ** n cannot overflow
        return min(self.max_s, self.first_s * 2.0 ** doublings)


def digest(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (session id, API token, setup token)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_username(username: str) -> str:
    """The username stripped; BadUsernameError unless 1..64 letters, digits or . _ @ -."""
    u = (username or "").strip()
    if not USERNAME_RE.match(u):
        raise BadUsernameError(f"the username {u!r} is not allowed: use 1 to 64 letters, digits or . _ @ -")
    return u


def check_password(password: str) -> str:
    """The password unchanged; BadPasswordError if it is shorter than 10 or longer than 1024 characters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise BadPasswordError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise BadPasswordError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


class AdminDB(SQLiteFile):
    """The admin database; one connection, so use one object per thread (the app opens one per request)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        super().__init__(path, MIGRATIONS, what="the admin database", synchronous="FULL",
                         busy_timeout_ms=busy_timeout_ms, error=AdminDBError)
        self.clock = clock

    def _one(self, sql: str, params=()) -> tuple | None:
        return self.conn.execute(sql, params).fetchone()

    # -- settings --------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM settings WHERE key = ?", (key,))
        return row[0] if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        with self.write(f"save setting {key}") as c:
            if value is None:
                c.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                c.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def secret_key(self) -> str:
        """The key that signs session cookies: made once, kept so restarts do not log everyone out."""
        with self.write("create the cookie signing key") as c:
            row = c.execute("SELECT value FROM settings WHERE key = 'secret_key'").fetchone()
            if row:
                return row[0]
            key = secrets.token_hex(32)
            c.execute("INSERT INTO settings (key, value) VALUES ('secret_key', ?)", (key,))
            return key

    # -- administrators --------------------------------------------------------------------
    def admin_count(self) -> int:
        return self._one("SELECT count(*) FROM admins")[0]

    def admin(self, admin_id: int) -> Admin | None:
        row = self._one("SELECT id, username, password_changed_at FROM admins WHERE id = ?", (admin_id,))
        return Admin(*row) if row else None

    def create_admin(self, username: str, password: str, *, only_if_none: bool = False) -> Admin:
        """Add an administrator. AdminExistsError if the name is taken (or, with only_if_none, any admin exists)."""
        username, password = check_username(username), check_password(password)
        pw_hash = generate_password_hash(password, method=PASSWORD_METHOD)
        now = self.clock()
        with self.write(f"create administrator {username!r}") as c:
            if only_if_none and c.execute("SELECT count(*) FROM admins").fetchone()[0]:
                raise AdminExistsError("an administrator already exists; log in instead")
            if c.execute("SELECT 1 FROM admins WHERE username = ?", (username,)).fetchone():
                raise AdminExistsError(f"an administrator named {username!r} already exists; use "
                                       f"`facegate admin init --reset` to set a new password")
            aid = c.execute("INSERT INTO admins (username, password_hash, created_at, password_changed_at) "
                            "VALUES (?, ?, ?, ?)", (username, pw_hash, now, now)).lastrowid
            c.execute("DELETE FROM settings WHERE key = 'setup_token'")
        return Admin(aid, username, now)

    def set_password(self, username: str, password: str) -> Admin:
        """Replace an administrator's password and end all their sessions."""
        password = check_password(password)
        pw_hash = generate_password_hash(password, method=PASSWORD_METHOD)
        now = self.clock()
        with self.write(f"change the password of {username!r}") as c:
            row = c.execute("SELECT id, username FROM admins WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise AdminDBError(f"no administrator named {username!r}; run `facegate admin init` to create one")
            c.execute("UPDATE admins SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                      (pw_hash, now, row[0]))
            c.execute("DELETE FROM sessions WHERE admin_id = ?", (row[0],))
        return Admin(row[0], row[1], now)

    def authenticate(self, username: str, password: str) -> Admin | None:
        """The administrator if the password is right, else None (same work either way: no user probing)."""
        row = self._one("SELECT id, username, password_hash, password_changed_at FROM admins WHERE username = ?",
                        ((username or "").strip(),))
        stored = row[2] if row else self._dummy_hash()
        ok = check_password_hash(stored, password or "")
        return Admin(row[0], row[1], row[3]) if row and ok else None

    def _dummy_hash(self) -> str:
        h = self.setting("dummy_hash")
        if h is None:
            h = generate_password_hash(secrets.token_hex(16), method=PASSWORD_METHOD)
            self.set_setting("dummy_hash", h)
        return h

    # -- setup token -----------------------------------------------------------------------
    def new_setup_token(self) -> str:
        """A fresh one-time token that lets the first administrator be created in the browser."""
        token = secrets.token_urlsafe(18)
        self.set_setting("setup_token", digest(token))
        return token

    def check_setup_token(self, token: str) -> bool:
        stored = self.setting("setup_token")
        return bool(stored and token) and secrets.compare_digest(stored, digest(token.strip()))

    # -- sessions --------------------------------------------------------------------------
    def create_session(self, admin_id: int) -> str:
        """A new login session; returns its id (kept only in the signed cookie, hashed here)."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self.write("start a session") as c:
            c.execute("INSERT INTO sessions (id_hash, admin_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
                      (digest(sid), admin_id, now, now))
        return sid

    def session_admin(self, sid: str, idle_s: float, max_age_s: float) -> Admin | None:
        """The administrator of a live session (touching it), or None if unknown, idle too long or too old."""
        now = self.clock()
        row = self._one("SELECT admin_id, created_at, last_seen_at FROM sessions WHERE id_hash = ?", (digest(sid),))
        if row is None:
            return None
        if now - row[2] > idle_s or now - row[1] > max_age_s:
            self.end_session(sid)
            return None
        if now - row[2] > 30:     # at most one write per half minute per session
            with self.write("refresh the session") as c:
                c.execute("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", (now, digest(sid)))
        return self.admin(row[0])

    def end_session(self, sid: str) -> None:
        with self.write("end the session") as c:
            c.execute("DELETE FROM sessions WHERE id_hash = ?", (digest(sid),))

    # -- API tokens ------------------------------------------------------------------------
    def create_token(self, name: str, created_by: str | None) -> tuple[str, ApiToken]:
        """A new API token: (the token, shown once; its listing). Only its SHA-256 is stored."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise AdminDBError("give the token a name of 1 to 100 characters (what uses it, e.g. 'door panel')")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        with self.write("create an API token") as c:
            tid = c.execute("INSERT INTO api_tokens (name, token_hash, hint, created_by, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", (name, digest(token), token[:8], created_by, now)).lastrowid
        return token, ApiToken(tid, name, token[:8], created_by, now, None, None)

    def tokens(self) -> list[ApiToken]:
        rows = self.conn.execute("SELECT id, name, hint, created_by, created_at, last_used_at, revoked_at "
                                 "FROM api_tokens ORDER BY id").fetchall()
        return [ApiToken(*r) for r in rows]

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revoke a token for good (kept in the list, marked revoked). AdminDBError if unknown."""
        with self.write("revoke an API token") as c:
            if c.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                         (self.clock(), int(token_id))).rowcount == 0:
                raise AdminDBError(f"no API token with id {token_id}; see the token list")
            row = c.execute("SELECT id, name, hint, created_by, created_at, last_used_at, revoked_at "
                            "FROM api_tokens WHERE id = ?", (int(token_id),)).fetchone()
        return ApiToken(*row)

    def token_for(self, token: str) -> ApiToken | None:
        """The active token matching a presented Bearer token (recording its use), else None."""
        row = self._one("SELECT id, name, hint, created_by, created_at, last_used_at, revoked_at FROM api_tokens "
                        "WHERE token_hash = ? AND revoked_at IS NULL", (digest(token),))
        if row is None:
            return None
        now = self.clock()
        if row[5] is None or now - row[5] > 30:
            with self.write("record API token use") as c:
                c.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row[0]))
        return ApiToken(*row)

    # -- failed logins ---------------------------------------------------------------------
    def begin_login_attempt(self, counters: Sequence[tuple[str, Backoff]], forget_s: float) -> tuple[float, dict]:
        """Check and charge one login attempt in a single write transaction (BEGIN IMMEDIATE).

        Parallel attempts therefore cannot all pass the check before any of them is recorded.
        Args:
            counters: (key, Backoff) of every failed-login counter the attempt is charged to.
            forget_s: a counter whose last failure is older than this starts again from 0.
        Returns:
            (wait, {}) with wait > 0, nothing charged, while any counter is closed: the seconds until
            all are open; else (0, {key: seconds it is now closed}) after counting the attempt as a
            failure against every counter, before the password is checked (`end_login_attempt`
            takes it back when the password was right).
        """
        with self.write("check the login throttle") as c:
            now = self.clock()                  # under the write lock: attempts are timed in the order they run
            c.execute("DELETE FROM login_attempts WHERE last_failure_at < ? AND locked_until <= ?",
                      (now - forget_s, now))
            rows = {k: c.execute("SELECT failures, locked_until FROM login_attempts WHERE key = ?", (k,)).fetchone()
                    for k, _ in counters}
            wait = max((r[1] - now for r in rows.values() if r is not None and r[1] > now), default=0.0)
            if wait > 0:
                return wait, {}
            closed = {}
            for key, backoff in counters:
                failures = 1 if rows[key] is None else rows[key][0] + 1
                closed[key] = backoff.closed_for(failures)
                c.execute("INSERT INTO login_attempts (key, failures, last_failure_at, locked_until) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, "
                          "last_failure_at = excluded.last_failure_at, locked_until = excluded.locked_until",
                          (key, failures, now, now + closed[key] if closed[key] > 0 else 0.0))
        return 0.0, closed

    def end_login_attempt(self, clear: Sequence[str], refund: Sequence[str]) -> None:
        """The attempt charged by `begin_login_attempt` was right: forget the counters in `clear` and
        take the attempt's failure back from those in `refund` (their other failures still count).

        A refunded counter opens again: it was open when the attempt was charged (else the attempt
        would have been refused), so only this attempt's own charge can have closed it.
        """
        with self.write("reset failed logins") as c:
            c.executemany("DELETE FROM login_attempts WHERE key = ?", [(k,) for k in clear])
            c.executemany("UPDATE login_attempts SET failures = max(failures - 1, 0), locked_until = 0 "
                          "WHERE key = ?", [(k,) for k in refund])


def admin_db_path(home: Path) -> Path:
    """The admin database inside the data folder."""
    return Path(home) / ADMIN_FILE
