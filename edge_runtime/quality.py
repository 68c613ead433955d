"""Is a detected face good enough to recognise or enroll? Plain functions over a face and its chip."""
from __future__ import annotations

import cv2
import numpy as np

from .config import DetectorConfig
from .face import Face

TOO_SMALL = "too small"
TOO_BLURRY = "too blurry"
TOO_DARK = "too dark"
NOT_FRONTAL = "not frontal"

CENTRE = (0.2, 0.8)   # sharpness and brightness are measured on this central part of the chip


def yaw_ratio(landmarks: np.ndarray) -> float:
    """How far the nose sits from the eye midpoint, along the eye line, over the eye distance.

    Args:
        landmarks: float (5, 2): left eye, right eye, nose, left and right mouth corner.
    Returns:
        >= 0; about 0 for a frontal face, growing as the head turns. Measured along the eye line,
        so a tilted (rolled) but frontal head still gives about 0. inf if the eyes coincide.
    """
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye_vec = lm[1] - lm[0]
    dist = float(np.hypot(*eye_vec))
    if dist < 1e-6:
        return float("inf")
    offset = float(np.dot(lm[2] - (lm[0] + lm[1]) / 2, eye_vec / dist))
    return abs(offset) / dist


def _centre(chip: np.ndarray) -> np.ndarray:
    s0, s1 = chip.shape[:2]
    a, b = CENTRE
    return chip[int(s0 * a):int(round(s0 * b)), int(s1 * a):int(round(s1 * b))]


def sharpness(chip_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's centre (grey levels); higher = sharper."""
    grey = cv2.cvtColor(np.ascontiguousarray(_centre(chip_rgb)), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def brightness(chip_rgb: np.ndarray) -> float:
    """Mean luminance (0..255, Rec. 601 weights) of the chip's centre."""
    grey = cv2.cvtColor(np.ascontiguousarray(_centre(chip_rgb)), cv2.COLOR_RGB2GRAY)
    return float(grey.mean())


def face_quality(face: Face, chip: np.ndarray, cfg: DetectorConfig) -> list[str]:
    """Reasons a face is unusable; an empty list means it is good.

    Args:
        face: the detection (box and landmarks in frame pixels).
        chip: uint8 (S, S, 3) RGB aligned face chip.
        cfg: the [detector] config (min_face_px, min_sharpness, min_brightness, max_yaw_ratio).
    Returns:
        a subset of ["too small", "too blurry", "too dark", "not frontal"], in that order.
    """
    chip = np.asarray(chip)
    if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3 or min(chip.shape[:2]) < 4:
        raise ValueError(f"chip must be uint8 (S, S, 3) RGB; got {chip.dtype} {chip.shape}")
    reasons = []
    if min(face.width, face.height) < cfg.min_face_px:
        reasons.append(TOO_SMALL)
    if sharpness(chip) < cfg.min_sharpness:
        reasons.append(TOO_BLURRY)
    if brightness(chip) < cfg.min_brightness:
        reasons.append(TOO_DARK)
    if yaw_ratio(face.landmarks) > cfg.max_yaw_ratio:
        reasons.append(NOT_FRONTAL)
    return reasons
