"""Safe image loading: clear errors for non-images, truncated files, huge files and decompression bombs;
and JPEG encoding of RGB images (face chips, test frames)."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError

MAX_FILE_BYTES = 40 * 1024 * 1024     # a phone photo is < 15 MB; refuse anything far beyond
MAX_PIXELS = 50_000_000               # 50 MP; a decompression bomb declares far more
MIN_SIDE = 16                         # smaller than this cannot hold a recognisable face


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared in a PNG, JPEG, GIF, BMP or WebP header, without decoding pixels.

    Returns None for other formats (OpenCV's own pixel limit then applies).
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return w, h
        return None
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into an RGB uint8 array (H, W, 3), EXIF orientation applied.

    Raises:
        ImageError: empty, too large, a decompression bomb, not an image, or truncated.
    """
    if not data:
        raise ImageError(f"{name}: file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name}: file is {len(data) / 2**20:.0f} MB; the limit is "
                         f"{MAX_FILE_BYTES // 2**20} MB. Resize the photo and try again")
    declared = header_size(data)
    if declared is not None and declared[0] * declared[1] > max_pixels:
        raise ImageError(f"{name}: declares {declared[0]}x{declared[1]} pixels, over the "
                         f"{max_pixels / 1e6:.0f} MP limit (possible decompression bomb); refused")
    buf = np.frombuffer(data, np.uint8)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)   # IMREAD_COLOR applies EXIF orientation
    except cv2.error as e:
        raise ImageError(f"{name}: cannot decode ({e.err}); not an image or corrupt") from None
    if bgr is None:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    if _looks_truncated(data):
        raise ImageError(f"{name}: image data is truncated (file cut short); re-copy the file")
    h, w = bgr.shape[:2]
    if h * w > max_pixels:
        raise ImageError(f"{name}: {w}x{h} pixels is over the {max_pixels / 1e6:.0f} MP limit")
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{name}: {w}x{h} pixels is too small to hold a face")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _looks_truncated(data: bytes) -> bool:
    """OpenCV decodes cut-off JPEG/PNG files with grey filler instead of failing; catch them here."""
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-1024:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


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


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file into RGB uint8 (H, W, 3).

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
    return decode_image(data, str(p), max_pixels)
