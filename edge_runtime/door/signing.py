"""Signed door messages: what facegate sends to a webhook or MQTT receiver, and how a receiver checks one.

A door message is UTF-8 JSON (compact, keys sorted):

    {"v": 1, "event": "open" | "lock", "person": str | null, "reason": str, "open_s": float,
     "ts": float, "expires": float, "nonce": str}

`ts` is the Unix time (seconds) the door decided; `expires` = ts + the door's timeout_s, after which
the command is void; `nonce` is 32 random hex digits, never reused. The signature is HMAC-SHA256 of
the exact message bytes under the shared secret, written "sha256=<64 hex digits>":

  * webhook: the POST body is the message, the signature is the X-Facegate-Signature header;
  * MQTT: the payload is {"message": "<the message as a JSON string>", "signature": "sha256=..."}.

A receiver calls `verify` (or `verify_mqtt`): signature first (constant-time), then freshness, then
replay. Only the standard library is used, so a receiver can import this module alone.
See docs/door_receivers.md.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from pathlib import Path

from ..errors import FacegateError

VERSION = 1
SIGNATURE_HEADER = "X-Facegate-Signature"
MIN_SECRET_BYTES = 32           # a shared secret shorter than this is refused
DEFAULT_MAX_SKEW_S = 1.0        # how far the sender's and receiver's clocks may disagree
EVENTS = ("open", "lock")


class SignatureError(FacegateError, ValueError):
    """A door message is not signed with the shared secret, is stale, malformed or a replay: ignore it."""


class SecretError(FacegateError):
    """The shared secret file is missing, unreadable, readable by others or too short."""


def read_secret(path: str | Path) -> bytes:
    """The shared secret held in `path`: its bytes without surrounding whitespace.

    Raises SecretError when the file is missing or not a regular file, can be read by the group or by
    others (it must be chmod 600), or holds fewer than MIN_SECRET_BYTES bytes.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SecretError(f"the door secret file {p} is not a regular file")
        if st.st_mode & 0o077:
            raise SecretError(f"the door secret file {p} can be read by others (mode "
                              f"{stat.S_IMODE(st.st_mode):o}); run `chmod 600 {p}`")
        data = p.read_bytes().strip()
    except OSError as e:
        raise SecretError(f"cannot read the door secret file {p}: {e.strerror}; create it with "
                          f"`head -c 32 /dev/urandom | base64 > {p}` and `chmod 600 {p}`") from e
    return check_secret(data, str(p))


def check_secret(secret: bytes, where: str = "the door secret") -> bytes:
    """`secret` if it is bytes of at least MIN_SECRET_BYTES; SecretError naming `where` otherwise."""
    if not isinstance(secret, (bytes, bytearray)):
        raise SecretError(f"{where}: the secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(f"{where} holds {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed "
                          f"(e.g. `head -c 32 /dev/urandom | base64`)")
    return bytes(secret)


def message(event: str, person: str | None, reason: str, open_s: float, valid_s: float,
            now: float | None = None) -> bytes:
    """The exact bytes of one door message (see the module docstring).

    Args:
        event: "open" or "lock".
        person: who the door opens for (None for "lock").
        reason: why, for the receiver's log (e.g. "3 matching frames").
        open_s: seconds the receiver keeps the door unlocked.
        valid_s: seconds after `now` at which the message expires (> 0).
        now: the Unix time of the decision; time.time() when None.
    """
    if event not in EVENTS:
        raise ValueError(f"door message event must be one of {EVENTS}, got {event!r}")
    if not valid_s > 0:
        raise ValueError(f"valid_s must be > 0, got {valid_s!r}")
    ts = time.time() if now is None else float(now)
    body = {"v": VERSION, "event": event, "person": person, "reason": reason, "open_s": float(open_s),
            "ts": ts, "expires": ts + float(valid_s), "nonce": secrets.token_hex(16)}
    return json.dumps(body, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign(data: bytes, secret: bytes) -> str:
    """"sha256=<hex>": HMAC-SHA256 of the exact bytes `data` under `secret`."""
    return "sha256=" + hmac.new(check_secret(secret), data, hashlib.sha256).hexdigest()


def mqtt_payload(data: bytes, secret: bytes) -> bytes:
    """The MQTT payload carrying message `data` and its signature (see the module docstring)."""
    return json.dumps({"message": data.decode("ascii"), "signature": sign(data, secret)},
                      separators=(",", ":")).encode()


class ReplayGuard:
    """Remembers the nonces of accepted messages until they expire, so each is accepted once.

    Thread-safe. Memory: one entry per message accepted within the last (expiry + skew) seconds.
    """

    def __init__(self):
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def accept(self, nonce: str, forget_at: float, now: float) -> None:
        """Record `nonce` until Unix time `forget_at`; SignatureError if it was seen before."""
        with self._lock:
            self._seen = {n: t for n, t in self._seen.items() if t >= now}
            if nonce in self._seen:
                raise SignatureError("replayed door message (its nonce was already used): ignored")
            self._seen[nonce] = forget_at


def verify(data: bytes, signature: str, secret: bytes, *, replay: ReplayGuard, now: float | None = None,
           max_skew_s: float = DEFAULT_MAX_SKEW_S) -> dict:
    """Check one received door message and return it decoded.

    Args:
        data: the exact bytes received (the webhook body, or the MQTT payload's "message" encoded as ASCII).
        signature: the X-Facegate-Signature header, or the MQTT payload's "signature".
        secret: the shared secret (`read_secret`).
        replay: the receiver's one ReplayGuard, kept for its whole life.
        now: the receiver's Unix time; time.time() when None.
        max_skew_s: clock difference tolerated between the kiosk and the receiver.
    Returns:
        {"v", "event", "person", "reason", "open_s", "ts", "expires", "nonce"}.
    Raises:
        SignatureError: bad or missing signature, malformed, not yet valid, expired, or replayed.
    """
    expected = sign(data, secret)
    given = signature.encode("ascii", "replace") if isinstance(signature, str) else b""
    if not hmac.compare_digest(expected.encode(), given):
        raise SignatureError("door message signature does not match the shared secret: ignored")
    msg = _decode(data)
    now = time.time() if now is None else float(now)
    if msg["ts"] > now + max_skew_s:
        raise SignatureError(f"door message is dated {msg['ts'] - now:.1f} s in the future: ignored (check the clocks)")
    if now > msg["expires"] + max_skew_s:
        raise SignatureError(f"door message expired {now - msg['expires']:.1f} s ago: ignored")
    replay.accept(msg["nonce"], msg["expires"] + max_skew_s, now)
    return msg


def verify_mqtt(payload: bytes, secret: bytes, *, replay: ReplayGuard, now: float | None = None,
                max_skew_s: float = DEFAULT_MAX_SKEW_S) -> dict:
    """`verify` for an MQTT payload {"message": str, "signature": str}; same result and errors."""
    try:
        outer = json.loads(payload)
        data, signature = outer["message"].encode("ascii"), outer["signature"]
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise SignatureError(f"not a facegate door payload ({e.__class__.__name__}): ignored") from None
    return verify(data, signature, secret, replay=replay, now=now, max_skew_s=max_skew_s)


def _decode(data: bytes) -> dict:
    """The checked fields of a signed message; SignatureError when any is missing or of the wrong type."""
    try:
        msg = json.loads(data)
    except ValueError:
        raise SignatureError("door message is not JSON: ignored") from None
    kinds = {"v": int, "event": str, "reason": str, "open_s": float, "ts": float, "expires": float, "nonce": str}
    if not isinstance(msg, dict) or "person" not in msg or any(not isinstance(msg.get(k), t) for k, t in kinds.items()):
        raise SignatureError("door message lacks a field or has one of the wrong type: ignored")
    person_ok = msg["person"] is None or isinstance(msg["person"], str)
    if msg["v"] != VERSION or msg["event"] not in EVENTS or not person_ok:
        raise SignatureError(f"door message version {msg['v']!r} / event {msg['event']!r} not understood: ignored")
    return msg


def new_secret_file(path: str | Path) -> Path:
    """Create `path` (mode 0o600, it must not exist) holding a fresh random secret; returns the path."""
    p = Path(path).expanduser()
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_urlsafe(32).encode() + b"\n")
    os.chmod(p, 0o600)
    return p
