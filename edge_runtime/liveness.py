"""Liveness (presentation-attack detection): the probability that a detected face is a real face and not
a print or a screen held up to the camera, from the bundle's liveness models (MiniFASNet; docs/liveness.md).

Each model judges its own crop of the image around the face box (its contract's `scale`: 2.7 and 4.0 for
the two MiniFASNets), resized to its input size; the softmaxes of all models are averaged and the score is
the averaged probability of the contract's real class.
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from .contract import LivenessContract
from .face import Face


def crop_box(src_w: int, src_h: int, box_xywh, scale: float) -> tuple[int, int, int, int]:
    """The crop around a face box (x, y, w, h) enlarged `scale` times around its centre (at most what fits
    the image: scale = min(scale, (H-1)/h, (W-1)/w)), shifted back inside the image where it crosses an edge.
    Returns inclusive int-truncated corners (x1, y1, x2, y2) (upstream's CropImage._get_new_box)."""
    x, y, w, h = (float(t) for t in box_xywh)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box must have a positive size, got w={w}, h={h}")
    scale = min((src_h - 1) / h, (src_w - 1) / w, scale)
    nw, nh = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    x1, y1, x2, y2 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x1 < 0:
        x2 -= x1
        x1 = 0
    if y1 < 0:
        y2 -= y1
        y1 = 0
    if x2 > src_w - 1:
        x1 -= x2 - src_w + 1
        x2 = src_w - 1
    if y2 > src_h - 1:
        y1 -= y2 - src_h + 1
        y2 = src_h - 1
    return int(x1), int(y1), int(x2), int(y2)


def face_box_xywh(box_xyxy, width_scale: float = 1.0, height_scale: float = 1.0,
                  shift_y: float = 0.0) -> np.ndarray:
    """Our detector's box (x1, y1, x2, y2) -> float32 (4,) (x, y, w, h) in the form upstream's detector
    returns (w = x2 - x1 + 1), first scaled around its centre by width_scale / height_scale and moved down
    by shift_y box heights (a model contract's box convention)."""
    x1, y1, x2, y2 = (float(t) for t in np.asarray(box_xyxy, np.float32).reshape(4))
    w, h = x2 - x1 + 1, y2 - y1 + 1
    cx, cy = x1 + w / 2, y1 + h / 2 + shift_y * h
    w, h = w * width_scale, h * height_scale
    return np.array([cx - w / 2, cy - h / 2, w, h], np.float32)


def liveness_crop(image_rgb: np.ndarray, face: Face, scale: float, size: int, width_scale: float = 1.0,
                  height_scale: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """uint8 (size, size, 3) crop of `image_rgb` (uint8 (H, W, 3), channel order kept) around `face`'s box
    (adjusted by face_box_xywh), enlarged `scale` times (crop_box), resized with bilinear interpolation."""
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    x1, y1, x2, y2 = crop_box(w, h, face_box_xywh(face.box, width_scale, height_scale, shift_y), scale)
    return cv2.resize(img[y1:y2 + 1, x1:x2 + 1], (size, size), interpolation=cv2.INTER_LINEAR)


def contract_crop(image_rgb: np.ndarray, face: Face, contract: LivenessContract) -> np.ndarray:
    """liveness_crop with the contract's scale, size and box convention: uint8 (S, S, 3), RGB."""
    return liveness_crop(image_rgb, face, contract.scale, contract.input_size, contract.box_width_scale,
                         contract.box_height_scale, contract.box_shift_y)


def prepare(crops_rgb: np.ndarray, contract: LivenessContract) -> np.ndarray:
    """uint8 RGB (N, S, S, 3) crops -> the model input float32 (N, 3, S, S) in the contract's colour order,
    (x - mean) / std."""
    x = np.asarray(crops_rgb, np.float32)
    if contract.colour_order == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(contract.mean, np.float32)) / np.asarray(contract.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float (N, C) logits, float32 (N, C)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


class LivenessChecker:
    """The bundle's liveness models together: score(image, face) -> probability that the face is real.

    Args:
        models: (run, contract) per model; run(float32 (N, 3, S, S)) -> [logits (N, classes), ...].
    """

    def __init__(self, models: Sequence[tuple[Callable, LivenessContract]]):
        if not models:
            raise ValueError("a liveness checker needs at least one model")
        classes = {c.classes for _, c in models}
        real = {c.real_index for _, c in models}
        if len(classes) != 1 or len(real) != 1:
            raise ValueError("liveness models disagree on their classes or real class")
        self.models = list(models)
        self.real_index = real.pop()

    @property
    def names(self) -> list[str]:
        return [c.name for _, c in self.models]

    def probabilities_many(self, image_rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """float32 (N, classes): the models' softmaxes averaged, one row per face (one batch per model)."""
        if not faces:
            return np.zeros((0, self.models[0][1].classes), np.float32)
        total = None
        for run, c in self.models:
            x = prepare(np.stack([contract_crop(image_rgb, f, c) for f in faces]), c)
            p = softmax(np.asarray(run(x)[0]).reshape(len(faces), c.classes))
            total = p if total is None else total + p
        return (total / len(self.models)).astype(np.float32)

    def score_many(self, image_rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """float32 (N,): per face the probability (0..1) that it is real."""
        return self.probabilities_many(image_rgb, faces)[:, self.real_index].astype(np.float32)

    def score(self, image_rgb: np.ndarray, face: Face) -> float:
        """The probability (0..1) that `face` (found in uint8 RGB `image_rgb`) is a real face."""
        return float(self.score_many(image_rgb, [face])[0])
