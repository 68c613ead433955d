"""Encryption at rest of templates and kept face crops: AES-256-GCM with a key kept outside the data home.

A sealed blob is  b"FGE1" | key id (8 bytes) | nonce (12 bytes) | ciphertext | tag (16 bytes).
The key id (the first 8 bytes of SHA-256 over a label and the key) names the key that sealed it, so a
wrong key file gives "sealed with key <id>, the key file holds <id2>" instead of garbage. Every blob
has its own random nonce, and its associated data names its row ("template 7 of person 3"), so a blob
copied onto another row does not open. The `cryptography` package is needed only when a key is used
(pip install facegate[crypto]).
"""
from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FacegateError

KEY_BYTES = 32                  # AES-256
MAGIC = b"FGE1"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES
KEY_FILE_MODE = 0o400
_KEY_ID_LABEL = b"facegate key id v1\0"


class KeyFileError(FacegateError):
    """The key file is missing, unreadable, not a key, or readable by others."""


class SealedDataError(FacegateError):
    """Sealed data cannot be opened: another key sealed it, it was damaged, or it belongs to another row."""


def _aesgcm():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as e:
        raise KeyFileError("encryption at rest ([privacy] key_file) needs the cryptography package: "
                           "pip install 'facegate[crypto]' (or pip install cryptography)") from e
    return AESGCM


@dataclass(frozen=True)
class SealKey:
    """A 32-byte AES-256-GCM key and its id (16 hex digits); `source` says where it came from."""

    key: bytes = field(repr=False)
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise KeyFileError(f"a key must be {KEY_BYTES} bytes")

    @property
    def id(self) -> str:
        return key_id_of(self.key)

    def seal(self, data: bytes, aad: str) -> bytes:
        """`data` encrypted and authenticated, bound to `aad` (the row it belongs to)."""
        nonce = os.urandom(NONCE_BYTES)
        body = _aesgcm()(self.key).encrypt(nonce, bytes(data), aad.encode())
        return MAGIC + bytes.fromhex(self.id) + nonce + body

    def open(self, blob: bytes, aad: str) -> bytes:
        """The plain bytes of a blob sealed for `aad`; SealedDataError naming the row and the keys otherwise."""
        blob = bytes(blob)
        if not is_sealed(blob):
            raise SealedDataError(f"{aad} is not sealed data (damaged row?)")
        sealed_by = blob_key_id(blob)
        if sealed_by != self.id:
            raise SealedDataError(f"{aad} was encrypted with key {sealed_by}, but the key file {self.source} holds "
                                  f"key {self.id}: set [privacy] key_file to the key it was encrypted with (or "
                                  f"re-encrypt with `facegate privacy rotate-key --old OLD --new NEW`)")
        from cryptography.exceptions import InvalidTag

        try:
            return _aesgcm()(self.key).decrypt(blob[len(MAGIC) + KEY_ID_BYTES:HEADER_BYTES], blob[HEADER_BYTES:],
                                               aad.encode())
        except InvalidTag:
            raise SealedDataError(f"{aad} does not open with key {self.id}: the data was altered or copied from "
                                  f"another row") from None


def key_id_of(key: bytes) -> str:
    """16 hex digits naming a key (a hash prefix; reveals nothing usable about the key)."""
    return hashlib.sha256(_KEY_ID_LABEL + key).digest()[:KEY_ID_BYTES].hex()


def is_sealed(blob: bytes | None) -> bool:
    return blob is not None and len(blob) >= HEADER_BYTES + TAG_BYTES and bytes(blob[:len(MAGIC)]) == MAGIC


def blob_key_id(blob: bytes) -> str:
    """The id of the key that sealed `blob`."""
    return bytes(blob[len(MAGIC):len(MAGIC) + KEY_ID_BYTES]).hex()


def load_key(path: str | Path, home: str | Path | None = None) -> SealKey:
    """Read a key file: 32 raw bytes or their base64 text (a trailing newline is fine).

    Refused with KeyFileError: a missing or unreadable file, a file that group or others may read or
    write (chmod 400), anything that is not 32 bytes, and a file inside the data home `home` (the key
    must not sit next to what it protects, nor travel in its backups).
    """
    path = Path(path).expanduser()
    if home is not None:
        h = Path(home).resolve()
        if path.resolve() == h or h in path.resolve().parents:
            raise KeyFileError(f"the key file {path} is inside the data home {h}: keep it elsewhere (e.g. "
                               f"/etc/facegate/key or a systemd credential), so backups of the data home do not "
                               f"carry the key")
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"the key file {path} ([privacy] key_file) does not exist; the templates cannot be "
                           f"read without it. Restore it, or create a new one with `facegate privacy init-key "
                           f"{path}` for a new store") from None
    except OSError as e:
        raise KeyFileError(f"cannot read the key file {path}: {e.strerror}; it must be readable by the facegate "
                           f"user only") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"the key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(f"the key file {path} has mode {stat.S_IMODE(st.st_mode):o}: group or others may read "
                           f"it; run chmod 400 {path}")
    key = raw if len(raw) == KEY_BYTES else _b64_key(raw)
    if key is None:
        raise KeyFileError(f"the key file {path} does not hold a key: expected {KEY_BYTES} random bytes or their "
                           f"base64 text, got {len(raw)} bytes; `facegate privacy init-key FILE` writes one")
    return SealKey(key, str(path))


def _b64_key(raw: bytes) -> bytes | None:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES else None


def write_new_key(path: str | Path) -> SealKey:
    """Create `path` (mode 0400, refused if it exists) holding a new random key as base64 text."""
    path = Path(path).expanduser()
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; a key file is never overwritten (the data sealed with it would be "
                           f"lost): choose another path") from None
    except OSError as e:
        raise KeyFileError(f"cannot create the key file {path}: {e.strerror}") from None
    try:
        os.write(fd, base64.b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, KEY_FILE_MODE)
    return SealKey(key, str(path))


def key_for(privacy, home: str | Path | None) -> SealKey | None:
    """The key of a [privacy] config section (None when key_file is unset)."""
    return None if privacy.key_file is None else load_key(privacy.key_file, home)
