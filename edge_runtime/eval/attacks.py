"""Seeded synthetic presentation attacks (ISO/IEC 30107 "PAI species"): a bona fide frame printed on paper
or shown on a screen, then re-captured by a camera.

An attack is a *re-capture* of the whole scene, not of the face chip: the source image (uint8 RGB (H, W, 3))
becomes a presentation attack instrument (a print with its paper margin, or a screen with its bezel) that
occupies part of a new camera frame (given the face box, the PAI shows the part of the scene around the face
that keeps the face at its size: face_window), in perspective, in front of a synthetic room background; the camera then
blurs, adds sensor noise and JPEG-compresses. The detector and the liveness model see the result like any
camera frame (docs/liveness_benchmark.md).

Every parameter is drawn from `rng` (`np.random.default_rng(seed)`) uniformly within the ranges below, so a
seed gives the same attack bit for bit. The camera frame has the source's aspect ratio and at most
MAX_SIDE pixels on its longer side.

print (PRINT_RANGES): reduced gamut (saturation and contrast pulled towards paper white and ink black), a
CMY halftone dot screen, paper grain, a white paper margin, perspective (scale, rotation, corner tilt),
optical blur, a specular glare blob.

screen (SCREEN_RANGES): gamma, brightness and colour-temperature shift with a raised black level, the image
resampled on the display's pixel grid (RGB sub-pixel stripes and a dark matrix between rows) at a density that
does not match the camera's sampling, so the re-capture aliases into moire; a dark bezel; a reflection band;
perspective.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_SIDE = 640            # the re-capturing camera frame's longer side (px) at most

# (low, high) of each uniformly drawn parameter. Sizes are fractions of the camera frame or the PAI.
CAMERA_RANGES = {
    "scale": (0.6, 0.95),            # PAI's longer side (with margin/bezel) / frame's matching side
    "rotation_deg": (-8.0, 8.0),     # in-plane rotation of the PAI
    "tilt": (0.0, 0.08),             # each corner moved by up to this fraction of the PAI size (perspective)
    "blur_sigma": (0.3, 1.0),        # camera optics, px of the camera frame
    "noise_std": (1.0, 4.0),         # sensor noise, grey levels
    "jpeg_quality": (70, 95),        # the camera's encoder
}
PRINT_RANGES = {
    "saturation": (0.45, 0.8),       # chroma kept by the printer (1 = all)
    "ink_black": (30.0, 70.0),       # darkest grey the ink reaches
    "paper_white": (200.0, 240.0),   # brightest grey: the paper
    "halftone_pitch": (3.0, 5.0),    # dot-screen period in print pixels (the print is drawn at 2x the source)
    "halftone_amount": (0.3, 0.7),   # how much of the dot pattern survives the ink spread
    "grain": (0.02, 0.06),           # paper texture: std of multiplicative grain
    "margin": (0.03, 0.08),          # white paper margin, fraction of the print's longer side
    "glare_strength": (0.0, 0.6),    # peak of the specular blob (fraction of the way to white)
    "glare_radius": (0.1, 0.35),     # its radius, fraction of the print's longer side
}
SCREEN_RANGES = {
    "gamma": (0.7, 1.4),             # display gamma relative to the source
    "brightness": (0.75, 1.15),      # display gain
    "black_level": (6.0, 25.0),      # a lit screen's black (grey levels)
    "blue_gain": (1.0, 1.12),        # cooler white point
    "density": (1.15, 1.85),         # display pixels per camera pixel (not an integer: moire)
    "sensor_blur": (0.08, 0.2),      # sensor integration, sigma in camera pixels (larger: fainter moire)
    "matrix_dark": (0.3, 0.7),       # darkness of the black matrix between pixel rows
    "bezel": (0.03, 0.1),            # bezel width, fraction of the screen's longer side
    "bezel_grey": (8.0, 45.0),       # the bezel's colour
    "reflection": (0.04, 0.22),      # strength of the reflected band (fraction of white)
}


@dataclass(frozen=True)
class Attack:
    """One synthetic attack presentation.

    image: uint8 RGB (h, w, 3), the re-captured camera frame.
    homography: float64 (3, 3) mapping source-image pixels (x, y, 1) to the attack image's pixels.
    species: "print" or "screen".
    params: the drawn parameters {name: float}.
    """

    image: np.ndarray
    homography: np.ndarray
    species: str
    params: dict

    def map_box(self, box_xyxy) -> np.ndarray:
        """float32 (4,) x1, y1, x2, y2: the bounding box of a source-image box after the re-capture."""
        x1, y1, x2, y2 = (float(t) for t in box_xyxy)
        pts = np.array([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]], np.float64)
        q = cv2.perspectiveTransform(pts, self.homography)[0]
        return np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()], np.float32)


def draw(rng: np.random.Generator, ranges: dict) -> dict:
    """One uniform draw per range: {name: float} (int ranges give ints)."""
    out = {}
    for k, (lo, hi) in ranges.items():
        out[k] = int(rng.integers(lo, hi + 1)) if isinstance(lo, int) else float(rng.uniform(lo, hi))
    return out


def frame_shape(source_shape: tuple[int, ...]) -> tuple[int, int]:
    """(h, w) of the camera frame for a source of (H, W, ...): same aspect ratio, longer side <= MAX_SIDE."""
    h, w = source_shape[:2]
    s = min(1.0, MAX_SIDE / max(h, w))
    return max(16, int(round(h * s))), max(16, int(round(w * s)))


def background(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A synthetic room behind the PAI, float32 (h, w, 3) 0..255: a grey-ish wall with smooth shading, a few
    blurred rectangles (furniture, a door frame) and fine grain. No faces (so no face in the attack frame
    but the presented one)."""
    h, w = shape
    wall = rng.uniform(60, 200) + rng.uniform(-20, 20, 3)                   # a grey-ish wall colour
    coarse = wall + rng.normal(0, 18, size=(3, 4, 1)) + rng.normal(0, 5, size=(3, 4, 3))
    img = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 6))):
        x1, x2 = sorted(rng.integers(0, w, 2))
        y1, y2 = sorted(rng.integers(0, h, 2))
        thing = rng.uniform(20, 230) + rng.uniform(-25, 25, 3)
        img[y1:y2 + 1, x1:x2 + 1] = img[y1:y2 + 1, x1:x2 + 1] * 0.4 + thing * 0.6
    img = cv2.GaussianBlur(img, (0, 0), max(1.0, 0.004 * max(h, w)))
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255)


def face_window(shape: tuple[int, ...], face_box, scale: float, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the source scene the attacker prints or shows when the face is given: the window of
    (scale * frame) source pixels centred on the face as far as the source allows, so that placed at `scale`
    the face keeps its pixel size in the camera frame (an attacker presents a door-sized face) while the PAI
    still shows the scene around it. Returns (x0, y0, w, h) in source pixels."""
    h, w = shape[:2]
    fh, fw = frame_hw
    ww, wh = min(w, max(16, int(round(scale * fw)))), min(h, max(16, int(round(scale * fh))))
    b = np.asarray(face_box, np.float64).reshape(4)
    x0 = int(np.clip(round((b[0] + b[2]) / 2 - ww / 2), 0, w - ww))
    y0 = int(np.clip(round((b[1] + b[3]) / 2 - wh / 2), 0, h - wh))
    return x0, y0, ww, wh


def source_part(image: np.ndarray, face_box, p: dict) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """(what the PAI shows, the camera frame (h, w), source -> shown homography float64 (3, 3)): the whole
    source without a face box, else face_window around it."""
    frame = frame_shape(image.shape)
    if face_box is None:
        return image, frame, np.eye(3)
    x0, y0, ww, wh = face_window(image.shape, face_box, p["scale"], frame)
    return image[y0:y0 + wh, x0:x0 + ww], frame, _offset(-x0, -y0)


def canvas_px_per_frame_px(canvas_wh: tuple[int, int], frame_hw: tuple[int, int], scale: float) -> float:
    """How many PAI-canvas pixels one camera pixel spans once `placement` has scaled the canvas."""
    return 1.0 / (scale * min(frame_hw[1] / canvas_wh[0], frame_hw[0] / canvas_wh[1]))


def placement(canvas_wh: tuple[int, int], frame_hw: tuple[int, int], p: dict,
              rng: np.random.Generator) -> np.ndarray:
    """float64 (3, 3) homography from PAI-canvas pixels to camera-frame pixels: the canvas scaled so its
    longer side spans p["scale"] of the frame, rotated by p["rotation_deg"], corners moved by up to
    p["tilt"] of its size, placed at a random position that keeps its centre in the middle half."""
    cw, ch = canvas_wh
    fh, fw = frame_hw
    s = 1.0 / canvas_px_per_frame_px(canvas_wh, frame_hw, p["scale"])
    w, h = cw * s, ch * s
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    a = np.deg2rad(p["rotation_deg"])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = corners @ rot.T + rng.uniform(-1, 1, (4, 2)) * p["tilt"] * max(w, h)
    centre = np.array([fw / 2, fh / 2]) + rng.uniform(-0.25, 0.25, 2) * np.array(
        [max(0.0, fw - w), max(0.0, fh - h)]) * 2
    dst = (corners + centre).astype(np.float32)
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def composite(canvas: np.ndarray, homog: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The PAI canvas float32 (ch, cw, 3) warped into the frame over `back` float32 (h, w, 3); bilinear, no
    pre-filter (the camera samples what is in front of it: fine periodic patterns alias)."""
    h, w = back.shape[:2]
    warped = cv2.warpPerspective(canvas, homog, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpPerspective(np.ones(canvas.shape[:2], np.float32), homog, (w, h), flags=cv2.INTER_LINEAR)
    return warped + back * (1.0 - mask[..., None])


def camera(frame: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    """The re-capturing camera: optical blur, sensor noise, JPEG. float32 -> uint8 RGB."""
    img = cv2.GaussianBlur(frame, (0, 0), p["blur_sigma"])
    img = np.clip(img + rng.normal(0, p["noise_std"], img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(p["jpeg_quality"])])
    if not ok:
        raise RuntimeError("JPEG encoding of the attack frame failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def print_colours(image: np.ndarray, p: dict) -> np.ndarray:
    """The printer's reduced gamut: float32 (H, W, 3) 0..255 -> the same with chroma scaled by
    p["saturation"] and grey levels mapped linearly onto [p["ink_black"], p["paper_white"]]."""
    x = image.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * p["saturation"]
    return p["ink_black"] + x / 255.0 * (p["paper_white"] - p["ink_black"])


def halftone(print_rgb: np.ndarray, p: dict) -> np.ndarray:
    """A CMY dot screen (angles 15, 75, 0 degrees, period p["halftone_pitch"]): each ink's coverage compared
    against its dot pattern, mixed back in by p["halftone_amount"]. float32 (H, W, 3) 0..255 -> same."""
    h, w = print_rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(print_rgb)
    for c, angle in enumerate((15.0, 75.0, 0.0)):
        a = np.deg2rad(angle)
        u = (xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / p["halftone_pitch"])
        v = (-xx * np.sin(a) + yy * np.cos(a)) * (2 * np.pi / p["halftone_pitch"])
        dots = (np.cos(u) * np.cos(v) + 1) / 2                      # 0..1 threshold pattern
        ink = 1.0 - print_rgb[..., c] / 255.0                       # coverage of this channel's ink
        binary = (ink > dots).astype(np.float32)
        mixed = ink * (1 - p["halftone_amount"]) + binary * p["halftone_amount"]
        out[..., c] = (1.0 - mixed) * 255.0
    return out


def print_attack(image_rgb: np.ndarray, rng: np.random.Generator, face_box=None) -> Attack:
    """A printed photo of `image_rgb` (uint8 (H, W, 3)) held up to a camera (PRINT_RANGES, CAMERA_RANGES);
    with `face_box` (x1, y1, x2, y2) the print shows the scene around that face at its size (face_window)."""
    p = {**draw(rng, PRINT_RANGES), **draw(rng, CAMERA_RANGES)}
    src, (fh, fw), to_src = source_part(_check(image_rgb), face_box, p)
    up = 2.0 * min(fw / src.shape[1], fh / src.shape[0])   # the print is drawn at twice the camera frame
    ph, pw = int(round(src.shape[0] * up)), int(round(src.shape[1] * up))
    printed = print_colours(cv2.resize(src, (pw, ph), interpolation=cv2.INTER_CUBIC), p)
    printed = halftone(printed, p)
    m = int(round(p["margin"] * max(ph, pw)))
    paper = np.full((ph + 2 * m, pw + 2 * m, 3), p["paper_white"], np.float32)
    paper[m:m + ph, m:m + pw] = printed
    grain = cv2.GaussianBlur(rng.normal(0, 1, paper.shape[:2]).astype(np.float32), (0, 0), 1.0)
    paper *= (1 + p["grain"] * grain / max(float(grain.std()), 1e-6))[..., None]
    gy, gx = rng.uniform(0, paper.shape[0]), rng.uniform(0, paper.shape[1])
    r = p["glare_radius"] * max(paper.shape[:2])
    yy, xx = np.mgrid[0:paper.shape[0], 0:paper.shape[1]].astype(np.float32)
    blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * r * r))[..., None]
    paper = paper + p["glare_strength"] * blob * (255.0 - paper)
    homog = placement((paper.shape[1], paper.shape[0]), (fh, fw), p, rng)
    # the lens blurs the halftone before the sensor samples it: blur at the print's scale, then warp
    shrink = canvas_px_per_frame_px((paper.shape[1], paper.shape[0]), (fh, fw), p["scale"])
    paper = cv2.GaussianBlur(np.clip(paper, 0, 255), (0, 0), max(0.5, 0.5 * shrink))
    frame = composite(paper, homog, background((fh, fw), rng))
    return Attack(camera(frame, p, rng), homog @ _offset(m, m) @ _scale(up) @ to_src, "print", p)


def screen_colours(image: np.ndarray, p: dict) -> np.ndarray:
    """The display's tone curve: float32 (H, W, 3) 0..255 -> gamma p["gamma"], gain p["brightness"], blue
    gain p["blue_gain"], black raised to p["black_level"]."""
    x = (image.astype(np.float32) / 255.0) ** p["gamma"] * p["brightness"]
    x[..., 2] *= p["blue_gain"]
    return np.clip(p["black_level"] + x * (255.0 - p["black_level"]), 0, 255)


def pixel_grid(displayed: np.ndarray, p: dict) -> np.ndarray:
    """Each display pixel drawn as 3x3 canvas pixels: R, G, B sub-pixel columns, the bottom row dimmed by
    p["matrix_dark"] (the black matrix). float32 (h, w, 3) -> (3h, 3w, 3), mean brightness kept."""
    big = np.repeat(np.repeat(displayed, 3, axis=0), 3, axis=1)
    mask = np.zeros((3, 3, 3), np.float32)
    for c in range(3):
        mask[:, c, c] = 1.0
    mask[2] *= 1.0 - p["matrix_dark"]
    mask /= mask[..., 0].mean()                                  # each channel's mean gain 1
    tile = np.tile(mask, (displayed.shape[0], displayed.shape[1], 1))
    return big * tile


def screen_attack(image_rgb: np.ndarray, rng: np.random.Generator, face_box=None) -> Attack:
    """`image_rgb` (uint8 (H, W, 3)) shown on a phone or tablet screen held up to a camera
    (SCREEN_RANGES, CAMERA_RANGES); with `face_box` the screen shows the scene around that face at its size."""
    p = {**draw(rng, SCREEN_RANGES), **draw(rng, CAMERA_RANGES)}
    src, (fh, fw), to_src = source_part(_check(image_rgb), face_box, p)
    # the display's resolution: `density` display pixels per camera pixel across the screen's extent
    across = p["scale"] * min(fw / src.shape[1], fh / src.shape[0]) * src.shape[1] * p["density"]
    dw = max(8, int(round(across)))
    dh = max(8, int(round(dw * src.shape[0] / src.shape[1])))
    displayed = screen_colours(cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA), p)
    canvas = pixel_grid(displayed, p)
    b = int(round(p["bezel"] * max(canvas.shape[:2])))
    device = np.full((canvas.shape[0] + 2 * b, canvas.shape[1] + 2 * b, 3), p["bezel_grey"], np.float32)
    device[b:b + canvas.shape[0], b:b + canvas.shape[1]] = canvas
    homog = placement((device.shape[1], device.shape[0]), (fh, fw), p, rng)
    # the sensor integrates over part of each camera pixel: the grid is attenuated, not erased, then sampled
    shrink = canvas_px_per_frame_px((device.shape[1], device.shape[0]), (fh, fw), p["scale"])
    device = cv2.GaussianBlur(device, (0, 0), p["sensor_blur"] * shrink)
    frame = composite(device, homog, background((fh, fw), rng))
    # a reflected band (a window, a lamp) across the screen and bezel
    mask = cv2.warpPerspective(np.ones(device.shape[:2], np.float32), homog, (fw, fh), flags=cv2.INTER_LINEAR)
    a = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    d = (xx - rng.uniform(0, fw)) * np.cos(a) + (yy - rng.uniform(0, fh)) * np.sin(a)
    band = np.exp(-(d / (rng.uniform(0.05, 0.2) * max(fh, fw))) ** 2)
    frame = frame + (p["reflection"] * 255.0 * band * mask)[..., None]
    to_device = _offset(b, b) @ _scale3(dw / src.shape[1], dh / src.shape[0])
    return Attack(camera(np.clip(frame, 0, 255), p, rng), homog @ to_device @ to_src, "screen", p)


ATTACKS = {"print": print_attack, "screen": screen_attack}


def make_attack(species: str, image_rgb: np.ndarray, seed: int, face_box=None) -> Attack:
    """The attack of one species ("print" or "screen") on one source image with its own seed (and, given a
    face box, showing the scene around that face at its size)."""
    if species not in ATTACKS:
        raise ValueError(f"unknown attack species {species!r}; expected one of {', '.join(ATTACKS)}")
    return ATTACKS[species](image_rgb, np.random.default_rng(seed), face_box)


def _check(image_rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 16:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3) at least 16 px; got {img.dtype} {img.shape}")
    return img


def _scale(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def _scale3(sx: float, sy: float) -> np.ndarray:
    """Source pixels -> display pixels (sx, sy) -> canvas pixels (3 per display pixel)."""
    return np.diag([3 * sx, 3 * sy, 1.0])


def _offset(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])
