"""Durable file writes: a file is either its old content or its new content, never half of each."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically.

    The bytes go to a new temporary file in the same folder, are flushed to disk (fsync) and the
    temporary file is renamed over `path`; a crash or an error at any point leaves the old file
    (or no file) in place, and the temporary file is removed on error. The new file gets the
    permissions a newly created file gets (0o666 less the umask).

    Args:
        path: the file to write; its folder must exist.
        data: the complete new content (bytes, bytearray or memoryview).
    Returns:
        `path` as a Path.
    Raises:
        OSError: the folder is missing or not writable, or the disk is full (the old file is kept).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
