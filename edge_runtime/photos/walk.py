"""Which files a scan looks at: photos below the given folders, symlink loops and unreadable folders
reported, never fatal."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
HEIC_SUFFIXES = (".heic", ".heif")


def heic_supported() -> bool:
    """Whether HEIC/HEIF photos can be read (the optional pillow-heif: pip install 'facegate[heic]')."""
    return importlib.util.find_spec("pillow_heif") is not None


def photo_suffixes() -> tuple[str, ...]:
    """The file endings a scan reads (lower case): JPEG, PNG, WebP, and HEIC/HEIF with pillow-heif."""
    return PHOTO_SUFFIXES + (HEIC_SUFFIXES if heic_supported() else ())


@dataclass
class Listing:
    """What a walk found.

    files: absolute path strings of photos, sorted; problems: (path, reason) of folders or files that
    could not be listed; unreadable_dirs: folders that could not be listed (their known photos are kept).
    """

    files: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)


def list_photos(roots: list[str | Path]) -> Listing:
    """Every photo file at or below `roots` (folders or single files), symlinks followed once.

    A folder reached again through a symlink (a loop, or a second way in) is listed once; folders that
    cannot be read are reported in `problems` and `unreadable_dirs`.
    """
    out, seen_dirs, seen_files = Listing(), set(), set()
    suffixes = photo_suffixes()
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isfile(root):
            _add_file(root, suffixes, out, seen_files)
        elif os.path.isdir(root):
            _walk_dir(root, suffixes, out, seen_dirs, seen_files)
        else:
            out.problems.append((root, "no such file or folder"))
    out.files.sort()
    return out


def _walk_dir(root: str, suffixes, out: Listing, seen_dirs: set, seen_files: set) -> None:
    def onerror(e: OSError) -> None:
        out.problems.append((e.filename or root, e.strerror or str(e)))
        out.unreadable_dirs.append(e.filename or root)

    for here, dirs, names in os.walk(root, onerror=onerror, followlinks=True):
        try:
            st = os.stat(here)
        except OSError as e:
            out.problems.append((here, e.strerror or str(e)))
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            out.problems.append((here, "folder already listed (symlink loop or second link); skipped"))
            dirs[:] = []
            continue
        seen_dirs.add(key)
        dirs.sort()
        for n in names:
            _add_file(os.path.join(here, n), suffixes, out, seen_files)


def _add_file(path: str, suffixes, out: Listing, seen_files: set) -> None:
    if not path.lower().endswith(suffixes) or path in seen_files:
        return
    seen_files.add(path)
    out.files.append(path)
