"""Uploaded photos: read into memory, never written to disk, file names used only as display labels.

Whether a file is an image is decided by decoding it (`imageio.decode_image`, which also applies
EXIF orientation and refuses decompression bombs and truncated files), never by its name or
its declared content type. The request size is capped by Flask's MAX_CONTENT_LENGTH.
"""
from __future__ import annotations

import unicodedata

from flask import current_app, request

MAX_LABEL_CHARS = 60


class UploadError(ValueError):
    """The request carries no photo, too many photos, or a field is missing."""


def label(filename: str | None, index: int) -> str:
    """A short, printable label for the index-th upload (the file name is shown, never used as a path)."""
    name = "".join(c for c in (filename or "") if unicodedata.category(c)[0] != "C").strip()
    name = name.replace("/", "_").replace("\\", "_")
    if len(name) > MAX_LABEL_CHARS:
        name = name[:MAX_LABEL_CHARS - 1] + "…"
    return name or f"photo {index + 1}"


def read_photos(field: str = "photos", max_count: int | None = None) -> list[tuple[str, bytes]]:
    """(label, bytes) of each non-empty file sent in `field`. UploadError when none or too many."""
    limit = max_count or current_app.config["MAX_PHOTOS"]
    files = [f for f in request.files.getlist(field) if f and (f.filename or f.content_length)]
    if not files:
        raise UploadError("choose at least one photo to upload")
    if len(files) > limit:
        raise UploadError(f"{len(files)} photos sent; at most {limit} per request")
    return [(label(f.filename, i), f.read()) for i, f in enumerate(files)]
