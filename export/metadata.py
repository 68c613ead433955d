"""ONNX metadata_props editing (onnx only, no torch): used by export and calibration."""
from __future__ import annotations

from pathlib import Path

import onnx


def add_metadata(path: Path, meta: dict[str, str]) -> None:
    """Write key/value pairs into the ONNX file's metadata_props (replacing same keys)."""
    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
