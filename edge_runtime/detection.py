"""Face detection: the FaceDetector model class and the RetinaFace post-processing it runs in numpy
(prior boxes, box/landmark decoding, NMS) and the resize that puts a frame into the detector. The
network itself only outputs raw tensors; `run` is an onnxruntime session or a PyTorch module. Also the
box IoU every box comparison uses, and `central_face`: the one face of a photo of one person."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np

from .face import Face, nearest_to_center
from .preprocess import contract_input

if TYPE_CHECKING:                      # contract.py imports PriorConfig from here
    from .contract import DetectorContract

RunFn = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True)
class PriorConfig:
    """RetinaFace prior-box settings (biubug6 `cfg_mnet`)."""

    steps: tuple[int, ...] = (8, 16, 32)                       # feature-map strides
    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))  # anchor sides, px
    variances: tuple[float, float] = (0.1, 0.2)                # centre and size variances


@lru_cache(maxsize=16)
def prior_boxes(height: int, width: int, cfg: PriorConfig = PriorConfig()) -> np.ndarray:
    """Anchor boxes for an input of `height` x `width` pixels.

    Returns:
        float32 (P, 4): cx, cy, w, h normalised by the input size, in the order the network's heads
        emit them (feature level, then row, then column, then anchor size).
    """
    out = []
    for step, sizes in zip(cfg.steps, cfg.min_sizes):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step / height,
                             (np.arange(cols) + 0.5) * step / width, indexing="ij")
        per_size = [np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], -1)
                    for s in sizes]
        out.append(np.stack(per_size, axis=2).reshape(-1, 4))
    priors = np.concatenate(out).astype(np.float32)
    priors.setflags(write=False)
    return priors


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances=(0.1, 0.2)) -> np.ndarray:
    """Decode box regressions. loc, priors: float32 (P, 4). Returns x1, y1, x2, y2 normalised (P, 4)."""
    centers = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)


def decode_landmarks(pre: np.ndarray, priors: np.ndarray, variances=(0.1, 0.2)) -> np.ndarray:
    """Decode landmark regressions. pre: float32 (P, 10). Returns normalised (P, 5, 2)."""
    pre = pre.reshape(-1, 5, 2)
    return priors[:, None, :2] + pre * variances[0] * priors[:, None, 2:]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` with every box of `b`.

    Args:
        a: float (N, 4), b: float (M, 4) boxes x1, y1, x2, y2 (one (4,) box counts as (1, 4)).
    Returns:
        (N, M) IoU in [0, 1], 0 where both boxes are empty; float32 when both inputs are float32 (as the
        detector's boxes are), else float64.
    """
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.promote_types(np.result_type(a, b), np.float32)
    a, b = a.astype(dtype, copy=False).reshape(-1, 4), b.astype(dtype, copy=False).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(dtype, copy=False)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: the best remaining box is kept and every box overlapping it by
    more than `iou_threshold` (box_iou) is dropped, until none remain.

    Args:
        boxes: float (N, 4) x1, y1, x2, y2. scores: float (N,).
    Returns:
        int64 indices of the kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[box_iou(boxes[best], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, np.int64)


def resize_for_detector(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink an image so its longer side is at most `max_side` (never enlarges).

    Returns:
        (resized uint8 image, scale) where original_coords = resized_coords / scale.
    """
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def postprocess(loc: np.ndarray, conf: np.ndarray, landms: np.ndarray, height: int, width: int,
                score_threshold: float, nms_threshold: float, scale: float = 1.0,
                cfg: PriorConfig = PriorConfig(), top_k: int = 5000) -> list[Face]:
    """Raw RetinaFace outputs for one image -> faces in original-image pixels.

    Args:
        loc: float32 (P, 4); conf: float32 (P, 2) softmax scores (background, face);
        landms: float32 (P, 10); height, width: the network input size;
        scale: resize factor from resize_for_detector (coordinates are divided by it).
    Returns:
        faces sorted by descending score.
    """
    priors = prior_boxes(height, width, cfg)
    if loc.shape[0] != priors.shape[0]:
        raise ValueError(f"detector returned {loc.shape[0]} anchors, expected {priors.shape[0]} "
                         f"for a {width}x{height} input; the model and prior settings disagree")
    scores = conf[:, 1]
    idx = np.flatnonzero(scores > score_threshold)
    idx = idx[np.argsort(-scores[idx], kind="stable")[:top_k]]
    if idx.size == 0:
        return []
    size = np.array([width, height], np.float32)
    boxes = decode_boxes(loc[idx], priors[idx], cfg.variances) * np.tile(size, 2)
    points = decode_landmarks(landms[idx], priors[idx], cfg.variances) * size
    keep = nms(boxes, scores[idx], nms_threshold)
    return [Face(box=boxes[k] / scale, landmarks=points[k] / scale, score=scores[idx][k]) for k in keep]


class FaceDetector:
    """detect(image) -> faces. `run` maps float32 (1, 3, H, W) to (loc, conf, landmarks) with batch 1."""

    def __init__(self, run: RunFn, contract: DetectorContract, score_threshold: float = 0.6,
                 nms_threshold: float = 0.4, max_side: int = 640):
        self.run = run
        self.contract = contract
        self.score_threshold = score_threshold   # minimum face probability
        self.nms_threshold = nms_threshold       # IoU above which overlapping boxes are merged
        self.max_side = max_side                 # larger frames are shrunk to this before detection

    def prepare(self, image_rgb: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, float]:
        """RGB uint8 (H, W, 3) -> (float32 (1, 3, h, w) network input, resize scale).
        max_side: overrides self.max_side for this call."""
        small, scale = resize_for_detector(image_rgb, max_side or self.max_side)
        return contract_input(small, self.contract), scale

    def detect(self, image_rgb: np.ndarray, max_side: int | None = None) -> list[Face]:
        """All faces in an RGB uint8 (H, W, 3) image, highest score first, in the image's pixels.
        max_side: overrides self.max_side for this call (live frames use a smaller one)."""
        x, scale = self.prepare(image_rgb, max_side)
        loc, conf, landms = self.run(x)
        return postprocess(loc[0], conf[0], landms[0], x.shape[2], x.shape[3], self.score_threshold,
                           self.nms_threshold, scale, self.contract.priors)


def central_face(detector: FaceDetector, image_rgb: np.ndarray) -> Face | None:
    """The detected face nearest the centre of an RGB uint8 (H, W, 3) photo, in its pixels (LFW's rule
    for a photo of one person; face.nearest_to_center), or None when the detector finds no face.

    detector: a FaceDetector, or anything with the same detect(image_rgb) -> list[Face].
    The caller cuts its chips from the face with the embedder's align / align_all."""
    return nearest_to_center(detector.detect(image_rgb), image_rgb.shape[1], image_rgb.shape[0])
