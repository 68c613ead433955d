"""The synthetic presentation attacks (edge_runtime/eval/attacks.py): deterministic for a seed, camera frames
of the documented size, and different from the source in the documented ways (the print's reduced gamut,
the screen's periodic moire energy)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from facegate.edge_runtime.eval import attacks as A


def scene(h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    """A smooth, colourful synthetic scene (no periodic pattern), uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 255, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def peak_ratio(gray: np.ndarray, fmin: float = 0.08) -> float:
    """Strongest spectral peak above fmin cycles/px of a windowed grey image over the band's median magnitude:
    large for periodic patterns (moire, a dot screen), small for photos and noise."""
    g = gray.astype(np.float64) - gray.mean()
    f = np.abs(np.fft.fftshift(np.fft.fft2(g * np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1])))))
    fy = np.fft.fftshift(np.fft.fftfreq(g.shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(g.shape[1]))[None, :]
    band = np.hypot(fy, fx) > fmin
    return float(f[band].max() / np.median(f[band]))


def inner_region(att: A.Attack, shape) -> np.ndarray:
    """The middle of the PAI (source's central 40%) cut from the attack frame, grey float."""
    h, w = shape[:2]
    pts = cv2.perspectiveTransform(np.array([[[w * 0.3, h * 0.3], [w * 0.7, h * 0.7]]], np.float64),
                                   att.homography)[0]
    x1, y1 = np.ceil(pts.min(0)).astype(int)
    x2, y2 = np.floor(pts.max(0)).astype(int)
    return att.image[y1:y2, x1:x2].astype(np.float64)


@pytest.mark.parametrize("species", list(A.ATTACKS))
def test_deterministic_and_shaped(species):
    src = scene()
    a, b = A.make_attack(species, src, 7), A.make_attack(species, src, 7)
    c = A.make_attack(species, src, 8)
    assert a.image.dtype == np.uint8 and a.image.shape == (300, 400, 3)
    assert np.array_equal(a.image, b.image) and a.params == b.params
    assert not np.array_equal(a.image, c.image)
    assert a.species == species
    for k, v in a.params.items():
        lo, hi = {**A.CAMERA_RANGES, **A.PRINT_RANGES, **A.SCREEN_RANGES}[k]
        assert lo <= v <= hi, k
    # a large frame is re-captured by a camera of at most MAX_SIDE px, same aspect ratio
    big = A.make_attack(species, scene(1080, 1920), 1)
    assert big.image.shape == (360, 640, 3)


@pytest.mark.parametrize("species", list(A.ATTACKS))
def test_homography_maps_the_source_into_the_pai(species):
    src = scene()
    att = A.make_attack(species, src, 3)
    box = att.map_box((0, 0, 400, 300))
    h, w = att.image.shape[:2]
    # the PAI spans 60-95% of the frame's matching side (plus perspective)
    assert 0.5 * w < box[2] - box[0] < 1.1 * w
    # the face-box form: the scene around a face at its size
    face = np.array([180, 120, 250, 200], np.float32)
    fa = A.make_attack(species, src, 3, face)
    mapped = fa.map_box(face)
    assert 0.75 < (mapped[2] - mapped[0]) / 70 < 1.1


def test_print_reduces_gamut():
    src = scene()
    for seed in range(4):
        att = A.make_attack("print", src, seed)
        inner = inner_region(att, src.shape)
        ref = src[90:210, 120:280].astype(np.float64)
        chroma = lambda x: float(np.mean(x.max(2) - x.min(2)))  # noqa: E731
        assert chroma(inner) < 0.9 * chroma(ref)
        assert np.percentile(inner, 99.5) - np.percentile(inner, 0.5) < \
            np.percentile(ref, 99.5) - np.percentile(ref, 0.5)
    # the colour stage alone: grey levels confined to [ink black, paper white], chroma scaled
    p = {"saturation": 0.5, "ink_black": 40.0, "paper_white": 220.0}
    out = A.print_colours(np.array([[[255, 0, 0], [0, 0, 0], [255, 255, 255]]], np.uint8), p)
    assert out.min() >= 40 and out.max() <= 220 + 1e-3
    assert out[0, 0].max() - out[0, 0].min() == pytest.approx(0.5 * 180, abs=1e-3)


def test_screen_has_periodic_moire_energy():
    src = scene()
    screen = np.array([peak_ratio(inner_region(A.make_attack("screen", src, s), src.shape).mean(2))
                       for s in range(10)])
    # the same scene re-captured by the same kind of camera without a screen in between
    cam = {"blur_sigma": 0.5, "noise_std": 2.0, "jpeg_quality": 90}
    plain = A.camera(src.astype(np.float32), cam, np.random.default_rng(0))[90:210, 120:280].mean(2)
    ref = peak_ratio(plain)
    # the drawn sensor blur and display density make some moire faint (as in real re-captures); most are strong
    assert np.median(screen) > 4 * ref and (screen > 2 * ref).sum() >= 8, (screen, ref)
    # without the pixel grid (the same display tone curve, just resampled) there is no such peak
    p = {"gamma": 1.0, "brightness": 1.0, "black_level": 10.0, "blue_gain": 1.0, "matrix_dark": 0.5}
    grid = A.pixel_grid(A.screen_colours(src.astype(np.float32), p), p)
    assert grid.shape == (900, 1200, 3)
    assert grid.reshape(300, 3, 400, 3, 3).mean(axis=(1, 3)) == pytest.approx(
        A.screen_colours(src.astype(np.float32), p), abs=1e-3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8 RGB"):
        A.make_attack("print", np.zeros((100, 100), np.uint8), 0)
    with pytest.raises(ValueError, match="unknown attack species"):
        A.make_attack("mask", scene(), 0)
