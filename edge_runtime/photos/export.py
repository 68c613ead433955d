"""Exporting the sorting: one folder per person of symlinks (or copies) of their photos, and a JSON map.

The JSON is {"people": {"<name or id>": ["<photo path>", ...]}, "unsorted": ["<photo path>", ...]}: a
photo with several people appears under each of them; "unsorted" lists photos with a face in no person.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..files import atomic_write_bytes
from .db import PhotoDB, PhotoLibraryError
from .xmp import photo_regions, read_orientation, sidecar_path, sidecar_xml


def sorting(db: PhotoDB) -> dict:
    """The JSON map above; people keyed by their name, or their id when unnamed (or when two share a name:
    "<name> (<id>)"), photo paths sorted."""
    rows = db.read("SELECT DISTINCT p.id, p.name, ph.path FROM faces f JOIN people p ON p.id = f.person_id "
                   "JOIN photos ph ON ph.id = f.photo_id ORDER BY p.id, ph.path")
    names = {}
    for pid, name, _ in rows:
        names.setdefault(pid, name)
    counts = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    key = {pid: (str(pid) if n is None else n if counts[n] == 1 else f"{n} ({pid})") for pid, n in names.items()}
    people: dict[str, list[str]] = {}
    for pid, _, path in rows:
        people.setdefault(key[pid], []).append(path)
    unsorted = [r[0] for r in db.read("SELECT DISTINCT ph.path FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                                      "WHERE f.person_id IS NULL ORDER BY ph.path")]
    return {"people": people, "unsorted": unsorted}


def safe_folder_name(key: str) -> str:
    """A person key as one folder name: no path separators, no leading dots."""
    name = "".join("_" if ch in "/\\\0" else ch for ch in key).strip().lstrip(".")
    return name or "_"


def export_folders(db: PhotoDB, out: str | Path, mode: str = "link", json_file: str | Path | None = None,
                   xmp: bool = False) -> dict:
    """Write OUT/<person>/<photo file name> for every person's photos (and OUT/unsorted) as symlinks
    (mode "link") or copies ("copy"); existing entries are left as they are. With `xmp`, each exported
    photo also gets an XMP sidecar next to it (<file name>.xmp, rewritten on every export) with the face
    regions of all the people in it (xmp.py). Returns the sorting map."""
    if mode not in ("link", "copy"):
        raise ValueError(f"mode must be 'link' or 'copy', got {mode!r}")
    data = sorting(db)
    regions = photo_regions(db) if xmp else {}
    orientations: dict[str, int] = {}
    out = Path(out)
    try:
        for key, paths in [*data["people"].items(), ("unsorted", data["unsorted"])]:
            folder = out / safe_folder_name(key)
            folder.mkdir(parents=True, exist_ok=True)
            for src in paths:
                dest = _place(Path(src), folder, mode)
                if src in regions:
                    if src not in orientations:
                        orientations[src] = read_orientation(src)
                    atomic_write_bytes(sidecar_path(dest), sidecar_xml(regions[src], orientations[src]))
        if json_file is not None:
            atomic_write_bytes(json_file, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
    except OSError as e:
        raise PhotoLibraryError(f"cannot export to {e.filename or out}: {e.strerror or e}; choose a writable "
                                f"folder") from e
    return data


def _place(src: Path, folder: Path, mode: str) -> Path:
    """Link or copy `src` into `folder`; a different photo with the same file name gets a numbered name.
    Returns where it is in `folder`."""
    dest = folder / src.name
    n = 1
    while os.path.lexists(dest):
        if dest.is_symlink() and os.readlink(dest) == str(src):
            return dest
        if mode == "copy" and dest.is_file() and not dest.is_symlink() and dest.stat().st_size == src.stat().st_size:
            return dest
        dest = folder / f"{src.stem}_{n}{src.suffix}"
        n += 1
    if mode == "link":
        os.symlink(src, dest)
    else:
        shutil.copy2(src, dest)
    return dest
