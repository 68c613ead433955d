"""The incremental, resumable scan: new or changed photos are read, their faces found and embedded.

A file is read again only when its size or mtime changed and then only when its content hash differs
(or it was scanned with another model bundle). Each photo is committed in its own transaction, so a
scan stopped at any moment resumes where it stopped: nothing lost, nothing twice. Photos that are gone
from a scanned folder are dropped. Bad files are recorded with their reason and not read again until
they change. Progress is reported through a callback; the command line draws it.

Faces pass the photo gate ([photos] in the config, looser than the door's [detector] gate). The faces
of up to [photos] batch photos are embedded in one model run; a reader thread reads, hashes and
decodes the next batch's files meanwhile (the models release the GIL).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..config import Config, DetectorConfig
from ..errors import ImageError
from ..imageio import MAX_FILE_BYTES, MAX_PIXELS, decode_image, encode_jpeg
from ..quality import face_quality
from ..quality_model import low_quality_problem
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


def photo_gate(config: Config) -> DetectorConfig:
    """The [detector] section with the photo gate's limits ([photos]) in place of the door's."""
    p = config.photos
    return dataclasses.replace(config.detector, min_face_px=p.min_face_px, min_sharpness=p.min_sharpness,
                               min_brightness=p.min_brightness, max_yaw_ratio=p.max_yaw_ratio)


@dataclass
class _Loaded:
    """One photo to read: its stat and known row; filled by the reader thread with bytes' hash and pixels."""

    path: str
    st: os.stat_result
    known: object
    sha: str = ""
    image: np.ndarray | None = None
    error: str = ""                 # not an image (recorded with this reason)
    unread: str = ""                # could not be read (reported, not recorded)
    same: bool = False
    shape: tuple[int, int] = (0, 0)
    faces: list = field(default_factory=list)


def scan(db: PhotoDB, recognizer: Recognizer, roots: list[str | Path], progress: Progress | None = None) -> ScanReport:
    """Bring the library up to date with the photos at or below `roots` (folders or files).

    Raises ScanBusyError when another scan of this library runs.
    """
    with scan_lock(db.path):
        listing = list_photos(roots)
        report = ScanReport(found=len(listing.files), problems=list(listing.problems))
        report.removed = _drop_missing(db, roots, set(listing.files), listing.unreadable_dirs)
        files, n = listing.files, recognizer.config.photos.batch
        chunks = [files[i:i + n] for i in range(0, len(files), n)]
        counter = _Counter(len(files), progress)
        with ThreadPoolExecutor(1, thread_name_prefix="photo-reader") as reader:
            ahead = _start(db, recognizer, chunks[0], report, reader) if chunks else []
            for k in range(len(chunks)):
                current = ahead
                ahead = _start(db, recognizer, chunks[k + 1], report, reader) if k + 1 < len(chunks) else []
                _finish(db, recognizer, current, report, counter)
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


@dataclass
class _Counter:
    """Calls progress(done, total, path) once per photo, after it is committed or skipped."""

    total: int
    progress: Progress | None
    done: int = 0

    def __call__(self, path: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, path)


def _start(db: PhotoDB, recognizer: Recognizer, paths: list[str], report: ScanReport,
           reader) -> list[tuple[str, Future | None]]:
    """Skip unchanged photos (stat only) and record too large ones (None); hand the others to the reader
    thread (a Future of _Loaded)."""
    bundle_id = recognizer.bundle.id
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as e:            # vanished or unreadable since the walk
            report.problems.append((path, e.strerror or str(e)))
            out.append((path, None))
            continue
        known = db.photo(path)
        if known and known.bundle_id == bundle_id and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
            report.unchanged += 1
            out.append((path, None))
        elif st.st_size > MAX_FILE_BYTES:
            db.put_photo(path, st.st_size, st.st_mtime_ns, "", bundle_id, "error",
                         f"file is {st.st_size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
            report.problems.append((path, "too large"))
            out.append((path, None))
        else:
            same = known.sha256 if known and known.bundle_id == bundle_id else None
            out.append((path, reader.submit(_read, _Loaded(path, st, known), same)))
    return out


def _read(item: _Loaded, known_sha: str | None) -> _Loaded:
    """(reader thread) The file's bytes hashed and, when its content is new, decoded. Never raises."""
    try:
        data = Path(item.path).read_bytes()
    except OSError as e:
        item.unread = e.strerror or str(e)
        return item
    item.sha = hashlib.sha256(data).hexdigest()
    if item.sha == known_sha:
        item.same = True
        return item
    try:
        item.image = decode_photo(data, item.path)
    except ImageError as e:
        item.error = str(e)
    return item


def _finish(db: PhotoDB, recognizer: Recognizer, batch: list[tuple[str, Future | None]], report: ScanReport,
            counter: _Counter) -> None:
    """Find the faces of a batch of photos, embed the usable ones in one run, commit each photo on its own."""
    gate = photo_gate(recognizer.config)
    items = [(path, None if f is None else f.result()) for path, f in batch]
    for _, it in items:
        if it is not None and it.image is not None:
            it.shape = it.image.shape[:2]
            it.faces = find_faces(recognizer, it.image, gate)
            it.image = None                 # the thumbnails are cut; the pixels are not needed any more
    embed_faces(recognizer, [f for _, it in items if it is not None for f in it.faces])
    for path, it in items:
        if it is not None:
            _commit(db, recognizer.bundle.id, it, report)
        counter(path)


def _commit(db: PhotoDB, bundle_id: str, it: _Loaded, report: ScanReport) -> None:
    """Record one read photo (its faces found and embedded) in one transaction."""
    st = it.st
    if it.same:
        db.touch_photo(it.known.id, st.st_size, st.st_mtime_ns)
        report.unchanged += 1
    elif it.unread:
        report.problems.append((it.path, it.unread))
    elif it.error:
        db.put_photo(it.path, st.st_size, st.st_mtime_ns, it.sha, bundle_id, "error", it.error)
        report.problems.append((it.path, it.error))
    else:
        records = [f.record() for f in it.faces]
        db.put_photo(it.path, st.st_size, st.st_mtime_ns, it.sha, bundle_id, "ok" if records else "no_faces", "",
                     records, it.shape)
        report.read += 1
        report.faces += len(records)


@dataclass
class FoundFace:
    """A face found in a photo: the detection, its photo-gate problems, its chips (usable faces only, until
    embedded), its thumbnail and, once embedded, its embedding."""

    face: object
    problems: tuple[str, ...]
    chips: tuple[np.ndarray, ...] | None
    thumb: bytes
    embedding: np.ndarray | None = None

    def record(self) -> FaceRecord:
        """The row photos.db keeps of this face."""
        f = self.face
        return FaceRecord(f.box, f.landmarks, f.score, self.problems, self.embedding, self.thumb)


def find_faces(recognizer: Recognizer, image: np.ndarray, gate: DetectorConfig) -> list[FoundFace]:
    """Detect, align and gate every face of an RGB uint8 (H, W, 3) photo; thumbnails cut, nothing embedded."""
    faces = recognizer.bundle.detector.detect(image, recognizer.config.detector.max_side)
    emb, out = recognizer.bundle.embedder, []
    for f in faces:
        chips = emb.align_all(image, f)
        problems = tuple(face_quality(f, chips[0], gate))
        out.append(FoundFace(f, problems, None if problems else chips, face_thumbnail(image, f.box)))
    return out


def embed_faces(recognizer: Recognizer, faces: list[FoundFace]) -> None:
    """Embed every usable face of `faces` in one run per model (their chips are then dropped). With a
    bundle quality model, a face scoring below the bundle's threshold gets its "quality too low" problem
    and no embedding, so it is never clustered and stays unsorted."""
    good = [f for f in faces if f.chips is not None]
    if not good:
        return
    vecs = recognizer.bundle.embedder.embed_sets([f.chips for f in good])
    model, thr = recognizer.bundle.quality, recognizer.min_quality
    quality = model.score(vecs) if model is not None else [None] * len(good)
    for f, v, q in zip(good, vecs, quality):
        f.chips = None
        if q is not None and q < thr:
            f.problems = (*f.problems, low_quality_problem(float(q), thr))
        else:
            f.embedding = v


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
