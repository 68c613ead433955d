"""XMP sidecars with face regions in the Metadata Working Group regions schema (mwg-rs), as digiKam,
Immich, darktable and Lightroom read them.

One region per face that is in a person: mwg-rs:Type "Face", mwg-rs:Name the person's name (unnamed
people's faces get a region without a name; unsorted faces get none), mwg-rs:Area with stArea:x/y the
centre and stArea:w/h the size, all normalised to 0..1.

MWG regions refer to the image as it is stored, before the EXIF orientation is applied (the library
keeps boxes on the turned image, as shown), so a box is turned back by the photo's EXIF orientation;
AppliedToDimensions gives the stored width and height. The orientation is read from a JPEG's EXIF;
other formats are taken as stored upright.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .db import PhotoDB

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
NS_ST_AREA = "http://ns.adobe.com/xmp/sType/Area#"
NS_ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
SIDECAR_SUFFIX = ".xmp"
HEAD_BYTES = 256 * 1024        # the EXIF block is in the first APP1 segment, at most 64 KB, near the start
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Region:
    """One face on the photo as shown: box x1, y1, x2, y2 in pixels; name None = an unnamed person."""

    box: tuple[float, float, float, float]
    name: str | None


@dataclass(frozen=True)
class PhotoRegions:
    """A photo's path, its size as shown (EXIF orientation applied) and its face regions."""

    path: str
    width: int
    height: int
    regions: tuple[Region, ...]


def photo_regions(db: PhotoDB) -> dict[str, PhotoRegions]:
    """{photo path: PhotoRegions} of every photo with at least one face in a person."""
    rows = db.read("SELECT ph.path, ph.width, ph.height, f.box, p.name FROM faces f "
                   "JOIN photos ph ON ph.id = f.photo_id JOIN people p ON p.id = f.person_id "
                   "WHERE ph.width > 0 AND ph.height > 0 ORDER BY ph.path, f.idx")
    out: dict[str, list] = {}
    sizes = {}
    for path, w, h, box, name in rows:
        sizes[path] = (w, h)
        b = tuple(float(v) for v in np.frombuffer(box, "<f4"))
        out.setdefault(path, []).append(Region(b, name))
    return {p: PhotoRegions(p, *sizes[p], tuple(r)) for p, r in out.items()}


def exif_orientation(head: bytes) -> int:
    """The EXIF orientation (1..8) of a JPEG from its first bytes; 1 when absent, unreadable or not a JPEG."""
    if head[:2] != b"\xff\xd8":
        return 1
    i = 2
    while i + 4 <= len(head) and head[i] == 0xFF:
        marker, length = head[i + 1], struct.unpack(">H", head[i + 2:i + 4])[0]
        if marker == 0xDA or length < 2:            # start of scan: no EXIF before the image data
            return 1
        seg = head[i + 4:i + 2 + length]
        if marker == 0xE1 and seg[:6] == b"Exif\0\0":
            return _tiff_orientation(seg[6:])
        i += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 of a TIFF block (the EXIF payload); 1 when absent or malformed."""
    try:
        end = {b"II": "<", b"MM": ">"}[tiff[:2]]
        ifd = struct.unpack(end + "I", tiff[4:8])[0]
        (count,) = struct.unpack(end + "H", tiff[ifd:ifd + 2])
        for k in range(count):
            at = ifd + 2 + 12 * k
            tag, typ = struct.unpack(end + "HH", tiff[at:at + 4])
            if tag == 0x0112 and typ == 3:
                value = struct.unpack(end + "H", tiff[at + 8:at + 10])[0]
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        pass
    return 1


def stored_area(box, width: int, height: int, orientation: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) normalised, centre and size, on the stored image, from a box (x1, y1, x2, y2) on the
    shown image of `width` x `height` pixels and the EXIF `orientation` that turned the stored image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
    y1, y2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
    u, v = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    # (u, v): centre on the shown image; each orientation's stored point, from how it maps stored -> shown
    s, t = {1: (u, v), 2: (1 - u, v), 3: (1 - u, 1 - v), 4: (u, 1 - v),
            5: (v, u), 6: (v, 1 - u), 7: (1 - v, 1 - u), 8: (1 - v, u)}[orientation]
    if orientation >= 5:
        w, h = h, w
    return s, t, w, h


def _clean(text: str) -> str:
    """Text as allowed in XML 1.0 (control characters dropped), attribute-quoted."""
    return quoteattr(_NOT_XML.sub("", text))


def sidecar_xml(photo: PhotoRegions, orientation: int = 1) -> bytes:
    """The XMP packet (UTF-8) of one photo's face regions."""
    sw, sh = (photo.height, photo.width) if orientation >= 5 else (photo.width, photo.height)
    items = []
    for r in photo.regions:
        x, y, w, h = stored_area(r.box, photo.width, photo.height, orientation)
        name = f" mwg-rs:Name={_clean(r.name)}" if r.name else ""
        items.append(f'      <rdf:li>\n       <rdf:Description mwg-rs:Type="Face"{name}>\n'
                     f'        <mwg-rs:Area stArea:x="{x:.6f}" stArea:y="{y:.6f}" stArea:w="{w:.6f}" '
                     f'stArea:h="{h:.6f}" stArea:unit="normalized"/>\n       </rdf:Description>\n      </rdf:li>\n')
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="facegate">\n'
            f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
            f'  <rdf:Description rdf:about="" xmlns:mwg-rs="{NS_MWG_RS}" xmlns:stArea="{NS_ST_AREA}"\n'
            f'    xmlns:stDim="{NS_ST_DIM}">\n'
            '   <mwg-rs:Regions rdf:parseType="Resource">\n'
            f'    <mwg-rs:AppliedToDimensions stDim:w="{sw}" stDim:h="{sh}" stDim:unit="pixel"/>\n'
            '    <mwg-rs:RegionList>\n     <rdf:Bag>\n' + "".join(items) +
            '     </rdf:Bag>\n    </mwg-rs:RegionList>\n   </mwg-rs:Regions>\n'
            '  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>\n').encode("utf-8")


def read_orientation(path: str | Path) -> int:
    """The EXIF orientation of the photo file at `path` (1 when unreadable: the sidecar still gets written)."""
    try:
        with open(path, "rb") as f:
            return exif_orientation(f.read(HEAD_BYTES))
    except OSError:
        return 1


def sidecar_path(photo: str | Path) -> Path:
    """Where a photo's sidecar goes: its full file name plus .xmp (IMG_1.jpg -> IMG_1.jpg.xmp)."""
    photo = Path(photo)
    return photo.with_name(photo.name + SIDECAR_SUFFIX)
