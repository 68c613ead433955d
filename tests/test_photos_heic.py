"""HEIC photos in the scan: a real HEIC written from an LFW photo with pillow-heif (upright, and stored turned
with an EXIF orientation) is read, and its face found with the box the JPEG original gives."""
from __future__ import annotations

import io

import numpy as np
import pytest
from test_photos_helpers import recognizer

from facegate.edge_runtime.photos.db import PhotoDB
from facegate.edge_runtime.photos.scan import scan

pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (facegate[heic]; in facegate[dev])")
Image = pytest.importorskip("PIL.Image")

PERSON = "Colin_Powell"
# EXIF orientation -> the PIL transpose that stores an upright image so that the orientation turns it back
STORED = {1: None, 3: "ROTATE_180", 6: "ROTATE_90", 8: "ROTATE_270"}


def write_heic(image, path, orientation: int = 1) -> None:
    """Save the upright PIL `image` as HEIC at `path`, its pixels turned so EXIF `orientation` shows it upright."""
    stored = image if STORED[orientation] is None else image.transpose(getattr(Image.Transpose,
                                                                                STORED[orientation]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="HEIF", quality=95, exif=exif.tobytes())
    path.write_bytes(buf.getvalue())


def largest_face(db: PhotoDB, path) -> tuple[np.ndarray, str]:
    """(float32 (4,) box x1, y1, x2, y2 of the photo's largest face, the photo's status)."""
    rows = db.read("SELECT f.box, p.status FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path = ?",
                   (str(path),))
    assert rows, f"no face found in {path}"
    boxes = [np.frombuffer(b, "<f4") for b, _ in rows]
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])), rows[0][1]


def test_heic_faces_have_the_jpeg_boxes_with_exif_orientation(data_dir, tmp_path):
    pillow_heif.register_heif_opener()
    src = data_dir / "lfw" / PERSON / f"{PERSON}_0001.jpg"
    upright = Image.open(src).convert("RGB").crop((0, 0, 250, 210))     # not square: a wrong turn shows
    folder = tmp_path / "photos"
    folder.mkdir()
    upright.save(folder / "reference.png")
    for o in STORED:
        write_heic(upright, folder / f"turned_{o}.heic", o)
    write_heic(upright, folder / "CAPITALS.HEIC")
    with PhotoDB(tmp_path / "photos.db") as db:
        report = scan(db, recognizer(), [folder])
        assert report.problems == [] and report.read == len(STORED) + 2
        want, _ = largest_face(db, folder / "reference.png")
        for name in [f"turned_{o}.heic" for o in STORED] + ["CAPITALS.HEIC"]:
            box, status = largest_face(db, folder / name)
            assert np.abs(box - want).max() <= 4, (name, box.tolist(), want.tolist(), status)
        emb = db.read("SELECT f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id "
                      "WHERE p.path IN (?, ?)", (str(folder / "reference.png"), str(folder / "turned_6.heic")))
    assert len(emb) >= 2 and all(e[0] is not None for e in emb)


def test_a_broken_heic_is_recorded_not_fatal(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100)
    with PhotoDB(tmp_path / "photos.db") as db:
        report = scan(db, recognizer(), [folder])
        status = db.read("SELECT status, reason FROM photos")
    assert report.found == 1 and status and status[0][0] == "error" and "HEIC" in status[0][1], status
