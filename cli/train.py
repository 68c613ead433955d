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
                                 degradations_per_image=args.degradations, genuine=args.genuine, seed=args.seed,
                                 loss=args.loss, pairs_per_photo=args.pairs_per_photo,
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
    report["miss_by_quality"] = _miss_by_quality(report, _lfw(args), Path(args.runs), Path(args.cache), args.bundle)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_edc(report, Path(args.plot))
    if args.markdown:
        Path(args.markdown).write_text(markdown_report(report) + _miss_markdown(report["miss_by_quality"]))
    for name, half in report["halves"].items():
        print(f"{name}: " + ", ".join(f"{m} {c[0] * 100:.2f}% -> {c[10] * 100:.2f}% (10%)"
                                      for m, c in half["curves"].items()))
    return 0


def _miss_by_quality(report: dict, lfw: Path, runs: Path, cache: Path, bundle_dir) -> dict:
    """Per held-out half: its model's quality bins against the share of genuine comparisons missed at the
    half's FMR 1e-3 threshold, over the held-out people's clean photos and their degraded copies (the
    copies embedded for training, cached; a half without them is left out)."""
    import numpy as np

    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.eval.quality_eval import HALVES, all_relpaths, cached_description, run_quality_model
    from facegate.models.training.quality_data import cached_degraded, miss_by_quality, split_people

    bundle = load_bundle(bundle_dir)
    desc = cached_description(cache, lfw, all_relpaths(lfw), bundle, progress=False)
    person = np.array([r.split("/")[0] for r in desc["relpaths"]])
    found_per = dict(zip(*np.unique(person[desc["found"]], return_counts=True)))
    multi = np.flatnonzero(desc["found"] & np.array([found_per.get(p, 0) >= 2 for p in person]))
    deg = cached_degraded(cache, lfw, desc, multi, bundle, 3, 0, progress=False)
    out = {}
    for (split, folds), (title, half) in zip(HALVES.items(), report["halves"].items()):
        _, test, _ = split_people(lfw, split)
        held = np.flatnonzero(np.isin(person, list(test)) & desc["found"])
        dsel = np.flatnonzero(np.isin(deg["source"], held))
        emb = np.concatenate([desc["embedding"][held], deg["embedding"][dsel]]).astype(np.float32)
        source = np.concatenate([held, deg["source"][dsel]])
        q = run_quality_model(runs / f"quality_{split}.onnx", emb, np.ones(len(emb), bool))
        out[title] = {"threshold": half["threshold"], "clean": int(len(held)), "degraded": int(len(dsel)),
                      "bins": miss_by_quality(q, emb, source, person, held, desc["embedding"][held], bundle.metric,
                                              half["threshold"])}
    return out


def _miss_markdown(miss: dict) -> str:
    """The miss_by_quality tables as Markdown."""
    lines = ["", "### How often faces of each predicted quality fail", "",
             "Held-out people's clean photos and their 3 degraded copies each (the training degradations), scored "
             "by the model that never saw them; share of each face's comparisons with the other clean photos of "
             "the same person that score below the half's FMR 1e-3 threshold.", ""]
    for title, m in miss.items():
        lines += [f"{title}: {m['clean']} clean photos + {m['degraded']} degraded copies, threshold "
                  f"{m['threshold']:.3f}", "", "| quality | faces | genuine comparisons missed |", "|---|---|---|"]
        for b in m["bins"]:
            span = ("below {to:g}" if b["from"] is None else "{from:g} and above" if b["to"] is None
                    else "{from:g} to {to:g}").format(**b)
            lines.append(f"| {span} | {b['faces']} | {100 * b['missed_share']:.1f}% |")
        lines.append("")
    return "\n".join(lines)
