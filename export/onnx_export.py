"""PyTorch -> ONNX: export, full onnx.checker, contract metadata, numeric comparison on real inputs."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from facegate.edge_runtime.contract import to_metadata
from facegate.edge_runtime.detection import FaceDetector, central_face
from facegate.edge_runtime.embedding import FaceEmbedder
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.paths import data_dir
from facegate.edge_runtime.sessions import open_session, session_run
from facegate.models.backend import torch_detector, torch_run
from facegate.models.registry import build, get_spec

from .metadata import add_metadata

OPSET = 17
FP32_TOLERANCE = 1e-4


SAMPLE_IMAGES = ("faceapi_bbt_scenes/bbt1.jpg", "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
                 "videos/face_recognition/lin-manuel-miranda.png")


def sample_images(images: list[Path] | None) -> list[Path]:
    """The user's images, or a few real faces from $FACEGATE_DATA. Raises FileNotFoundError."""
    if images:
        return images
    paths = [data_dir() / s for s in SAMPLE_IMAGES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"sample images not found ({missing[0]}); pass --images or set FACEGATE_DATA")
    return paths


class ExportMismatchError(RuntimeError):
    """onnxruntime disagrees with PyTorch beyond the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    name: str
    path: str
    max_abs_diff: float
    inputs_compared: int


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, outputs: list[str],
            dynamic: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (example,), str(path), input_names=["input"], output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)


def export_model(name: str, out: Path, sample_images: list[Path], weights: Path | None = None) -> ExportReport:
    """Export registered network `name` to `out` and prove it matches PyTorch on real images.

    The detector gets dynamic batch/height/width; embedders a dynamic batch. Raises
    ExportMismatchError above FP32_TOLERANCE (see _max_diff).
    """
    if not sample_images:
        raise ValueError("export needs real sample images to compare PyTorch with onnxruntime")
    spec = get_spec(name)
    module = build(name, weights=weights)
    contract = spec.contract
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if contract.kind == "detector":
        _export(module, torch.zeros(1, 3, 480, 640), out, list(contract.outputs),
                {"input": {0: "batch", 2: "height", 3: "width"}, **{o: {0: "batch", 1: "anchors"} for o in contract.outputs}})
    else:
        s = contract.input_size
        _export(module, torch.zeros(2, 3, s, s), out, ["embedding"],
                {"input": {0: "batch"}, "embedding": {0: "batch"}})
    meta = to_metadata(contract)
    meta["facegate.provenance"] = json.dumps(spec.source.provenance())
    add_metadata(out, meta)
    onnx.checker.check_model(str(out), full_check=True)
    diff, n = compare_with_torch(name, module, out, sample_images)
    if diff > FP32_TOLERANCE:
        raise ExportMismatchError(f"{name}: onnxruntime differs from PyTorch by {diff:.2e} "
                                  f"(> {FP32_TOLERANCE:g})")
    return ExportReport(name, str(out), diff, n)


def compare_with_torch(name: str, module, onnx_path: Path, images: list[Path]) -> tuple[float, int]:
    """(max difference (_max_diff) between PyTorch and onnxruntime, inputs compared) on the real model
    inputs of `images`: each image's prepared detector frame, or for an embedder one batch of the chips
    of the face nearest each image's centre (PyTorch detector; images without a face are left out).
    Raises ValueError when an embedder finds no face in any image."""
    contract = get_spec(name).contract
    ref_run, ort_run = torch_run(module), session_run(open_session(onnx_path, threads=2))
    if contract.kind == "detector":
        det = FaceDetector(ref_run, contract)
        diffs = [_max_diff(ref_run(x), ort_run(x)) for x, _ in (det.prepare(load_image(p)) for p in images)]
        return max(diffs, default=0.0), len(diffs)
    emb = FaceEmbedder(ref_run, contract)
    chips = _central_chips(emb, images)
    x = emb.prepare(chips)
    return _max_diff(ref_run(x), ort_run(x)), len(chips)


def _central_chips(embedder: FaceEmbedder, images: list[Path]) -> np.ndarray:
    """uint8 RGB (n, S, S, 3): the embedder's chip of the face nearest each image's centre (PyTorch
    detector). Raises ValueError when no image has a face."""
    det = torch_detector()
    chips = []
    for p in images:
        img = load_image(p)
        face = central_face(det, img)
        if face is not None:
            chips.append(embedder.align(img, face))
    if not chips:
        raise ValueError("no face found in the sample images; cannot compare the embedder")
    return np.stack(chips)


def _max_diff(a, b) -> float:
    """Largest absolute difference over all outputs (lists of float arrays), relative to each output's
    largest magnitude when that exceeds 1 (the detector's raw box regressions are large enough for
    float32 rounding alone to exceed an absolute tolerance)."""
    worst = 0.0
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        worst = max(worst, float(np.abs(x - y).max()) / max(1.0, float(np.abs(x).max())))
    return worst
