"""Safe image loading: every bad file gets a clear ImageError."""
import struct
import zlib

import cv2
import numpy as np
import pytest

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
