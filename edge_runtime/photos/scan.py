"""The incremental, resumable scan: new or changed photos are read, their faces found and embedded.

A file is read again only when its size or mtime changed and then only when its content hash differs
(or it was scanned with another model bundle). Each photo is committed in its own transaction, so a
scan stopped at any moment resumes where it stopped: nothing lost, nothing twice. Photos that are gone
from a scanned folder are dropped. Bad files are recorded with their reason and not read again until
they change. Progress is reported through a callback; the command line draws it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import ImageError
from ..imageio import MAX_FILE_BYTES, MAX_PIXELS, decode_image, encode_jpeg
from ..recognizer import Recognizer
from .db import FaceRecord, PhotoDB
from .lock import scan_lock
from .walk import HEIC_SUFFIXES, list_photos, photo_suffixes

THUMB_SIDE = 96              # face thumbnail: longer side in pixels
THUMB_QUALITY = 80
THUMB_MARGIN = 0.2           # the thumbnail shows this fraction of the box around it

# progress(done, total, path): called after each photo is committed (or skipped); may raise to stop
Progress = Callable[[int, int, str], None]


@dataclass
class ScanReport:
    """What one scan did (counts of photos; `problems` = (path, reason) of files and folders skipped)."""

    found: int = 0
    read: int = 0
    unchanged: int = 0
    removed: int = 0
    faces: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def scan(db: PhotoDB, recognizer: Recognizer, roots: list[str | Path], progress: Progress | None = None) -> ScanReport:
    """Bring the library up to date with the photos at or below `roots` (folders or files).

    Raises ScanBusyError when another scan of this library runs.
    """
    with scan_lock(db.path):
        listing = list_photos(roots)
        report = ScanReport(found=len(listing.files), problems=list(listing.problems))
        report.removed = _drop_missing(db, roots, set(listing.files), listing.unreadable_dirs)
        for i, path in enumerate(listing.files):
            _scan_one(db, recognizer, path, report)
            if progress is not None:
                progress(i + 1, len(listing.files), path)
        return report


def _drop_missing(db: PhotoDB, roots, present: set[str], unreadable: list[str]) -> int:
    """Drop known photos below `roots` that the walk did not find and that no longer exist."""
    gone = []
    for root in roots:
        root = os.path.abspath(root)
        known = db.photos_under(root) if os.path.isdir(root) or not root.lower().endswith(photo_suffixes()) \
            else {root: row.id} if (row := db.photo(root)) else {}
        for path, pid in known.items():
            if path in present or any(path.startswith(d.rstrip("/") + "/") for d in unreadable):
                continue
            if not os.path.lexists(path):
                gone.append(pid)
    return db.drop_photos(gone)


def _scan_one(db: PhotoDB, recognizer: Recognizer, path: str, report: ScanReport) -> None:
    bundle_id = recognizer.bundle.id
    try:
        st = os.stat(path)
    except OSError as e:            # vanished or unreadable since the walk
        report.problems.append((path, e.strerror or str(e)))
        return
    known = db.photo(path)
    if known and known.bundle_id == bundle_id and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
        report.unchanged += 1
        return
    if st.st_size > MAX_FILE_BYTES:
        db.put_photo(path, st.st_size, st.st_mtime_ns, "", bundle_id, "error",
                     f"file is {st.st_size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        report.problems.append((path, "too large"))
        return
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        report.problems.append((path, e.strerror or str(e)))
        return
    sha = hashlib.sha256(data).hexdigest()
    if known and known.bundle_id == bundle_id and known.sha256 == sha:
        db.touch_photo(known.id, st.st_size, st.st_mtime_ns)
        report.unchanged += 1
        return
    _analyze(db, recognizer, path, st, sha, data, report)


def _analyze(db: PhotoDB, recognizer: Recognizer, path: str, st, sha: str, data: bytes, report: ScanReport) -> None:
    bundle_id = recognizer.bundle.id
    try:
        image = decode_photo(data, path)
    except ImageError as e:
        db.put_photo(path, st.st_size, st.st_mtime_ns, sha, bundle_id, "error", str(e))
        report.problems.append((path, str(e)))
        return
    faces = [face_record(image, r, recognizer) for r in recognizer.analyze(image)]
    db.put_photo(path, st.st_size, st.st_mtime_ns, sha, bundle_id, "ok" if faces else "no_faces", "", faces,
                 image.shape[:2])
    report.read += 1
    report.faces += len(faces)


def decode_photo(data: bytes, name: str) -> np.ndarray:
    """Photo bytes -> RGB uint8 (H, W, 3), EXIF orientation applied (imageio for JPEG/PNG/WebP; HEIC through
    pillow-heif when installed). Raises ImageError."""
    if not name.lower().endswith(HEIC_SUFFIXES):
        return decode_image(data, name)
    try:
        import io

        import pillow_heif
        from PIL import ImageOps
    except ImportError:
        raise ImageError(f"{name}: HEIC needs pillow-heif: pip install 'facegate[heic]'") from None
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data))
        if heif.size[0] * heif.size[1] > MAX_PIXELS:
            raise ImageError(f"{name}: {heif.size[0]}x{heif.size[1]} pixels is over the {MAX_PIXELS / 1e6:g} MP "
                             "limit; refused")
        pil = ImageOps.exif_transpose(heif.to_pillow()).convert("RGB")
    except ImageError:
        raise
    except Exception as e:          # pillow-heif raises plain ValueError/RuntimeError for bad files
        raise ImageError(f"{name}: not a readable HEIC image ({e})") from None
    return np.asarray(pil, np.uint8)


def face_record(image: np.ndarray, result, recognizer: Recognizer) -> FaceRecord:
    """FaceResult -> FaceRecord with a JPEG thumbnail cut around the box from the RGB uint8 (H, W, 3) photo."""
    f = result.face
    return FaceRecord(f.box, f.landmarks, f.score, tuple(result.problems),
                      f.embedding if result.usable else None, face_thumbnail(image, f.box))


def face_thumbnail(image: np.ndarray, box: np.ndarray) -> bytes:
    """JPEG bytes of the face in `box` (float (4,) x1, y1, x2, y2) with a margin, longer side THUMB_SIDE."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * THUMB_MARGIN, (y2 - y1) * THUMB_MARGIN
    a, b = max(int(x1 - mx), 0), max(int(y1 - my), 0)
    c, d = min(int(x2 + mx) + 1, w), min(int(y2 + my) + 1, h)
    crop = image[b:d, a:c] if c > a and d > b else image
    scale = THUMB_SIDE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return encode_jpeg(np.ascontiguousarray(crop), THUMB_QUALITY)
