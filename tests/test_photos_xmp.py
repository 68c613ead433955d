"""XMP sidecars (`photos export --xmp`): MWG face regions parsed back with xml.etree and checked against the
boxes in photos.db; the EXIF orientation turns a box back onto the stored image."""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from test_photos_helpers import copy_photos, scan_and_sort

from facegate.edge_runtime.imageio import decode_image
from facegate.edge_runtime.photos import people as pp
from facegate.edge_runtime.photos.db import PhotoDB, photos_path
from facegate.edge_runtime.photos.export import export_folders
from facegate.edge_runtime.photos.xmp import (
    NS_MWG_RS,
    NS_RDF,
    NS_ST_AREA,
    NS_ST_DIM,
    PhotoRegions,
    Region,
    exif_orientation,
    sidecar_xml,
    stored_area,
)
from facegate.main import main

RS, RDF, AREA, DIM = (f"{{{n}}}" for n in (NS_MWG_RS, NS_RDF, NS_ST_AREA, NS_ST_DIM))


def parse(xml: bytes) -> tuple[tuple[int, int], list[tuple[str | None, str, tuple[float, ...]]]]:
    """((applied w, h), [(name, type, (x, y, w, h)), ...]) of an XMP packet's MWG regions."""
    root = ET.fromstring(xml)
    regions = root.find(f".//{RS}Regions")
    dim = regions.find(f"{RS}AppliedToDimensions")
    out = []
    for d in regions.findall(f"{RS}RegionList/{RDF}Bag/{RDF}li/{RDF}Description"):
        a = d.find(f"{RS}Area")
        assert a.get(f"{AREA}unit") == "normalized"
        out.append((d.get(f"{RS}Name"), d.get(f"{RS}Type"), tuple(float(a.get(AREA + k)) for k in "xywh")))
    assert dim.get(f"{DIM}unit") == "pixel"
    return (int(dim.get(f"{DIM}w")), int(dim.get(f"{DIM}h"))), out


@pytest.fixture
def lib(data_dir, tmp_path):
    folder = tmp_path / "photos"
    copy_photos(data_dir, folder, people=("Colin_Powell", "Hugo_Chavez"), numbers=range(1, 4))
    home = tmp_path / "home"
    home.mkdir()
    db = PhotoDB(photos_path(home))
    scan_and_sort(db, [folder])
    yield folder, db, home
    db.close()


def stored_boxes(db: PhotoDB, path: str) -> list[tuple[str | None, tuple[float, ...], int, int]]:
    rows = db.read("SELECT p.name, f.box, ph.width, ph.height FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                   "JOIN people p ON p.id = f.person_id WHERE ph.path = ? ORDER BY f.idx", (path,))
    return [(n, tuple(np.frombuffer(b, "<f4").tolist()), w, h) for n, b, w, h in rows]


def test_export_writes_mwg_regions_matching_the_stored_boxes(lib, tmp_path):
    folder, db, _ = lib
    powell = pp.find_person(db, str(db.read("SELECT f.person_id FROM faces f JOIN photos p ON p.id = f.photo_id "
                                            "WHERE p.path = ?", (str(folder / "Colin_Powell_0001.jpg"),))[0][0]))
    pp.name_person(db, powell, 'Colin "C" <Powell> & co')          # needs escaping in XML
    out = tmp_path / "out"
    data = export_folders(db, out, "link", xmp=True)
    key = 'Colin "C" <Powell> & co'
    assert len(data["people"][key]) == 3
    for photo in data["people"][key]:
        side = out / key / (folder / photo).name
        xml = side.with_name(side.name + ".xmp").read_bytes()
        assert xml.startswith(b"<?xpacket begin=")
        (w, h), regions = parse(xml)
        boxes = stored_boxes(db, photo)
        assert (w, h) == (boxes[0][2], boxes[0][3])                  # LFW JPEGs carry no EXIF orientation
        assert len(regions) == len(boxes)
        for (name, typ, (x, y, rw, rh)), (sname, (x1, y1, x2, y2), _, _) in zip(regions, boxes):
            assert typ == "Face" and name == sname
            assert x == pytest.approx((x1 + x2) / 2 / w, abs=1e-5) and y == pytest.approx((y1 + y2) / 2 / h, abs=1e-5)
            assert rw == pytest.approx((x2 - x1) / w, abs=1e-5) and rh == pytest.approx((y2 - y1) / h, abs=1e-5)
        assert any(n == key for n, _, _ in regions)
    chavez = next(k for k in data["people"] if k != key)
    assert chavez.isdigit()                                           # unnamed: a region without a name
    side = next((out / chavez).glob("*.jpg.xmp"))
    assert [n for n, _, _ in parse(side.read_bytes())[1]] == [None]
    assert not list((out / "unsorted").glob("*.xmp")) or all(
        parse(p.read_bytes())[1] for p in (out / "unsorted").glob("*.xmp"))


def test_export_without_xmp_writes_no_sidecars_and_the_cli_option(lib, tmp_path, capsys):
    folder, db, home = lib
    export_folders(db, tmp_path / "plain", "copy")
    assert not list((tmp_path / "plain").rglob("*.xmp"))
    assert main(["photos", "export", str(tmp_path / "cli"), "--xmp", "--copy", "--home", str(home)]) == 0
    assert "with XMP face regions" in capsys.readouterr().out
    photos = [p for p in (tmp_path / "cli").rglob("*.jpg")]
    assert photos and all(p.with_name(p.name + ".xmp").is_file() for p in photos if p.parent.name != "unsorted")


def exif_jpeg(image_bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG of `image_bgr` (stored as is) with an EXIF APP1 segment whose IFD0 holds only Orientation."""
    jpg = cv2.imencode(".jpg", image_bgr)[1].tobytes()
    tiff = b"MM\0\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1,
                                                                                   orientation, 0) + b"\0" * 4
    app1 = b"Exif\0\0" + tiff
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_box_on_the_shown_photo_goes_back_onto_the_stored_one(orientation):
    stored = np.zeros((120, 200, 3), np.uint8)
    stored[20:50, 130:170] = 255                     # a bright block at x 130..170, y 20..50 as stored
    data = exif_jpeg(stored, orientation)
    assert exif_orientation(data) == orientation
    shown = decode_image(data)                       # OpenCV turns it as the scan does
    ys, xs = np.nonzero(shown[..., 0] > 128)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    x, y, w, h = stored_area(box, shown.shape[1], shown.shape[0], orientation)
    assert (x, y, w, h) == pytest.approx((150 / 200, 35 / 120, 40 / 200, 30 / 120), abs=0.02)
    (aw, ah), regions = parse(sidecar_xml(PhotoRegions("p.jpg", shown.shape[1], shown.shape[0],
                                                       (Region(box, "Ada"),)), orientation))
    assert (aw, ah) == (200, 120) and regions[0][2] == pytest.approx((x, y, w, h), abs=1e-5)


def test_exif_orientation_of_odd_input_is_upright():
    assert exif_orientation(b"") == 1 and exif_orientation(b"\x89PNG\r\n") == 1
    assert exif_orientation(b"\xff\xd8\xff\xe1\x00\x10Exif\0\0II*\0\xff\xff\xff\xff") == 1
    jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    assert exif_orientation(jpg) == 1


def test_names_with_control_characters_still_make_valid_xml():
    xml = sidecar_xml(PhotoRegions("p.jpg", 100, 100, (Region((10, 10, 30, 30), "A\x01B\x7f"),)))
    assert parse(xml)[1][0][0] == "AB\x7f"
