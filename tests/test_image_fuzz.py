"""Fuzzing the image entry points with a few thousand mutated files (a seeded mutator, no extra dependency).

Real photos (LFW), made small and encoded to every accepted format, are mutated (bit flips, byte changes,
truncations with and without an end marker, header sizes set huge, segment/chunk/IFD lengths corrupted, random
bytes inserted or removed, splices of two files, repeated slices) and fed through `decode_image`, `load_image`
and the admin upload path (`uploads.read_photos` in a Flask request, then `decode_image` as the admin routes do).
Next to them, real decompression bombs (one-colour images of many more pixels than the limit) go the same way.

The run happens in a child process (this file is its script) with MAX_PIXELS lowered to FUZZ_MAX_PIXELS, so a
bomb is many times the limit yet cheap to make. Asserted: nothing raises anything but ImageError (or the upload
layer's UploadError), nothing crashes the process, every bomb is refused, every unmutated file decodes, and the
peak resident memory grows by at most PEAK_BYTES_PER_PIXEL * MAX_PIXELS + PEAK_SLACK_BYTES over the warmed-up
process.
"""
from __future__ import annotations

import io
import json
import random
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

FUZZ_SEED = 20250611
FUZZ_MAX_PIXELS = 1_000_000
MUTANTS_PER_SEED = 240
# An upper bound on what one decode holds per declared pixel: the BGR image and the JPEG re-decode that checks
# a cut scan (3 + 3 bytes), a progressive JPEG's coefficients (up to 6), a GIF canvas and frame indices (5).
PEAK_BYTES_PER_PIXEL = 16
PEAK_SLACK_BYTES = 32 * 2**20          # allocator and interpreter noise over thousands of small decodes
BOMB_SIDE = 4000                       # 16 MP bombs: 16 times FUZZ_MAX_PIXELS
PHOTOS = ["lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "lfw/AJ_Cook/AJ_Cook_0001.jpg"]
NAMES = ["photo.jpg", "../../etc/passwd", "a\x00b\x1b[31m.png", "\u202eevil.jpg", "x" * 300, "", "😀.webp"]


# --- the corpus: small real photos in every accepted format, and real bombs ---------------------------------------

def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok, ext
    return buf.tobytes()


def _seed_files(data_dir: Path) -> dict[str, bytes]:
    """Each photo resized small (48x56 and 72x64) in every accepted format and variant."""
    seeds = {}
    for k, rel in enumerate(PHOTOS):
        img = cv2.imread(str(data_dir / rel), cv2.IMREAD_COLOR)
        img = cv2.resize(img, (48, 56) if k == 0 else (72, 64), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        for name, data in {
            "jpeg": _encode(".jpg", img), "jpeg-progressive": _encode(".jpg", img, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
            "jpeg-restarts": _encode(".jpg", img, cv2.IMWRITE_JPEG_RST_INTERVAL, 2),
            "png": _encode(".png", img), "png-grey": _encode(".png", grey),
            "webp-lossy": _encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 70),
            "webp-lossless": _encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 101),
            "tiff": _encode(".tiff", img), "bmp": _encode(".bmp", img), "gif": _encode(".gif", img),
            "ppm": _encode(".ppm", img), "pgm": _encode(".pgm", grey),
        }.items():
            seeds[f"{name}-{k}"] = data
    return seeds


def _bomb_files() -> dict[str, bytes]:
    """One-colour BOMB_SIDE x BOMB_SIDE images: small files that decode to many times FUZZ_MAX_PIXELS."""
    img = np.full((BOMB_SIDE, BOMB_SIDE, 3), (40, 90, 160), np.uint8)
    return {"jpeg": _encode(".jpg", img), "png": _encode(".png", img), "tiff": _encode(".tiff", img),
            "webp-lossless": _encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 101),
            "webp-lossy": _encode(".webp", img, cv2.IMWRITE_WEBP_QUALITY, 50), "gif": _encode(".gif", img)}


# --- the mutator --------------------------------------------------------------------------------------------------

def _flip_bits(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(min(len(d), 256)) if rng.random() < 0.5 else rng.randrange(len(d))
        d[i] ^= 1 << rng.randrange(8)
    return d


def _set_bytes(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 4)):
        d[rng.randrange(len(d))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return d


_END_MARKERS = {"jpeg": b"\xff\xd9", "png": b"\x00\x00\x00\x00IEND\xaeB`\x82", "gif": b"\x3b"}


def _truncate(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    cut = d[:rng.randrange(len(d))]
    if rng.random() < 0.5:
        cut += _END_MARKERS.get(fmt.split("-")[0], b"")
    return cut


def _huge(rng: random.Random, bits: int) -> int:
    return rng.choice([(1 << bits) - 1, 1 << (bits - 1), rng.randrange(1 << bits), 0, 1])


def _huge_size(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    """The header's pixel size fields set huge (or zero)."""
    kind = fmt.split("-")[0]
    if kind == "jpeg":
        for m in re.finditer(rb"\xff[\xc0\xc2]", d):
            d[m.start() + 5:m.start() + 9] = struct.pack(">HH", _huge(rng, 16), _huge(rng, 16))
    elif kind == "png":
        d[16:24] = struct.pack(">II", _huge(rng, 31), _huge(rng, 31))
        if rng.random() < 0.8:
            d[29:33] = struct.pack(">I", zlib.crc32(d[12:29]))
    elif kind == "webp":
        at = {b"VP8 ": 26, b"VP8L": 21, b"VP8X": 24}.get(bytes(d[12:16]), 24)
        d[at:at + 4] = struct.pack("<I", _huge(rng, 32))
    elif kind == "tiff":
        _tiff_set(d, rng, {256, 257, 278, 322, 323}, lambda: _huge(rng, 32))
    elif kind == "bmp":
        d[18:26] = struct.pack("<ii", _huge(rng, 31) * rng.choice([1, -1]), _huge(rng, 31) * rng.choice([1, -1]))
    elif kind == "gif":
        at = rng.choice([6, max(d.find(b"\x2c"), 6) + 5])
        d[at:at + 4] = struct.pack("<HH", _huge(rng, 16), _huge(rng, 16))
    else:
        d[:16] = d[:2] + f"\n{_huge(rng, 32)} {_huge(rng, 32)}\n".encode()[:14].ljust(14, b" ")
    return d


def _tiff_set(d: bytearray, rng: random.Random, tags: set[int] | None, value) -> None:
    """Set the value (or, with tags None, any field) of some entries of the first TIFF directory."""
    order = "<" if d[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", d[4:8])[0]
    if ifd + 2 > len(d):
        return
    count = struct.unpack(order + "H", d[ifd:ifd + 2])[0]
    for i in range(min(count, (len(d) - ifd - 2) // 12)):
        at = ifd + 2 + 12 * i
        tag = struct.unpack(order + "H", d[at:at + 2])[0]
        if (tags is None and rng.random() < 0.3) or (tags is not None and tag in tags):
            field = rng.choice([4, 8]) if tags is None else 8
            d[at + field:at + field + 4] = struct.pack(order + "I", value() & 0xFFFFFFFF)


def _length_fields(fmt: str, d: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of the length/offset fields of a file's segments, chunks or directory."""
    kind = fmt.split("-")[0]
    if kind == "jpeg":
        return [(m.start() + 2, ">H") for m in re.finditer(rb"\xff[\xc0-\xcf\xda-\xfe]", d)]
    if kind == "png":
        fields, pos = [], 8
        while pos + 8 <= len(d):
            fields.append((pos, ">I"))
            pos += 12 + struct.unpack(">I", d[pos:pos + 4])[0]
        return fields
    if kind == "webp":
        return [(4, "<I"), (16, "<I")]
    if kind == "tiff":
        return [(4, ("<" if d[:2] == b"II" else ">") + "I")]
    if kind == "bmp":
        return [(2, "<I"), (10, "<I"), (14, "<I")]
    if kind == "gif":
        return [(m.start() + 1, "<B") for m in re.finditer(rb"[\x01-\xff]", d[13:200])][:20]
    return [(3, "<B")]


def _corrupt_length(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    if fmt.startswith("tiff") and rng.random() < 0.5:
        _tiff_set(d, rng, None, lambda: rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]))
        return d
    fields = _length_fields(fmt, bytes(d))
    at, f = rng.choice(fields)
    size = struct.calcsize(f)
    if at + size <= len(d):
        bits = 8 * size
        d[at:at + size] = struct.pack(f, rng.choice([0, 1, 2, (1 << bits) - 1, rng.randrange(1 << bits)]))
    return d


def _random_bytes(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    at, n = rng.randrange(len(d)), rng.randint(1, 64)
    junk = bytes(rng.randrange(256) for _ in range(n))
    action = rng.randrange(3)
    if action == 0:
        return d[:at] + junk + d[at:]
    if action == 1:
        return d[:at] + d[at + n:]
    d[at:at + n] = junk
    return d


def _repeat_slice(fmt: str, d: bytearray, rng: random.Random) -> bytearray:
    a = rng.randrange(len(d))
    b = min(len(d), a + rng.randint(1, 512))
    return d[:b] + d[a:b] * rng.randint(1, 3) + d[b:]


MUTATIONS = [_flip_bits, _set_bytes, _truncate, _huge_size, _corrupt_length, _random_bytes, _repeat_slice]


def mutants(seeds: dict[str, bytes], rng: random.Random):
    """(case id, mutated bytes): MUTANTS_PER_SEED per seed, every mutation in turn, some splices of two seeds."""
    names = sorted(seeds)
    for name in names:
        fmt = name.rsplit("-", 1)[0]
        for i in range(MUTANTS_PER_SEED):
            if i % 20 == 19:
                other = seeds[rng.choice(names)]
                data = seeds[name][:rng.randrange(len(seeds[name]))] + other[rng.randrange(len(other)):]
                yield f"{name}#{i}:splice", data
                continue
            mutate = MUTATIONS[i % len(MUTATIONS)]
            yield f"{name}#{i}:{mutate.__name__}", bytes(mutate(fmt, bytearray(seeds[name]), rng))


# --- the child process -------------------------------------------------------------------------------------------

def _memory(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset) of this process, in bytes. Not
    ru_maxrss: a child's starts at its parent's peak (the bombs were encoded there)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) * 1024


def _reset_peak() -> None:
    """Set VmHWM back to the current resident size (Linux clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def _run(corpus: Path) -> dict:
    """Feed the corpus through every entry point; return what happened (JSON-able)."""
    from flask import Flask

    from facegate.edge_runtime import imageio
    from facegate.edge_runtime.admin import uploads
    from facegate.edge_runtime.errors import ImageError

    imageio.MAX_PIXELS = FUZZ_MAX_PIXELS
    app = Flask("fuzz")
    app.config["MAX_PHOTOS"] = 20
    seeds = {p.stem: p.read_bytes() for p in sorted((corpus / "seeds").iterdir())}
    bombs = {p.stem: p.read_bytes() for p in sorted((corpus / "bombs").iterdir())}
    rng, tmp = random.Random(FUZZ_SEED), corpus / "case.bin"
    report = {"unexpected": [], "bombs_decoded": [], "seeds_failed": [], "outcomes": {}, "cases": 0}

    def feed(case: str, data: bytes, every_path: bool) -> list[str]:
        """Outcome of each entry point: 'ok WxH', an ImageError/UploadError, anything else is unexpected."""
        outcomes = []
        paths = [("decode", lambda: imageio.decode_image(data, case)),
                 ("upload", lambda: _via_upload(app, uploads, imageio, data, rng))]
        if every_path:
            paths.append(("load", lambda: (tmp.write_bytes(data), imageio.load_image(tmp))[1]))
        for path, call in paths:
            try:
                img = call()
                assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, img.shape
                outcomes.append(f"ok {img.shape[1]}x{img.shape[0]}")
            except (ImageError, uploads.UploadError) as e:
                outcomes.append(f"{type(e).__name__}: {e}")
            except BaseException as e:   # noqa: BLE001 - the finding this test looks for
                report["unexpected"].append(f"{case} via {path}: {type(e).__name__}: {e}"[:400])
                outcomes.append("unexpected")
        return outcomes

    for name, data in seeds.items():                            # warm up; unmutated files must decode
        if any(not o.startswith("ok") for o in feed(name, data, True)):
            report["seeds_failed"].append(name)
    _reset_peak()
    report["baseline_rss"] = _memory("VmRSS")
    for name, data in bombs.items():
        if any(o.startswith("ok") or "decompression bomb" not in o for o in feed(f"bomb-{name}", data, True)):
            report["bombs_decoded"].append(name)
    for i, (case, data) in enumerate(mutants(seeds, rng)):
        outcome = feed(case, data, i % 8 == 0)[0]
        key = "ok" if outcome.startswith("ok") else outcome.split(":")[0]
        report["outcomes"][key] = report["outcomes"].get(key, 0) + 1
        report["cases"] += 1
    report["peak_rss"] = _memory("VmHWM")
    return report


def _via_upload(app, uploads, imageio, data: bytes, rng: random.Random) -> np.ndarray:
    """The admin upload path: a multipart POST read by uploads.read_photos, then decoded like the admin routes."""
    filename = rng.choice(NAMES)
    with app.test_request_context("/test", method="POST", content_type="multipart/form-data",
                                  data={"photo": (io.BytesIO(data), filename)}):
        (label, raw), = uploads.read_photos("photo", max_count=1)
        assert len(label) <= uploads.MAX_LABEL_CHARS and "/" not in label and raw == data, (label, len(raw))
        return imageio.decode_image(raw, label)


# --- the test -----------------------------------------------------------------------------------------------------

def test_fuzzed_images_only_raise_image_errors_and_stay_within_memory(data_dir, tmp_path):
    for sub, files in (("seeds", _seed_files(data_dir)), ("bombs", _bomb_files())):
        (tmp_path / sub).mkdir()
        for name, data in files.items():
            (tmp_path / sub / f"{name}.bin").write_bytes(data)
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, __file__, str(tmp_path), str(out)], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0 and out.exists(), \
        f"the fuzz child died (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads(out.read_text())
    bound = PEAK_BYTES_PER_PIXEL * FUZZ_MAX_PIXELS + PEAK_SLACK_BYTES
    grown = report["peak_rss"] - report["baseline_rss"]
    problems = [*report["unexpected"][:20],
                *[f"unmutated {name} did not decode on every path" for name in report["seeds_failed"]],
                *[f"the {name} bomb was not refused as one" for name in report["bombs_decoded"]]]
    if grown > bound:
        problems.append(f"peak memory grew by {grown / 2**20:.0f} MiB, over the {bound / 2**20:.0f} MiB bound")
    if report["cases"] < 2000 or not report["outcomes"].get("ok"):
        problems.append(f"too few cases or none decoded: {report['cases']} cases, {report['outcomes']}")
    assert not problems, "\n".join(problems)

if __name__ == "__main__":
    result = _run(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result))
