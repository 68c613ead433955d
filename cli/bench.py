"""`facegate bench ...`: pick the backend (PyTorch fp32 or an ONNX bundle), run, print a table, write JSON."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facegate.main import data_dir


def models_for(args, embedders: list[str]):
    """(detector, {name: embedder}, description) for --fp32 (PyTorch) or --bundle DIR (default: shipped)."""
    kw = {"score_threshold": args.score_threshold}
    if args.fp32:
        from facegate.models.backend import torch_detector, torch_embedder
        return torch_detector(**kw), {n: torch_embedder(n) for n in embedders}, "pytorch-fp32"
    from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle
    root = args.bundle or default_bundle_dir()
    loaded = {n: load_bundle(root, embedder=n, threads=args.threads, **kw) for n in embedders}
    first = next(iter(loaded.values()))
    return first.detector, {n: b.embedder for n, b in loaded.items()}, f"bundle {root} ({first.manifest.id})"


def cmd_bench_lfw(args) -> int:
    from facegate.edge_runtime.lfw_eval import evaluate_lfw, plot_roc

    lfw = data_dir() / "lfw"
    if not (lfw / "pairs.txt").is_file():
        print(f"facegate bench lfw: no LFW at {lfw}; set FACEGATE_DATA", file=sys.stderr)
        return 2
    names = args.embedder or ["dlib_resnet", "sface"]
    detector, embedders, backend = models_for(args, names)
    report = evaluate_lfw(lfw, detector, embedders, limit=args.limit)
    report["backend"] = backend
    print(f"LFW 10-fold ({backend}): {report['pairs']} pairs, {report['images']} images, "
          f"{len(report['no_face'])} without a face, {report['seconds']:.0f} s")
    print(f"{'embedder':14s} {'accuracy':>10s} {'std':>7s} {'TAR@FAR1e-3':>12s} {'TAR@FAR1e-2':>12s}")
    for n, r in report["results"].items():
        print(f"{n:14s} {r['accuracy'] * 100:9.2f}% {r['std'] * 100:6.2f}% "
              f"{r['tar_at_far_0.001'] * 100:11.2f}% {r['tar_at_far_0.01'] * 100:11.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_roc(report, args.plot)
    return 0
