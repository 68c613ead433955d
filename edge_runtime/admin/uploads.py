"""Uploaded photos: read into memory, never written to disk, file names used only as display labels.

Whether a file is an image is decided by decoding it (`imageio.decode_image`, which also applies
EXIF orientation and refuses formats whose header it does not read, decompression bombs and truncated
files), never by its name or its declared content type. The request size is capped by Flask's
MAX_CONTENT_LENGTH; imageio bounds how many decodes run at once.
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
    """(label, bytes) of each file sent in `field`, in order. UploadError when none or too many.

    Only a part with neither a file name nor content (a file input left empty) is skipped: a photo sent
    without a file name is kept (labelled "photo N"), an empty file with a name is kept (decoding tells
    the user it is empty), so no upload disappears without a word.
    """
    limit = max_count or current_app.config["MAX_PHOTOS"]
    parts = [(f.filename, f.read()) for f in request.files.getlist(field)]
    photos = [(name, data) for name, data in parts if name or data]
    if not photos:
        raise UploadError("choose at least one photo to upload")
    if len(photos) > limit:
        raise UploadError(f"{len(photos)} photos sent; at most {limit} per request")
    return [(label(name, i), data) for i, (name, data) in enumerate(photos)]
