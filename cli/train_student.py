"""`facegate train student`, `train map` and `train saliency` (need facegate[train]; docs/student.md)."""
from __future__ import annotations

from pathlib import Path


def _lfw(args) -> Path:
    from facegate.edge_runtime.paths import data_dir
    return Path(args.lfw) if args.lfw else data_dir() / "lfw"


def _spread(rows, n: int):
    """At most n of `rows`, evenly spread (every k-th)."""
    import numpy as np
    if n >= len(rows):
        return rows
    return rows[np.linspace(0, len(rows) - 1, n).round().astype(int)]


def cmd_train_student(args) -> int:
    """Distil the teacher into the student, export + calibrate it, score it on folds 6-10 against the
    teacher, and (--bundle-out) write the small bundle."""
    from facegate.edge_runtime.eval.student_eval import markdown
    from facegate.models.training.student_export import (evaluate_final, export_student, onnx_table,
                                                         quantize_student, write_small_bundle)
    from facegate.models.training.student_train import StudentTrainConfig, train_student, write_json

    cfg = StudentTrainConfig(lfw_dir=str(_lfw(args)), extra=[str(d) for d in args.extra], teacher=args.teacher,
                             width=args.width, epochs=args.epochs, epoch_samples=args.epoch_samples or None,
                             batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                             cos_weight=args.cos_weight, eval_pairs_per_fold=args.eval_pairs, seed=args.seed,
                             deterministic=not args.nondeterministic, device=args.device, threads=args.threads,
                             limit_images=args.limit_images, limit_people=args.limit_people,
                             max_steps=args.max_steps)
    out = Path(args.out)
    r = train_student(cfg, out, Path(args.cache), args.describe_cache, resume=args.resume,
                      progress=not args.quiet, bundle_dir=args.bundle)
    data, saved = r["data"], dict(vars(r["config"]))
    lfw = data["lfw"]
    calib = _spread(data["calibration_rows"], args.calib_images)
    fp32, int8 = out / "student.fp32.onnx", out / "student.int8.onnx"
    diff = export_student(r["model"], fp32, saved, lfw["chips"][calib[:16]])
    quantize_student(fp32, int8, lfw["chips"][calib])
    last = r["history"][-1] if r["history"] else {}
    print(f"student: width {cfg.width}, {r['params']} parameters; trained on {cfg.train_people} "
          f"({cfg.train_images} photos with a face), held out {cfg.test_people} ({cfg.test_images} photos); "
          f"{r['step']} steps, {r['seconds']} s; last epoch "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch")
          + f"; ONNX vs PyTorch {diff:.1e} -> {fp32}, {int8}")
    if args.no_eval:
        return 0
    b = r["bundle"]
    teacher_file = Path(b.path) / b.manifest.embedders[cfg.teacher].file
    from facegate.edge_runtime.errors import FacegateError
    from facegate.edge_runtime.eval.student_eval import heldout_pairs
    held = {str(r) for r in lfw["relpaths"][data["test_rows"]]}
    every = heldout_pairs(Path(cfg.lfw_dir))
    pairs = [p for p in every if p.a in held and p.b in held]      # both photos have a face (all, on LFW)
    if not pairs:
        raise FacegateError("no held-out pair of folds 6-10 has a face in both photos: nothing to score")
    report = evaluate_final(data, {"fp32": fp32, "int8": int8}, teacher_file, r["params"], pairs,
                            latency_rounds=args.latency_rounds)
    report.update(pairs_in_folds=len(every), config=saved, history=r["history"], train_seconds=r["seconds"],
                  calibration_chips=int(len(calib)), people={"train": cfg.train_people, "test": cfg.test_people})
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    print(f"speed-up {report['speedup']:.2f}x, accuracy loss {report['accuracy_loss'] * 100:+.2f} points: target "
          + ("met" if report["target_met"] else "NOT met") + " (>= 2x faster, <= 0.5 points)")
    if args.bundle_out:
        rows = data["test_rows"]
        table = onnx_table(int8, lfw["chips"][rows], lfw["relpaths"][rows])
        write_small_bundle(Path(args.bundle_out), b, int8, table, pairs, report["models"]["student_mfn int8"])
        print(f"small bundle -> {args.bundle_out}")
    return 0


def cmd_train_map(args) -> int:
    """t-SNE map of held-out people's embeddings: teacher (cached) vs the student checkpoint."""
    import numpy as np

    from facegate.edge_runtime.bundle import load_bundle
    from facegate.models.training.student_train import StudentTrainConfig, embed_torch, load_student, prepare_data
    from facegate.models.training.visualize import pick_people, plot_maps, tsne_map

    model, saved = load_student(args.checkpoint)
    cfg = StudentTrainConfig(**saved)
    data = prepare_data(cfg, load_bundle(args.bundle), Path(args.cache), args.describe_cache, not args.quiet)
    lfw, test = data["lfw"], data["test_rows"]
    person = np.array([str(r).split("/")[0] for r in lfw["relpaths"][test]])
    pick = pick_people(person, args.people, args.per_person)
    rows = test[pick]
    import torch
    student = embed_torch(model, lfw["chips"][rows], torch.device("cpu"))
    maps = {f"teacher ({cfg.teacher}, bundle)": tsne_map(lfw["teacher"][rows], args.seed),
            f"student (width {cfg.width})": tsne_map(student, args.seed)}
    title = (f"{len(set(person[pick]))} held-out people (LFW folds 6-10, never trained on), "
             f"<= {args.per_person} photos each, {len(rows)} faces; t-SNE, cosine")
    plot_maps(maps, person[pick], Path(args.out), title)
    print(f"map of {len(rows)} faces of {len(set(person[pick]))} held-out people -> {args.out}")
    return 0


def cmd_train_saliency(args) -> int:
    """Which pixels drove the match score of two photos: gradient overlays written to --out."""
    import numpy as np

    from facegate.edge_runtime.align import align_face
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.detection import central_face
    from facegate.edge_runtime.errors import FacegateError
    from facegate.edge_runtime.imageio import load_image
    from facegate.models.training.visualize import overlay, pair_saliency, write_png

    if args.sface:
        from facegate.edge_runtime.contract import SFACE as contract
        from facegate.models.registry import build
        model, label = build("sface"), "sface"
    else:
        from facegate.edge_runtime.contract import STUDENT_MFN as contract
        from facegate.models.training.student_train import load_student
        model, label = load_student(args.checkpoint)[0], "student_mfn"
    det = load_bundle(args.bundle).detector
    chips = []
    for p in (args.image1, args.image2):
        img = load_image(p)
        face = central_face(det, img)
        if face is None:
            raise FacegateError(f"{p}: no face found")
        chips.append(align_face(img, face.landmarks, np.asarray(contract.template, np.float64), contract.input_size))
    score, maps = pair_saliency(model, chips[0], chips[1], contract)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    views = [overlay(c, m) for c, m in zip(chips, maps)]
    write_png(out / "saliency_pair.png", np.concatenate([chips[0], views[0], views[1], chips[1]], axis=1))
    for i, (c, v) in enumerate(zip(chips, views), 1):
        write_png(out / f"chip{i}.png", c)
        write_png(out / f"saliency{i}.png", v)
    np.save(out / "saliency.npy", maps)
    print(f"{label}: cosine match score {score:.3f}; overlays -> {out} (faces: keep them out of the repository)")
    return 0

