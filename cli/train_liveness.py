"""`facegate train liveness`: fine-tune MiniFASNet on synthetic attacks of training people
(models/training/liveness_finetune.py; docs/liveness_benchmark.md)."""
from __future__ import annotations

from pathlib import Path

from facegate.edge_runtime.paths import data_dir


def cmd_train_liveness(args) -> int:
    """Fine-tune both MiniFASNets; print a one-line summary."""
    from facegate.models.training.liveness_finetune import LivenessTrainConfig, train_liveness

    data = Path(args.data) if args.data else data_dir()
    weights = Path(args.weights) if args.weights else data / "weights" / "minifasnet"
    cfg = LivenessTrainConfig(data_dir=str(data), weights_dir=str(weights), train_video=args.train_video,
                              frame_step=args.frame_step, val_video_fraction=args.val_video_fraction,
                              lfw_photos=args.lfw_photos, extra_dirs=[str(d) for d in args.extra],
                              extra_photos=args.extra_photos, copies=args.copies, epochs=args.epochs,
                              batch_size=args.batch_size, lr=args.lr, anchor=args.anchor, seed=args.seed,
                              deterministic=not args.nondeterministic, device=args.device)
    r = train_liveness(cfg, args.out, args.cache, resume=args.resume, progress=not args.quiet)
    rec, last = r["record"], r["record"]["history"][-1]
    best = next(h for h in rec["history"] if h["epoch"] == rec["best_epoch"])
    print(f"liveness: trained on {len(rec['people']['train'])} LFW training people + {cfg.train_video} "
          + (f"+ {cfg.extra_used} extra photos " if cfg.extra_dirs else "")
          + f"({rec['samples']['train']} samples, {rec['samples']['train_attacks']} attacks), validated on "
          f"{len(rec['people']['val'])} other training people and the video's last frames; last epoch "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch")
          + f"; weights of epoch {rec['best_epoch']} (" + ", ".join(f"{k} {v:.4g}" for k, v in best.items()
                                                                  if k.startswith("val_")) + ")"
          + f"; {r['seconds']} s -> {r['weights']} (converted MiniFASNet weights: never commit them)")
    return 0
