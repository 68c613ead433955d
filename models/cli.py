"""Handlers for `facegate models ...` and `facegate bench lfw --fp32` (PyTorch side)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def default_weights_dir() -> Path:
    """Per-user cache for converted weights ($XDG_CACHE_HOME/facegate/weights)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "facegate" / "weights"


def cmd_list(args) -> int:
    from .registry import get_spec, list_models

    for name in list_models():
        s = get_spec(name).source
        print(f"{name:20s} {s.package:24s} {s.licence:40s} {s.upstream}")
    return 0


def cmd_import(args) -> int:
    from .importer import import_weights
    from .registry import list_models

    out = args.out or default_weights_dir()
    for name in args.names or list_models():
        path = import_weights(name, out)
        print(f"{name}: {path}")
    return 0


def cmd_measure_template(args) -> int:
    from facegate.edge_runtime.lfw import people_outside_pairs, read_pairs
    from facegate.main import data_dir

    from .backend import torch_detector
    from .template import measure_dlib_template

    lfw = data_dir() / "lfw"
    people = people_outside_pairs(lfw, read_pairs(lfw / "pairs.txt"))
    paths = sorted(p for n in people for p in (lfw / n).glob("*.jpg"))[: args.limit]
    result = measure_dlib_template(paths, torch_detector())
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def cmd_bench_lfw(args) -> int:
    from facegate.edge_runtime.lfw_eval import evaluate_lfw, plot_roc
    from facegate.main import data_dir

    if not args.fp32:
        print("facegate bench lfw: only --fp32 (PyTorch) is available until a model bundle is built",
              file=sys.stderr)
        return 2
    from .backend import torch_detector, torch_embedder
    from .registry import get_spec

    lfw = data_dir() / "lfw"
    if not (lfw / "pairs.txt").is_file():
        print(f"facegate bench lfw: no LFW at {lfw}; set FACEGATE_DATA", file=sys.stderr)
        return 2
    names = args.embedder or ["dlib_resnet", "sface"]
    detector = torch_detector(score_threshold=args.score_threshold)
    report = evaluate_lfw(lfw, detector, {n: torch_embedder(n) for n in names}, limit=args.limit)
    report["backend"] = "pytorch-fp32"
    report["models"] = {n: get_spec(n).source.provenance() for n in ["retinaface_mnet025", *names]}
    print(f"LFW 10-fold, {report['pairs']} pairs, {report['images']} images, "
          f"{len(report['no_face'])} without a face, {report['seconds']:.0f} s")
    print(f"{'embedder':14s} {'accuracy':>10s} {'std':>7s} {'TAR@FAR1e-3':>12s} {'TAR@FAR1e-2':>12s}")
    for n, r in report["results"].items():
        print(f"{n:14s} {r['accuracy'] * 100:9.2f}% {r['std'] * 100:6.2f}% "
              f"{r['tar_at_far_0.001'] * 100:11.2f}% {r['tar_at_far_0.01'] * 100:11.2f}%")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_roc(report, args.plot)
    return 0
