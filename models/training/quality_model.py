"""The quality model: a small head on the frozen embedders' raw embeddings, and its ONNX export.

The door already computes the fused raw embedding (SFace's then dlib's values side by side) of every
face it matches, so a head on it adds only its own few multiply-adds per face. Its output is in the
units of its training target (fused-score margin: mean genuine score minus a high impostor quantile);
higher = more usable for recognition.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from facegate.export.metadata import add_metadata

OPSET = 17
FP32_TOLERANCE = 1e-4
CONTRACT_KEY = "facegate.contract"
GENUINE_WORDS = {"mean": "mean genuine score", "min": "lowest genuine score", "max": "highest genuine score"}


class QualityHead(nn.Module):
    """float32 (N, sum(dims)) raw fused embedding -> float32 (N,) quality.

    Each part is split into its direction (unit vector) and the log of its norm; an MLP maps them to a
    standardised score, which is brought back to target units with the training targets' mean and std
    (buffers, so the exported model outputs target units)."""

    def __init__(self, dims: tuple[int, ...] = (128, 128), hidden: int = 64, target_mean: float = 0.0,
                 target_std: float = 1.0):
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        self.mlp = nn.Sequential(nn.Linear(sum(self.dims) + len(self.dims), hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (N, D) -> float32 (N,) score in standard units (what the loss sees)."""
        feats, norms = [], []
        for part in torch.split(x, list(self.dims), dim=1):
            n = torch.linalg.vector_norm(part, dim=1, keepdim=True).clamp_min(1e-6)
            feats.append(part / n)
            norms.append(torch.log(n))
        return self.mlp(torch.cat([*feats, *norms], dim=1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised(x) * self.target_std + self.target_mean


def quality_contract(manifest, dims: tuple[int, ...], quantile: float, genuine: str = "mean",
                     loss: str = "margin") -> dict:
    """The quality model's input/output contract (JSON in the ONNX metadata under "facegate.contract").

    manifest: the bundle's Manifest whose fused embedder the head was trained on; the runtime must feed
    this model the raw fused embedding of exactly those model files (their sha256 are recorded)."""
    fusion = manifest.fusion.fusion
    return {"kind": "quality", "name": "face_quality", "input": "raw fused embedding", "layout": "ND",
            "features_of": fusion.name, "parts": list(fusion.parts), "dims": list(dims),
            "part_sha256": {p: manifest.embedders[p].sha256 for p in fusion.parts},
            "bundle_id": manifest.id, "output": "quality", "higher_is_better": True,
            "units": (f"fused score: {GENUINE_WORDS[genuine]} minus the {quantile:g} impostor quantile" if loss == "margin"
                      else "fused score minus the FMR 1e-3 score, predicted for the face's genuine comparisons "
                           "(the smaller of two faces' qualities)")}


def export_quality(model: QualityHead, path: Path, contract: dict, provenance: dict,
                   sample: np.ndarray) -> float:
    """Export to ONNX (dynamic batch), run onnx.checker, write the contract and provenance into the
    metadata, and compare onnxruntime with PyTorch on `sample` (float32 (N, D) real embeddings).

    Returns the largest absolute difference. Raises RuntimeError above FP32_TOLERANCE."""
    from facegate.edge_runtime.sessions import open_session

    model = model.cpu().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, sum(model.dims)),), str(path), input_names=["embedding"],
                          output_names=["quality"], dynamic_axes={"embedding": {0: "batch"}, "quality": {0: "batch"}},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    add_metadata(path, {CONTRACT_KEY: json.dumps(contract, sort_keys=True),
                        "facegate.provenance": json.dumps(provenance, sort_keys=True)})
    onnx.checker.check_model(str(path), full_check=True)
    x = np.ascontiguousarray(sample, np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    s = open_session(path, threads=2)
    got = s.run(None, {s.get_inputs()[0].name: x})[0]
    diff = float(np.max(np.abs(ref - got))) if len(x) else 0.0
    if diff > FP32_TOLERANCE:
        raise RuntimeError(f"quality model: onnxruntime differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE:g})")
    return diff
