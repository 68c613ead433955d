"""The record of one detected face, carried through detect -> align -> embed -> match."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


@dataclass(frozen=True, eq=False)
class Face:
    """One face found in one image.

    Attributes:
        box: float32 (4,) = x1, y1, x2, y2 in image pixels.
        landmarks: float32 (5, 2) = (x, y) of left eye, right eye, nose tip, left and right mouth
            corner, as seen in the image (the subject's right eye is the image's left eye).
        score: detector confidence in [0, 1].
        embedding: float32 (D,) once embedded, else None.
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    embedding: np.ndarray | None = None

    def __post_init__(self):
        box = np.asarray(self.box, np.float32).reshape(4)
        lm = np.asarray(self.landmarks, np.float32).reshape(5, 2)
        box.setflags(write=False)
        lm.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "score", float(self.score))

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> np.ndarray:
        """float32 (2,) centre of the box."""
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], np.float32)

    def with_embedding(self, embedding: np.ndarray) -> "Face":
        """A copy of this face carrying `embedding` (float32 (D,))."""
        e = np.asarray(embedding, np.float32).reshape(-1)
        e.setflags(write=False)
        return dataclasses.replace(self, embedding=e)


def nearest_to_center(faces: list[Face], width: int, height: int) -> Face | None:
    """The face whose box centre is closest to the image centre (LFW's rule), or None."""
    if not faces:
        return None
    c = np.array([width / 2, height / 2], np.float32)
    return min(faces, key=lambda f: float(np.sum((f.center - c) ** 2)))
