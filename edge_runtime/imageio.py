"""Safe image loading: clear errors for non-images, truncated files, huge files and decompression bombs;
and JPEG encoding of RGB images (face chips, test frames).

Before a byte is decoded, `image_headers` names the format (only the ones whose header it reads are accepted)
and reads the declared pixel size, refused over MAX_PIXELS; the structure is walked to the end of the image
(a file cut short is refused, trailing bytes are ignored). At most MAX_CONCURRENT_DECODES decodes run at once
in the process, so parallel uploads cannot multiply the decoders' peak memory.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError
from .image_headers import Extent, Header, image_extent, read_header

MAX_FILE_BYTES = 40 * 1024 * 1024     # a phone photo is < 15 MB; refuse anything far beyond
MAX_PIXELS = 50_000_000               # 50 MP; a decompression bomb declares far more
MIN_SIDE = 16                         # smaller than this cannot hold a recognisable face
MAX_CONCURRENT_DECODES = 2            # decodes running at once in this process; the others wait for a slot
DECODE_WAIT_S = 60.0                  # how long a decode waits for a slot before it is refused
OUTPUT_BYTES_PER_PIXEL = 3            # the decoded BGR image; a TIFF strip or tile buffer may not exceed the image

_DECODE_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
# bytes put before a JPEG's end marker to see whether the decoder reads them (no 0xFF, so no marker)
_JPEG_FILLER = bytes((i * 97 + 31) % 255 for i in range(512))
_EMPTY_BLOCK_BGR = 128                # libjpeg fills the blocks a cut scan lacks with this grey


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared in the header of an accepted format (see image_headers.ACCEPTED), no pixel decoded.

    Returns None when the format is not accepted or the header cannot be read.
    """
    try:
        header = read_header(data)
    except ImageError:
        return None
    return header.width, header.height


def decode_image(data: bytes, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes into an RGB uint8 array (H, W, 3), EXIF orientation applied.

    `max_pixels` defaults to MAX_PIXELS (read at call time). The pixel size is checked from the header before
    anything is decoded; bytes after the end of the image are ignored.

    Raises:
        ImageError: empty, too large, not an accepted format, a decompression bomb, corrupt, or truncated.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if not data:
        raise ImageError(f"{name}: file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: file is {len(data) / 2**20:.0f} MB; the limit is "
                         f"{MAX_FILE_BYTES // 2**20} MB. Resize the photo and try again")
    with _named(name):
        header = read_header(data)
        _check_declared(header, limit)
        extent = image_extent(data, header)
    image = memoryview(data)[:extent.end]
    with _decode_slot(name):
        bgr = _imdecode(image, name)
        if header.format == "JPEG" and _jpeg_scan_cut(image, extent, bgr):
            raise ImageError(f"{name}: image data is truncated (the JPEG scan data stops before the last "
                             "block; the rest would be grey); the file was cut short: copy it again")
        h, w = bgr.shape[:2]
        if sorted((h, w)) != sorted((header.width, header.height)):
            raise ImageError(f"{name}: decoded {w}x{h} pixels but the header declares "
                             f"{header.width}x{header.height}; the file is corrupt")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


@contextmanager
def _named(name: str) -> Iterator[None]:
    """Put the file name in front of the message of an ImageError raised inside."""
    try:
        yield
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None


def _check_declared(header: Header, limit: int) -> None:
    """Refuse, before decoding, what the header declares: too many pixels, oversized buffers, too small."""
    w, h = header.width, header.height
    if w * h > limit:
        raise ImageError(f"declares {w}x{h} pixels, over the {limit / 1e6:g} MP limit "
                         "(possible decompression bomb); refused")
    if header.buffer_bytes > OUTPUT_BYTES_PER_PIXEL * limit:
        raise ImageError(f"declares {header.buffer_bytes / 2**20:.0f} MB decoding buffers (TIFF strips "
                         f"or tiles) for {w}x{h} pixels, over the {limit / 1e6:g} MP limit's "
                         f"{OUTPUT_BYTES_PER_PIXEL * limit / 2**20:.0f} MB (possible decompression bomb); refused")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{w}x{h} pixels is too small to hold a face")


@contextmanager
def _decode_slot(name: str) -> Iterator[None]:
    """Hold one of the MAX_CONCURRENT_DECODES decode slots; ImageError if none frees up within DECODE_WAIT_S."""
    if not _DECODE_SLOTS.acquire(timeout=DECODE_WAIT_S):
        raise ImageError(f"{name}: not decoded: {MAX_CONCURRENT_DECODES} other images were being decoded for "
                         f"{DECODE_WAIT_S:g} s; try again")
    try:
        yield
    finally:
        _DECODE_SLOTS.release()


def _imdecode(image: memoryview, name: str) -> np.ndarray:
    """cv2.imdecode of the image bytes into BGR uint8 (H, W, 3); IMREAD_COLOR applies EXIF orientation."""
    try:
        bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageError(f"{name}: cannot decode ({e.err}); not an image or corrupt") from None
    if bgr is None:
        raise ImageError(f"{name}: not a readable image (corrupt data)")
    return bgr


def _jpeg_scan_cut(image: memoryview, extent: Extent, bgr: np.ndarray) -> bool:
    """Whether libjpeg ran out of scan data and filled the rest with grey (it only warns on stderr).

    A JPEG cut inside a scan and closed with an end marker decodes with every block after the cut empty: exactly
    grey, the last block included. So when no corner of `bgr` (the decoded BGR uint8 (H, W, 3), EXIF orientation
    applied) is that grey, no block was left empty. When one is, the decoder tells: the file is decoded again with
    filler bytes (after the restart marker due next, if the scan has restart markers) before the marker that ends
    the last scan. A complete scan never reads them (the same pixels); a cut one decodes them as the missing
    blocks (other pixels). Not caught: a cut inside the last blocks themselves, and a progressive JPEG cut inside
    its last scan (image_headers checks the earlier scans are all there), whose blocks then lack only what that
    scan refines.
    """
    corners = bgr[[0, 0, -1, -1], [0, -1, 0, -1]]
    if not (corners == _EMPTY_BLOCK_BGR).all(axis=1).any():
        return False
    restart = bytes((0xFF, extent.next_restart)) if extent.next_restart else b""
    padded = b"".join((image[:extent.scan_end], restart, _JPEG_FILLER, image[extent.scan_end:]))
    try:
        again = cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        again = None            # it read the filler: a complete scan never does
    return again is None or again.shape != bgr.shape or not np.array_equal(again, bgr)


def encode_jpeg(image_rgb: np.ndarray, quality: int) -> bytes:
    """Encode an RGB uint8 (H, W, 3) image as JPEG bytes at `quality` (1..100).

    Raises:
        ImageError: the array is not uint8 (H, W, 3) with H, W >= 1, or OpenCV cannot encode it.
        ValueError: `quality` is not an integer in 1..100.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an integer from 1 to 100, got {quality!r}")
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"cannot encode a JPEG from a {img.dtype} {img.shape} array; expected RGB uint8 (H, W, 3)")
    try:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    except cv2.error as e:
        raise ImageError(f"cannot encode a {img.shape[1]}x{img.shape[0]} image as JPEG ({e.err})") from None
    if not ok:
        raise ImageError(f"cannot encode a {img.shape[1]}x{img.shape[0]} image as JPEG (OpenCV refused it)")
    return buf.tobytes()


def load_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file into RGB uint8 (H, W, 3); `max_pixels` as in decode_image.

    Raises:
        ImageError: the file is missing, unreadable or not a usable image (see decode_image).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{p}: file is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{p}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{p}: permission denied") from None
    except OSError as e:
        raise ImageError(f"{p}: cannot be read ({e.strerror or e})") from None
    return decode_image(data, str(p), max_pixels)
