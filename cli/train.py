"""`facegate train quality` and `facegate train bench-quality` (need facegate[train])."""
from __future__ import annotations

import json
from pathlib import Path


def _lfw(args) -> Path:
    from facegate.edge_runtime.paths import data_dir
    return Path(args.lfw) if args.lfw else data_dir() / "lfw"


def cmd_train_quality(args) -> int:
    """Train one quality model per requested split; print a one-line summary each."""
    from facegate.models.training.quality_train import QualityTrainConfig, train_quality

    for split in args.split or ["first"]:
        cfg = QualityTrainConfig(split=split, lfw_dir=str(_lfw(args)), epochs=args.epochs,
                                 batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
                                 degradations_per_image=args.degradations, seed=args.seed,
                                 deterministic=not args.nondeterministic, device=args.device,
                                 limit_people=args.limit_people, max_steps=args.max_steps)
        r = train_quality(cfg, args.out, args.cache, resume=args.resume, progress=not args.quiet,
                          bundle_dir=args.bundle)
        last = r["history"][-1]
        print(f"quality[{split}]: trained on {cfg.train_people} ({cfg.train_images} photos), tested on "
              f"{cfg.test_people} ({cfg.test_images} photos); {r['train_samples']} training samples; last epoch "
              + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch")
              + f"; {r['seconds']} s -> {r['onnx']}")
    return 0


def cmd_bench_quality(args) -> int:
    """The error-versus-discard benchmark of the trained quality models (both halves and their union)."""
    from facegate.edge_runtime.eval.quality_eval import bench_quality, markdown_report, plot_edc

    report = bench_quality(_lfw(args), Path(args.runs), Path(args.cache), bundle_dir=args.bundle,
                           progress=not args.quiet)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_edc(report, Path(args.plot))
    if args.markdown:
        Path(args.markdown).write_text(markdown_report(report))
    for name, half in report["halves"].items():
        print(f"{name}: " + ", ".join(f"{m} {c[0] * 100:.2f}% -> {c[10] * 100:.2f}% (10%)"
                                      for m, c in half["curves"].items()))
    return 0
