"""One scan at a time per photo library: an advisory lock file next to photos.db."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .db import PhotoLibraryError


class ScanBusyError(PhotoLibraryError):
    """Another scan of the same photo library is running."""


@contextmanager
def scan_lock(db_path: Path) -> Iterator[None]:
    """Hold `<photos.db>.scan.lock` exclusively for the block (released when the process dies, too).

    Raises ScanBusyError at once when another process holds it.
    """
    lock = Path(str(db_path) + ".scan.lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ScanBusyError(f"another `facegate photos scan` or `watch` is running on {db_path} (pid {other}); "
                                f"wait for it to finish or stop it, then try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
