"""The bundle's face-image quality model at run time (onnxruntime only): how usable a face is for
recognition, predicted from the raw fused embedding the pipeline computes anyway.

The model (`facegate train quality`, docs/quality.md) is a small head trained on the embeddings of
exactly the embedder files its contract names by sha256; fed another embedder's values its output means
nothing, so `QualityModel.check_embedders` refuses a bundle whose embedder files differ.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .contract import QualityContract
from .errors import ContractError

LOW_QUALITY = "quality too low for recognition"
LOW_QUALITY_WHY = "the face is likely blurred, occluded, badly lit, too small or turned away"


def low_quality_problem(quality: float, threshold: float) -> str:
    """The problem text of a face whose quality is below the threshold (enrollment shows it, the door
    records it), e.g. "quality too low for recognition (0.12 < 0.30): the face is likely blurred, ..."."""
    return f"{LOW_QUALITY} ({quality:.2f} < {threshold:.2f}): {LOW_QUALITY_WHY}"


class QualityModel:
    """Scores faces by their raw fused embeddings.

    Args:
        run: run(x float32 (N, D)) -> [float32 (N,) or (N, 1)], an onnxruntime session's run (sessions.onnx_quality).
        contract: the model's QualityContract.
    """

    def __init__(self, run: Callable[[np.ndarray], list], contract: QualityContract):
        self._run = run
        self.contract = contract
        self.embedding_size = int(sum(contract.dims))

    def check_embedders(self, features_of: str, part_sha256: dict[str, str]) -> None:
        """Raise ContractError unless this model was trained on the embedder `features_of` (the fusion's
        name) made of exactly these files ({part: sha256})."""
        c = self.contract
        if c.features_of != features_of:
            raise ContractError(f"quality model {c.name} reads {c.features_of!r} embeddings, the bundle's are "
                                f"{features_of!r}")
        wrong = [p for p in c.parts if c.part_sha256.get(p) != part_sha256.get(p)]
        if wrong or set(part_sha256) != set(c.parts):
            raise ContractError(f"quality model {c.name} was trained on other embedder files than the bundle's "
                                f"({', '.join(wrong or sorted(set(part_sha256) ^ set(c.parts)))}); retrain it "
                                "(facegate train quality) on this bundle")

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """float32 (N, D) raw fused embeddings -> float32 (N,) quality (higher = more usable; contract units).
        Raises ValueError for another shape."""
        x = np.ascontiguousarray(embeddings, np.float32)
        if x.ndim != 2 or x.shape[1] != self.embedding_size:
            raise ValueError(f"quality model expects float32 (N, {self.embedding_size}) raw fused embeddings; "
                             f"got shape {x.shape}")
        if len(x) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self._run(x)[0], np.float32).reshape(len(x))
