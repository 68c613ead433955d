"""The two model classes every backend shares: a face detector and a face embedder.

Each wraps a `run` callable (onnxruntime session, or a PyTorch module in `facegate.models`)
that maps the normalised input array to the raw output arrays. All pre- and post-processing
lives here, so every backend sees identical inputs.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .align import align_face
from .contract import DetectorContract, EmbedderContract
from .detection import postprocess, resize_for_detector
from .face import Face
from .preprocess import to_model_input

def _rgb_order(values, colour_order: str):
    """Per-channel constants given in the model's colour order, re-ordered to match RGB input."""
    if colour_order not in ("RGB", "BGR"):
        raise ValueError(f"unknown colour order {colour_order!r}; expected 'RGB' or 'BGR'")
    v = tuple(values)
    return v[::-1] if colour_order == "BGR" and len(v) == 3 else v


RunFn = Callable[[np.ndarray], Sequence[np.ndarray]]


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
        c = self.contract
        return to_model_input(small, _rgb_order(c.mean, c.colour_order), _rgb_order(c.std, c.colour_order),
                              c.layout, swap_rb=c.colour_order == "BGR"), scale

    def detect(self, image_rgb: np.ndarray, max_side: int | None = None) -> list[Face]:
        """All faces in an RGB uint8 (H, W, 3) image, highest score first, in the image's pixels.
        max_side: overrides self.max_side for this call (live frames use a smaller one)."""
        x, scale = self.prepare(image_rgb, max_side)
        loc, conf, landms = self.run(x)
        return postprocess(loc[0], conf[0], landms[0], x.shape[2], x.shape[3], self.score_threshold,
                           self.nms_threshold, scale, self.contract.priors)


class FaceEmbedder:
    """align(image, face) -> chip; embed(chips) -> vectors. `run` maps float32 (N, 3, S, S) to (N, D)."""

    def __init__(self, run: RunFn, contract: EmbedderContract):
        self.run = run
        self.contract = contract

    def align(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """uint8 RGB (S, S, 3) chip with the face's landmarks on the contract's template."""
        c = self.contract
        return align_face(image_rgb, face.landmarks, np.asarray(c.template, np.float64), c.input_size)

    def prepare(self, chips_rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, S, S, 3) chips -> float32 network input."""
        c = self.contract
        return to_model_input(chips_rgb, _rgb_order(c.mean, c.colour_order), _rgb_order(c.std, c.colour_order),
                              c.layout, swap_rb=c.colour_order == "BGR")

    def embed(self, chips_rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, S, S, 3) or (S, S, 3) chips -> float32 (N, D) raw embeddings."""
        out = self.run(self.prepare(chips_rgb))
        return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, np.float32)

    def embed_faces(self, image_rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        """Align and embed every face of one image in one batch; returns faces carrying embeddings."""
        if not faces:
            return []
        chips = np.stack([self.align(image_rgb, f) for f in faces])
        return [f.with_embedding(e) for f, e in zip(faces, self.embed(chips))]
