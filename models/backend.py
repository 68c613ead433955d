"""Run the PyTorch networks through the runtime's own detector/embedder classes (fp32 reference)."""
from __future__ import annotations

import numpy as np
import torch

from facegate.edge_runtime.detection import FaceDetector
from facegate.edge_runtime.embedding import FaceEmbedder

from .registry import build, get_spec


def torch_run(module: torch.nn.Module):
    """Wrap a module as run(np.ndarray) -> list[np.ndarray] without autograd."""
    def run(x: np.ndarray):
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.numpy() for o in outs]
    return run


def torch_detector(name: str = "retinaface_mnet025", **kwargs) -> FaceDetector:
    """A FaceDetector backed by the pretrained PyTorch network. kwargs go to FaceDetector."""
    return FaceDetector(torch_run(build(name)), get_spec(name).contract, **kwargs)


def torch_embedder(name: str) -> FaceEmbedder:
    """A FaceEmbedder backed by the pretrained PyTorch network."""
    return FaceEmbedder(torch_run(build(name)), get_spec(name).contract)
