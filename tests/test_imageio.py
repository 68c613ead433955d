"""Safe image loading: every bad file gets a clear ImageError."""
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest

from facegate.edge_runtime import imageio
from facegate.edge_runtime.errors import ImageError
from facegate.edge_runtime.imageio import decode_image, encode_jpeg, header_size, load_image


def _jpeg(h=40, w=60):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 200                       # red in BGR
    return cv2.imencode(".jpg", img)[1].tobytes()


def _png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_decodes_to_rgb():
    img = decode_image(_jpeg())
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8
    assert img[..., 0].mean() > 150 and img[..., 2].mean() < 50      # red is channel 0 in RGB


def test_header_sizes():
    assert header_size(_jpeg(40, 60)) == (60, 40)
    assert header_size(_png_header(123, 45)) == (123, 45)
    assert header_size(b"not an image at all") is None


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (b"hello, this is text and not a picture" * 10, "not a readable image"),
    (_png_header(100_000, 100_000) + b"\0" * 100, "decompression bomb"),
])
def test_bad_bytes(data, match):
    with pytest.raises(ImageError, match=match):
        decode_image(data, "x.jpg")


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "cut.jpg"
    p.write_bytes(_jpeg(200, 200)[:-300])
    with pytest.raises(ImageError, match="truncated|not a readable"):
        load_image(p)


def test_tiny_image_refused():
    with pytest.raises(ImageError, match="too small"):
        decode_image(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_exif_orientation_applied():
    # a 20x40 (h x w) JPEG tagged "rotate 90 CW" (orientation 6) must come out 40x20
    jpg = bytearray(cv2.imencode(".jpg", np.full((20, 40, 3), 128, np.uint8))[1].tobytes())
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00" + b"\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    data = bytes(jpg[:2]) + seg + bytes(jpg[2:])
    assert decode_image(data).shape == (40, 20, 3)


def test_encode_jpeg_round_trips_through_decode_image():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (220, 30, 30)                                      # red left half, blue right half
    rgb[:, 32:] = (30, 30, 220)
    data = encode_jpeg(rgb, 90)
    assert data[:3] == b"\xff\xd8\xff" and header_size(data) == (64, 48)
    back = decode_image(data)
    assert back.shape == (48, 64, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - rgb).mean() < 8                  # RGB order kept, no channel swap
    assert encode_jpeg(rgb[:, ::-1], 90) != data                      # non-contiguous views are encoded as given
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_jpeg(noisy, 30)) < len(encode_jpeg(noisy, 95))


@pytest.mark.parametrize("image", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                                   np.zeros((8, 8, 4), np.uint8), np.zeros((0, 8, 3), np.uint8)])
def test_encode_jpeg_refuses_what_is_not_an_rgb_image(image):
    with pytest.raises(ImageError, match="expected RGB uint8"):
        encode_jpeg(image, 90)


@pytest.mark.parametrize("quality", [0, 101, 90.0, True])
def test_encode_jpeg_refuses_a_bad_quality(quality):
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(np.zeros((8, 8, 3), np.uint8), quality)


# --- every format OpenCV decodes: accepted ones decode, bombs are refused from the header, others by name ----------

PHOTO = "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@pytest.fixture(scope="module")
def photo(data_dir) -> bytes:
    """A real 250x250 JPEG photo."""
    return (data_dir / PHOTO).read_bytes()


@pytest.fixture(scope="module")
def photo_bgr(photo) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)


def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _fix_png_crc(data: bytearray, at: int) -> bytearray:
    """Recompute the CRC of the PNG chunk whose length field is at `at`."""
    length = struct.unpack(">I", data[at:at + 4])[0]
    data[at + 8 + length:at + 12 + length] = struct.pack(">I", zlib.crc32(data[at + 4:at + 8 + length]))
    return data


def _tiff(width: int, height: int, order: str = "<", extra: tuple = (), pixels: bool = True) -> bytes:
    """A minimal uncompressed 8-bit grey TIFF in one strip (mid-grey pixels, or none when `pixels` is False)."""
    fields = sorted([(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0),
                     (277, 3, 1), (278, 4, height), (279, 4, width * height), *extra])
    ifd_size = 2 + 12 * len(fields) + 4
    out = bytearray((b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8))
    out += struct.pack(order + "H", len(fields))
    for tag, kind, value in fields:
        value = 8 + ifd_size if tag == 273 else value
        raw = struct.pack(order + "HH", value, 0) if kind == 3 else struct.pack(order + "I", value)
        out += struct.pack(order + "HHI", tag, kind, 1) + raw
    out += b"\x00\x00\x00\x00"
    return bytes(out + (b"\x80" * (width * height) if pixels else b"\x00" * 64))


def _webp_lossless_bomb(width: int, height: int) -> bytes:
    """A lossless WebP of one colour declaring width x height: a few dozen bytes that decode to any size."""
    data = bytearray(_encode(".webp", np.zeros((16, 16, 3), np.uint8), cv2.IMWRITE_WEBP_QUALITY, 101))
    bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
    data[21:25] = (bits | (width - 1) | (height - 1) << 14).to_bytes(4, "little")
    return bytes(data)


def _vp8x(width: int, height: int, flags: int = 0) -> bytes:
    """An extended (VP8X) WebP holding a one-colour lossless image of width x height."""
    vp8l = _webp_lossless_bomb(width, height)[12:]
    body = b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little") + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _with_size(fmt: str, data: bytes, w: int, h: int) -> bytes:
    """`data` of format `fmt` with its header's pixel size set to w x h (the pixel data left as it was)."""
    d = bytearray(data)
    if fmt == "jpeg":
        at = d.index(b"\xff\xc0") + 5
        d[at:at + 4] = struct.pack(">HH", h, w)
    elif fmt == "png":
        d[16:24] = struct.pack(">II", w, h)
        _fix_png_crc(d, 8)
    elif fmt == "webp-vp8":
        d[26:30] = struct.pack("<HH", w, h)
    elif fmt == "gif":
        d[6:10] = struct.pack("<HH", w, h)
    elif fmt == "bmp":
        d[18:26] = struct.pack("<ii", w, h)
    return bytes(d)


def _bombs() -> dict[str, bytes]:
    """Files of every accepted format that declare more pixels than MAX_PIXELS."""
    img = np.full((32, 32, 3), 90, np.uint8)
    os2_bmp = bytearray(_encode(".bmp", img))
    os2_bmp[14:26] = struct.pack("<iHHHH", 12, 60000, 60000, 1, 24) + b"\x00\x00"
    return {
        "jpeg": _with_size("jpeg", _encode(".jpg", img), 10000, 10000),
        "png": _with_size("png", _encode(".png", img), 10000, 10000),
        "webp lossless (VP8L)": _webp_lossless_bomb(10000, 10000),
        "webp lossy (VP8)": _with_size("webp-vp8", _encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 80), 16383, 16383),
        "webp extended (VP8X)": _vp8x(10000, 10000),
        "tiff little-endian": _tiff(10000, 10000, "<", pixels=False),
        "tiff big-endian": _tiff(10000, 10000, ">", pixels=False),
        "tiff tiles": _tiff(100, 100, extra=((322, 4, 30000), (323, 4, 30000)), pixels=False),
        "bmp": _with_size("bmp", _encode(".bmp", img), 10000, -10000),
        "bmp os/2": bytes(os2_bmp),
        "gif": _with_size("gif", _encode(".gif", img), 65535, 65535),
        "pgm": b"P5\n# a comment\n10000 10000\n255\n" + bytes(1024),
    }


@pytest.fixture
def no_decoding(monkeypatch):
    """cv2.imdecode fails the test if it is called."""
    def imdecode(*_):
        raise AssertionError("cv2.imdecode was called")
    monkeypatch.setattr(imageio.cv2, "imdecode", imdecode)


@pytest.mark.parametrize("kind", list(_bombs()))
def test_decompression_bombs_refused_before_decoding(kind, no_decoding):
    with pytest.raises(ImageError, match="possible decompression bomb"):
        decode_image(_bombs()[kind], "bomb")


def test_the_lossless_webp_bomb_is_real():
    """The VP8L bomb above is a valid file: OpenCV would decode it to the declared size."""
    bomb = _webp_lossless_bomb(640, 480)
    assert len(bomb) < 64 and cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    assert header_size(_webp_lossless_bomb(10000, 10000)) == (10000, 10000)


def test_header_sizes_of_every_accepted_format():
    img = np.zeros((20, 30, 3), np.uint8)
    assert header_size(_encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 80)) == (30, 20)
    assert header_size(_encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 101)) == (30, 20)
    assert header_size(_vp8x(30, 20)) == (30, 20)
    assert header_size(_tiff(30, 20, "<")) == header_size(_tiff(30, 20, ">")) == (30, 20)
    assert header_size(_encode(".tiff", img)) == (30, 20)
    assert header_size(_encode(".bmp", img)) == header_size(_encode(".gif", img)) == (30, 20)
    assert header_size(b"P6 #c\n30\r# more\r\n 20 255\n") == (30, 20)


@pytest.mark.parametrize("ext,params", [(".jpg", ()), (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
                                        (".png", ()), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80)),
                                        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101)), (".tiff", ()), (".bmp", ()),
                                        (".gif", ()), (".ppm", ())])
def test_every_accepted_format_decodes(photo_bgr, ext, params):
    data = _encode(ext, photo_bgr, *params)
    rgb = decode_image(data, f"photo{ext}")
    assert rgb.shape == (250, 250, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])


def test_big_endian_tiff_and_pgm_decode(data_dir):
    grey = decode_image(_tiff(32, 24, ">"))
    assert grey.shape == (24, 32, 3) and (grey == 128).all()
    assert load_image(data_dir / "orl_faces/s1/1.pgm").shape == (112, 92, 3)


def _jp2_and_friends() -> dict[str, bytes]:
    img = np.full((32, 32, 3), 90, np.uint8)
    files = {name: _encode(ext, img) for name, ext in
             [("JPEG 2000", ".jp2"), ("AVIF/HEIF", ".avif"), ("PAM", ".pam"), ("Sun raster", ".ras")]}
    files["PFM"] = _encode(".pfm", img.astype(np.float32) / 255)
    files["Radiance HDR"] = _encode(".hdr", img.astype(np.float32) / 255)
    files["OpenEXR"] = b"v/1\x01" + bytes(300)
    files["BigTIFF"] = b"II+\x00\x08\x00\x00\x00" + bytes(300)
    return files


@pytest.mark.parametrize("name", list(_jp2_and_friends()))
def test_formats_whose_header_is_not_read_are_refused_by_name(name, no_decoding):
    with pytest.raises(ImageError, match=f"{name} images are not accepted; send a JPEG, PNG, WebP"):
        decode_image(_jp2_and_friends()[name], "x")


def test_animations_refused(photo_bgr, no_decoding):
    png = bytearray(_encode(".png", photo_bgr))
    actl = b"acTL" + struct.pack(">II", 2, 0)
    png[33:33] = struct.pack(">I", 8) + actl + struct.pack(">I", zlib.crc32(actl))
    with pytest.raises(ImageError, match="animated PNG is not accepted"):
        decode_image(bytes(png))
    with pytest.raises(ImageError, match="animated WebP is not accepted"):
        decode_image(_vp8x(64, 64, flags=0x02))


def test_tiny_tiff_strip_buffer_is_bounded(no_decoding):
    """A small image may not declare strips or tiles that would need more memory than a MAX_PIXELS image."""
    with pytest.raises(ImageError, match="decoding buffers"):
        decode_image(_tiff(100, 100, extra=((322, 4, 30000), (323, 4, 30000)), pixels=False))


# --- at most MAX_CONCURRENT_DECODES decodes at once --------------------------------------------------------------

def test_decodes_run_at_most_max_concurrent_at_once(monkeypatch):
    running, peak, lock, real = 0, 0, threading.Lock(), cv2.imdecode

    def slow_imdecode(buf, flags):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return real(buf, flags)

    monkeypatch.setattr(imageio.cv2, "imdecode", slow_imdecode)
    data, results = _jpeg(64, 64), []
    threads = [threading.Thread(target=lambda: results.append(decode_image(data).shape))
               for _ in range(4 * imageio.MAX_CONCURRENT_DECODES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(64, 64, 3)] * len(threads)
    assert peak == imageio.MAX_CONCURRENT_DECODES


def test_a_decode_waiting_too_long_for_a_slot_is_refused(monkeypatch):
    monkeypatch.setattr(imageio, "DECODE_WAIT_S", 0.05)
    held = [imageio._DECODE_SLOTS.acquire(timeout=1) for _ in range(imageio.MAX_CONCURRENT_DECODES)]
    try:
        assert all(held)
        with pytest.raises(ImageError, match="other images were being decoded.*try again"):
            decode_image(_jpeg(64, 64))
    finally:
        for _ in held:
            imageio._DECODE_SLOTS.release()
    assert decode_image(_jpeg(64, 64)).shape == (64, 64, 3)


# --- truncation: judged from the structure and the decoder, never from the last bytes ---------------------------

def test_half_a_jpeg_with_an_end_marker_is_refused(photo):
    with pytest.raises(ImageError, match="truncated"):
        decode_image(photo[:len(photo) // 2] + b"\xff\xd9", "half.jpg")


def test_trailing_data_after_the_end_of_a_jpeg_is_ignored(photo):
    whole = decode_image(photo)
    junk = np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    assert np.array_equal(decode_image(photo + junk, "phone.jpg"), whole)
    assert np.array_equal(decode_image(photo + b"\xff\xd9" + photo, "two.jpg"), whole)   # e.g. a second image


def _jpeg_variants(photo_bgr) -> dict[str, bytes]:
    odd = photo_bgr[:237, :243]                          # sides that are not whole MCUs
    rotated = bytearray(_encode(".jpg", odd))
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    rotated[2:2] = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    return {
        "baseline 4:2:0": _encode(".jpg", odd),
        "baseline 4:4:4": _encode(".jpg", odd, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
        "grey": _encode(".jpg", cv2.cvtColor(odd, cv2.COLOR_BGR2GRAY)),
        "restart markers": _encode(".jpg", odd, cv2.IMWRITE_JPEG_RST_INTERVAL, 3),
        "optimized huffman": _encode(".jpg", odd, cv2.IMWRITE_JPEG_OPTIMIZE, 1),
        "exif rotated": bytes(rotated),
        "progressive": _encode(".jpg", odd, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    }


@pytest.mark.parametrize("variant", ["baseline 4:2:0", "baseline 4:4:4", "grey", "restart markers",
                                     "optimized huffman", "exif rotated", "progressive"])
def test_a_jpeg_cut_anywhere_and_closed_with_an_end_marker_is_refused(photo_bgr, variant):
    """Cut points from 5% to 80% of the file: libjpeg would fill the rest with grey and only warn on stderr.
    (A progressive JPEG cut inside its last scan passes: that scan only refines what earlier scans sent.)"""
    data = _jpeg_variants(photo_bgr)[variant]
    assert decode_image(data).shape[:2] in ((237, 243), (243, 237))
    for frac in np.linspace(0.05, 0.8, 16):
        with pytest.raises(ImageError, match="truncated"):
            decode_image(data[:int(len(data) * frac)] + b"\xff\xd9", f"cut at {frac:.0%}")


@pytest.mark.parametrize("params", [(), (cv2.IMWRITE_JPEG_RST_INTERVAL, 1)])
def test_grey_corners_are_not_taken_for_a_cut(params):
    """Uniform mid-grey is exactly what a cut leaves; a complete file of it still decodes."""
    data = _encode(".jpg", np.full((64, 80, 3), 128, np.uint8), *params)
    assert (decode_image(data) == 128).all()


def test_a_jpeg_without_its_end_marker_is_refused(photo):
    with pytest.raises(ImageError, match="truncated.*ends inside the JPEG image data"):
        decode_image(photo[:-2])


def test_png_trailing_data_ignored_and_cut_refused(photo_bgr):
    png = _encode(".png", photo_bgr)
    assert np.array_equal(decode_image(png + b"trailing junk" * 200), photo_bgr[..., ::-1])
    iend = png[-12:]
    with pytest.raises(ImageError, match="truncated"):
        decode_image(png[:len(png) // 2] + iend, "half.png")
    with pytest.raises(ImageError, match="truncated.*no IEND"):
        decode_image(png[:-12], "no-end.png")


def test_png_chunk_checksums_checked(photo_bgr):
    png = bytearray(_encode(".png", photo_bgr))
    text = b"tEXt" + b"Comment\x00hello"
    png[33:33] = struct.pack(">I", len(text) - 4) + text + b"\x00\x00\x00\x00"          # wrong CRC
    with pytest.raises(ImageError, match="'tEXt' fails its checksum"):
        decode_image(bytes(png))


def test_webp_cut_short_refused(photo_bgr):
    webp = _encode(".webp", photo_bgr, cv2.IMWRITE_WEBP_QUALITY, 80)
    with pytest.raises(ImageError, match="truncated"):
        decode_image(webp[:len(webp) // 2])
    assert decode_image(webp + b"\x00" * 100).shape == (250, 250, 3)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("data,match", [
    (_jpeg(32, 32)[:2] + b"\xff\xfe\x00\x02" * 2_500_000 + b"\xff\xd9", "more than 10000 markers"),
    (_jpeg(32, 32)[:2] + b"\xff\xd0" * 5_000_000 + _jpeg(32, 32)[2:], "more than 10000 markers"),
    (_png_header(64, 64) + _png_chunk(b"abCd", b"") * 800_000, "more than 100000 chunks"),
    (b"P5\n" + b"# comment\n" * 1_000_000 + b"64 64 255\n", "PNM header is not <width> <height>"),
])
def test_files_of_tiny_segments_are_refused_quickly(data, match):
    """The structure walk is Python: a file of millions of tiny segments, chunks or comments is refused early."""
    start = time.perf_counter()
    with pytest.raises(ImageError, match=match):
        decode_image(data)
    assert time.perf_counter() - start < 2.0
