"""Image headers read without decoding a pixel: the format of a file, the pixel size it declares, where its data ends.

`cv2.imdecode` picks its decoder by magic bytes. This module sniffs the same magic bytes first: the accepted formats
(ACCEPTED) have their header parsed here, every other format an OpenCV build can decode (AVIF, JPEG 2000, OpenEXR,
Radiance HDR, Sun raster, PAM, PFM, BigTIFF, JPEG XL, QOI) is refused by name, and anything else as unknown. So no
file reaches the decoder without its pixel size checked first (imageio.decode_image refuses bombs on that size).
Animated PNG and WebP are refused too (their decoders hold several frames of the canvas).

`image_extent` walks the file's structure: the JPEG marker segments through the end-of-image marker that follows the
last scan, the PNG chunks (checksums checked) through IEND, the WebP RIFF size. A file cut short is refused here;
bytes after the end (phones append data to JPEGs) are ignored. Every error is an ImageError whose message lacks the
file name (imageio adds it).
"""
from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from .errors import ImageError

ACCEPTED = "JPEG, PNG, WebP, TIFF, BMP, GIF or PNM (PBM/PGM/PPM)"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REFUSED = (  # (offset, magic bytes, format name): formats OpenCV decodes whose header is not read here
    (4, b"ftyp", "AVIF/HEIF"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"v/1\x01", "OpenEXR"),
    (0, b"#?RADIANCE", "Radiance HDR"),
    (0, b"#?RGBE", "Radiance HDR"),
    (0, b"\x59\xa6\x6a\x95", "Sun raster"),
    (0, b"II+\x00", "BigTIFF"),
    (0, b"MM\x00+", "BigTIFF"),
    (0, b"qoif", "QOI"),
)
_PNM = re.compile(rb"P([1-7Ff])[ \t\n\v\f\r]")


class Header(NamedTuple):
    """What a file declares: format name, pixel size, and the largest decoding buffer besides the image.

    buffer_bytes is the size of one TIFF strip or tile as decoded (0 for the other formats).
    """

    format: str
    width: int
    height: int
    buffer_bytes: int = 0


class Extent(NamedTuple):
    """Where the image data ends (bytes after `end` are trailing data no decoder reads).

    JPEG only (else 0): scan_end is the offset of the marker that closes the last scan's entropy-coded data;
    next_restart the restart marker (0xD0..0xD7) that scan's decoder expects next, 0 without a restart interval.
    """

    end: int
    scan_end: int = 0
    next_restart: int = 0


def _corrupt(detail: str) -> ImageError:
    return ImageError(f"not a readable image ({detail})")


def _cut(detail: str) -> ImageError:
    return ImageError(f"image data is truncated ({detail}); the file was cut short: copy it again")


def sniff(data: bytes) -> str:
    """The accepted format of `data` by its magic bytes. ImageError for any other format, named where known."""
    for offset, magic, name in _REFUSED:
        if data[offset:offset + len(magic)] == magic:
            raise ImageError(f"{name} images are not accepted; send a {ACCEPTED} file")
    pnm = _PNM.match(data)
    if pnm and pnm.group(1) in b"7Ff":
        raise ImageError(f"{'PAM' if pnm.group(1) == b'7' else 'PFM'} images are not accepted; send a {ACCEPTED} file")
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == _PNG_SIGNATURE:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if pnm:
        return "PNM"
    raise ImageError(f"not a readable image (unknown format); send a {ACCEPTED} file")


def read_header(data: bytes) -> Header:
    """Format and declared pixel size of encoded image bytes, from the header alone (no pixel decoded).

    Raises:
        ImageError: not an accepted format, animated, a header that is cut short or inconsistent.
    """
    fmt = sniff(data)
    header = _HEADERS[fmt](data)
    if header.width <= 0 or header.height <= 0:
        raise _corrupt(f"the {fmt} header declares {header.width}x{header.height} pixels")
    return header


def image_extent(data: bytes, header: Header) -> Extent:
    """Where the image in `data` ends, after checking its structure is complete (see the module docstring).

    Raises:
        ImageError: the file is cut short, a PNG chunk fails its checksum, a JPEG lacks scans or markers.
    """
    if header.format == "JPEG":
        return _jpeg_extent(data)
    if header.format == "PNG":
        return _png_extent(data)
    if header.format == "WebP":
        end = 8 + int.from_bytes(data[4:8], "little")
        if end > len(data):
            raise _cut(f"the WebP container declares {end} bytes, the file has {len(data)}")
        return Extent(end)
    return Extent(len(data))


# --- JPEG ---------------------------------------------------------------------------------------------------------

_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_SOS, _EOI = 0xDA, 0xD9
_PARAMETERLESS = frozenset({0x01, *range(0xD0, 0xD8)})           # TEM, RST0..7
MAX_JPEG_MARKERS = 10_000             # markers outside scans: far above what an encoder writes
_SEGMENTS = _SOF | {0xC4, 0xCC, _SOS, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}
# libjpeg's next_marker: skip stray bytes and FF fill bytes, FF 00 is not a marker. (This pattern and the next
# start with a literal byte, not "\xff+", so that re searches for it fast.)
_NEXT_MARKER = re.compile(rb"\xff\xff*([^\x00\xff])")
# the end of a scan's entropy-coded data: the first marker that is neither FF 00 (stuffing) nor RSTn
_SCAN_END = re.compile(rb"\xff\xff*([^\x00\xd0-\xd7\xff])")


class _Segment(NamedTuple):
    marker: int
    start: int      # payload: data[start:end], after the marker and its length field
    end: int
    next: int       # where the next marker is searched: `end`, or for a scan the end of its entropy-coded data


class _Frame(NamedTuple):
    width: int
    height: int
    components: tuple[int, ...]
    progressive: bool


class _Scan(NamedTuple):
    components: tuple[int, ...]
    first: int      # Ss: first coefficient (0..63)
    last: int       # Se: last coefficient
    low_bit: int    # Al: 0 once the coefficients are complete (progressive successive approximation)


def _jpeg_segments(data: bytes) -> Iterator[_Segment]:
    """Each marker segment after SOI in the order libjpeg reads it, through the first EOI (which ends the walk)."""
    pos = 2
    for _ in range(MAX_JPEG_MARKERS):
        m = _NEXT_MARKER.search(data, pos)
        if m is None:
            raise _cut("the JPEG has no end-of-image marker")
        marker, pos = m.group(1)[0], m.end()
        if marker == _EOI:
            yield _Segment(marker, pos, pos, pos)
            return
        if marker in _PARAMETERLESS:
            continue
        if marker not in _SEGMENTS:
            raise _corrupt(f"JPEG marker 0x{marker:02X} is not supported")
        length = int.from_bytes(data[pos:pos + 2], "big")
        end = pos + length
        if pos + 2 > len(data) or end > len(data):
            raise _cut(f"JPEG segment 0x{marker:02X} runs past the end of the file")
        if length < 2:
            raise _corrupt(f"JPEG segment 0x{marker:02X} has length {length}")
        nxt = end
        if marker == _SOS:
            scan_end = _SCAN_END.search(data, end)
            if scan_end is None:
                raise _cut("the file ends inside the JPEG image data")
            nxt = scan_end.start()
        yield _Segment(marker, pos + 2, end, nxt)
        pos = nxt
    raise _corrupt(f"the JPEG has more than {MAX_JPEG_MARKERS} markers outside its image data")


def _jpeg_frame(data: bytes, seg: _Segment) -> _Frame:
    body = data[seg.start:seg.end]
    if len(body) < 6 or len(body) != 6 + 3 * body[5]:
        raise _corrupt("the JPEG frame header has the wrong length")
    height, width = struct.unpack(">HH", body[1:5])
    return _Frame(width, height, tuple(body[6::3]), seg.marker in _PROGRESSIVE)


def _jpeg_scan(data: bytes, seg: _Segment) -> _Scan:
    body = data[seg.start:seg.end]
    if len(body) < 4 or len(body) != 4 + 2 * body[0]:
        raise _corrupt("a JPEG scan header has the wrong length")
    return _Scan(tuple(body[1:-3:2]), body[-3], body[-2], body[-1] & 0x0F)


def _jpeg_header(data: bytes) -> Header:
    for seg in _jpeg_segments(data):
        if seg.marker in _SOF:
            frame = _jpeg_frame(data, seg)
            return Header("JPEG", frame.width, frame.height)
        if seg.marker in (_SOS, _EOI):
            break
    raise _corrupt("the JPEG has no frame header before its image data")


def _jpeg_extent(data: bytes) -> Extent:
    frame, scans, last, restart_interval, scan_restarts = None, [], None, 0, 0
    for seg in _jpeg_segments(data):
        if seg.marker in _SOF:
            if frame is not None:
                raise _corrupt("the JPEG has two frame headers")
            frame = _jpeg_frame(data, seg)
        elif seg.marker == 0xDD:
            restart_interval = int.from_bytes(data[seg.start:seg.start + 2], "big")
        elif seg.marker == _SOS:
            if frame is None:
                raise _corrupt("a JPEG scan comes before the frame header")
            scans.append(_jpeg_scan(data, seg))
            last, scan_restarts = seg, restart_interval
        elif seg.marker == _EOI:
            if frame is None or last is None:
                raise _corrupt("the JPEG holds no image data")
            _check_scans(frame, scans)
            nxt = _next_restart(data, last.end, last.next) if scan_restarts else 0
            return Extent(seg.end, last.next, nxt)
    raise AssertionError("_jpeg_segments ends with EOI or raises")


def _next_restart(data: bytes, start: int, end: int) -> int:
    """The restart marker that follows the last one in data[start:end] (a scan's entropy-coded data): RST0 first."""
    i = data.rfind(b"\xff", start, end)
    while i >= 0:
        if 0xD0 <= data[i + 1] <= 0xD7:
            return 0xD0 + (data[i + 1] - 0xD0 + 1) % 8
        i = data.rfind(b"\xff", start, i)
    return 0xD0


def _check_scans(frame: _Frame, scans: list[_Scan]) -> None:
    """Every component got its data: in a sequential JPEG each one is in a scan; in a progressive one each
    coefficient 0..63 of each component is sent to full precision. A file cut between scans fails this."""
    if not frame.progressive:
        missing = set(frame.components) - {c for s in scans for c in s.components}
    else:
        done = {c: set() for c in frame.components}
        for s in scans:
            for c in s.components:
                if s.low_bit == 0 and c in done:
                    done[c].update(range(s.first, min(s.last, 63) + 1))
        missing = {c for c, coefs in done.items() if len(coefs) < 64}
    if missing:
        raise _cut(f"the scans of JPEG component(s) {sorted(missing)} are missing")


# --- PNG ----------------------------------------------------------------------------------------------------------

def _png_header(data: bytes) -> Header:
    if len(data) < 24:
        raise _cut("the PNG header is incomplete")
    if data[12:16] != b"IHDR" or data[8:12] != b"\x00\x00\x00\x0d":
        raise _corrupt("a PNG must start with its IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return Header("PNG", width, height)


MAX_PNG_CHUNKS = 100_000              # far above what an encoder writes; a file of tiny chunks is not a photo


def _png_extent(data: bytes) -> Extent:
    view, pos, has_data = memoryview(data), 8, False
    for _ in range(MAX_PNG_CHUNKS):
        if pos + 12 > len(data):
            raise _cut("the PNG has no IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if not kind.isalpha():
            raise _corrupt(f"PNG chunk name {kind!r} is not valid")
        name, end = kind.decode("ascii"), pos + 12 + length
        if end > len(data):
            raise _cut(f"PNG chunk {name!r} runs past the end of the file")
        if zlib.crc32(view[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            raise _corrupt(f"PNG chunk {name!r} fails its checksum")
        if kind == b"acTL":
            raise ImageError("animated PNG is not accepted; send a still photo")
        has_data = has_data or kind == b"IDAT"
        if kind == b"IEND":
            if not has_data:
                raise _corrupt("the PNG holds no image data")
            return Extent(end)
        pos = end
    raise _corrupt(f"the PNG has more than {MAX_PNG_CHUNKS} chunks")


# --- WebP, TIFF, BMP, GIF, PNM ------------------------------------------------------------------------------------

def _webp_header(data: bytes) -> Header:
    if len(data) < 30:
        raise _cut("the WebP header is incomplete")
    chunk = data[12:16]
    if chunk == b"VP8X":
        if data[20] & 0x02:
            raise ImageError("animated WebP is not accepted; send a still photo")
        return Header("WebP", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise _corrupt("the WebP (VP8) frame header lacks its start code")
        width, height = struct.unpack("<HH", data[26:30])
        return Header("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise _corrupt("the WebP (VP8L) header lacks its signature")
        bits = int.from_bytes(data[21:25], "little")
        return Header("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    raise _corrupt(f"WebP chunk {chunk!r} where VP8, VP8L or VP8X belongs")


_TIFF_FIELDS = {256: "image width", 257: "image length", 258: "bits per sample", 277: "samples per pixel",
                278: "rows per strip", 322: "tile width", 323: "tile length"}
_TIFF_TYPES = {1: "B", 3: "H", 4: "I"}        # BYTE, SHORT, LONG: the integer types libtiff reads sizes from


def _tiff_fields(data: bytes) -> dict[int, int]:
    """The size fields of the first image directory (the one cv2.imdecode reads): tag -> first value."""
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        raise _cut("the TIFF header is incomplete")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd < 8 or ifd + 2 > len(data):
        raise _corrupt(f"the TIFF directory offset {ifd} lies outside the file")
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    if ifd + 2 + 12 * count > len(data):
        raise _cut(f"the TIFF directory of {count} entries runs past the end of the file")
    fields: dict[int, int] = {}
    for i in range(count):
        tag, kind, n, raw = struct.unpack_from(order + "HHI4s", data, ifd + 2 + 12 * i)
        if tag not in _TIFF_FIELDS:
            continue
        if tag in fields or kind not in _TIFF_TYPES or n < 1:
            raise _corrupt(f"the TIFF {_TIFF_FIELDS[tag]} field is repeated or of an unsupported type")
        fmt = order + _TIFF_TYPES[kind]
        size = struct.calcsize(fmt)
        at = ifd + 2 + 12 * i + 8 if n * size <= 4 else struct.unpack(order + "I", raw)[0]
        if at + size > len(data):
            raise _corrupt(f"the TIFF {_TIFF_FIELDS[tag]} value lies outside the file")
        fields[tag] = struct.unpack_from(fmt, data, at)[0]
    return fields


def _tiff_header(data: bytes) -> Header:
    f = _tiff_fields(data)
    if 256 not in f or 257 not in f:
        raise _corrupt("the TIFF directory lacks the image width or length")
    width, height = f[256], f[257]
    if 322 in f or 323 in f:
        tile_w, tile_h = f.get(322, 0), f.get(323, 0)
    else:
        rows = f.get(278, height)
        tile_w, tile_h = width, height if rows in (0, 0xFFFFFFFF) else min(rows, height)
    bits = f.get(258, 1)
    if bits > 64 or tile_w <= 0 or tile_h <= 0:
        raise _corrupt(f"the TIFF declares {bits}-bit samples in {tile_w}x{tile_h} strips or tiles")
    sample_bytes = max(f.get(277, 1) * -(-bits // 8), 4)   # decoders that read RGBA use 4 bytes a pixel
    return Header("TIFF", width, height, tile_w * tile_h * sample_bytes)


def _bmp_header(data: bytes) -> Header:
    if len(data) < 26:
        raise _cut("the BMP header is incomplete")
    (size,) = struct.unpack("<i", data[14:18])
    if size >= 36:
        width, height = struct.unpack("<ii", data[18:26])
    elif size == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        raise _corrupt(f"BMP info header of {size} bytes")
    return Header("BMP", width, abs(height))


def _gif_header(data: bytes) -> Header:
    if len(data) < 10:
        raise _cut("the GIF header is incomplete")
    width, height = struct.unpack("<HH", data[6:10])
    return Header("GIF", width, height)


# whitespace and comments (from '#' to the end of the line) before a number, as OpenCV's PxM ReadNumber skips them
_PNM_NUMBER = re.compile(rb"(?:[ \t\n\v\f\r]|#[^\r\n]*[\r\n])*([0-9]+)")
MAX_PNM_HEADER = 64 * 1024            # the numbers must come within this many bytes (comments included)


def _pnm_numbers(data: bytes, count: int) -> list[int]:
    """The first `count` header numbers after the magic, read the way OpenCV's PxM decoder reads them."""
    head, pos, numbers = data[:MAX_PNM_HEADER], 2, []
    for _ in range(count):
        m = _PNM_NUMBER.match(head, pos)
        if m is None or m.end() == len(head) < len(data):
            raise _corrupt(f"the PNM header is not <width> <height> [<maxval>] in its first {MAX_PNM_HEADER} bytes")
        digits = m.group(1).lstrip(b"0") or b"0"
        if len(digits) > 10 or int(digits) > 0x7FFFFFFF:
            raise _corrupt("a PNM header number is too large")
        numbers.append(int(digits))
        pos = m.end()
    return numbers


def _pnm_header(data: bytes) -> Header:
    bitmap = data[1:2] in (b"1", b"4")
    numbers = _pnm_numbers(data, 2 if bitmap else 3)
    if not bitmap and not 0 < numbers[2] < 65536:
        raise _corrupt(f"PNM maximum value {numbers[2]}")
    return Header("PNM", numbers[0], numbers[1])


_HEADERS = {"JPEG": _jpeg_header, "PNG": _png_header, "WebP": _webp_header, "TIFF": _tiff_header,
            "BMP": _bmp_header, "GIF": _gif_header, "PNM": _pnm_header}
