"""Face embedding: FaceEmbedder (one network: align a face to its template, embed the chip) and
FusedEmbedder (several networks on one face, compared by their ScoreFusion). `run` is an onnxruntime
session or a PyTorch module in `facegate.models`; all pre-processing is here and in `preprocess`, so
every backend sees identical inputs."""
from __future__ import annotations

import numpy as np

from .align import align_face
from .contract import EmbedderContract
from .detection import RunFn
from .face import Face
from .fusion import ScoreFusion
from .preprocess import contract_input


class SingleEmbedderMethods:
    """What the recognizer, enrollment and benchmarks call on any embedder, for one that cuts one chip
    per face. Needs `contract` (name, metric, embedding_size, input_size), `align` and `embed`;
    FusedEmbedder has the same methods for several."""

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def metric(self) -> str:
        return self.contract.metric

    @property
    def embedding_size(self) -> int:
        return self.contract.embedding_size

    def align_all(self, image_rgb: np.ndarray, face: Face) -> tuple[np.ndarray, ...]:
        """The chips this embedder needs for one face: here one, uint8 RGB (S, S, 3)."""
        return (self.align(image_rgb, face),)

    def embed_sets(self, chip_sets: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """One `align_all` result per face -> float32 (N, D) raw embeddings, one batch."""
        return self.embed(np.stack([c[0] for c in chip_sets]))

    def kept_crop(self, chips: tuple[np.ndarray, ...]) -> np.ndarray:
        """The image kept with a template (re-embedding source, admin thumbnail): the chip itself."""
        return chips[0]

    def chips_from_crop(self, crop: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """`align_all`'s chips back from a kept crop, or None when the crop is not of this embedder's size."""
        s = self.contract.input_size
        return (crop,) if crop.shape == (s, s, 3) else None


class FaceEmbedder(SingleEmbedderMethods):
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
        return contract_input(chips_rgb, self.contract)

    def embed(self, chips_rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, S, S, 3) or (S, S, 3) chips -> float32 (N, D) raw embeddings."""
        out = self.run(self.prepare(chips_rgb))
        return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, np.float32)


class FusedEmbedder:
    """Several embedders on one face; the embedding is their raw embeddings side by side and the
    metric is the ScoreFusion that compares them (facegate.edge_runtime.fusion).

    Each part aligns the face to its own template; the first part's chip is the one the quality gate
    looks at. The kept crop is the parts' chips side by side on one strip (height = largest chip),
    so a kept crop can be re-embedded by every part.
    """

    def __init__(self, parts: list[FaceEmbedder], fusion: ScoreFusion):
        names = tuple(p.name for p in parts)
        if names != fusion.parts:
            raise ValueError(f"fusion {fusion.name} needs embedders {fusion.parts}; got {names}")
        for p, m, d in zip(parts, fusion.metrics, fusion.dims):
            if (p.metric, p.embedding_size) != (m, d):
                raise ValueError(f"fusion {fusion.name} expects {p.name} to give {d} values compared by {m}; "
                                 f"the model gives {p.embedding_size} compared by {p.metric}")
        self.parts = list(parts)
        self.fusion = fusion

    @property
    def name(self) -> str:
        return self.fusion.name

    @property
    def metric(self) -> ScoreFusion:
        return self.fusion

    @property
    def embedding_size(self) -> int:
        return self.fusion.embedding_size

    def align(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """The first part's chip, uint8 RGB (S, S, 3) (what the quality gate and previews look at)."""
        return self.parts[0].align(image_rgb, face)

    def align_all(self, image_rgb: np.ndarray, face: Face) -> tuple[np.ndarray, ...]:
        """One uint8 RGB chip per part, each on that part's template and size."""
        return tuple(p.align(image_rgb, face) for p in self.parts)

    def embed_sets(self, chip_sets: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """One `align_all` result per face -> float32 (N, sum of dims) fused embeddings."""
        return np.concatenate([p.embed(np.stack([c[i] for c in chip_sets])) for i, p in enumerate(self.parts)],
                              axis=1)

    def _strip_order(self) -> list[int]:
        """Part indices left to right on the kept-crop strip: largest chip first (a square thumbnail cut
        from the strip's left edge is then one whole chip), ties in part order."""
        sizes = [p.contract.input_size for p in self.parts]
        return sorted(range(len(sizes)), key=lambda i: -sizes[i])

    def kept_crop(self, chips: tuple[np.ndarray, ...]) -> np.ndarray:
        """uint8 RGB (max S, sum S, 3): the parts' chips side by side, largest first, top-aligned,
        black below the smaller ones."""
        order = self._strip_order()
        h = max(c.shape[0] for c in chips)
        strip = np.zeros((h, sum(c.shape[1] for c in chips), 3), np.uint8)
        x = 0
        for i in order:
            c = chips[i]
            strip[:c.shape[0], x:x + c.shape[1]] = c
            x += c.shape[1]
        return strip

    def chips_from_crop(self, crop: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """The parts' chips (in part order) cut back out of a `kept_crop` strip, or None when its size
        does not fit."""
        sizes = [p.contract.input_size for p in self.parts]
        if crop.shape != (max(sizes), sum(sizes), 3):
            return None
        chips, x = [None] * len(sizes), 0
        for i in self._strip_order():
            chips[i] = np.ascontiguousarray(crop[:sizes[i], x:x + sizes[i]])
            x += sizes[i]
        return tuple(chips)
