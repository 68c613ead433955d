"""`facegate bench ...`: pick the backend (PyTorch fp32 or an ONNX bundle), run, print a table, write JSON."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facegate.edge_runtime.eval.speed import face_photos, fresh_process
from facegate.edge_runtime.paths import data_dir


def models_for(args, embedders: list[str] | None):
    """(detector, {name: embedder}, description) for --fp32 (PyTorch) or --bundle DIR (default: shipped).

    embedders: names to load; None = every embedder the bundle carries and its fusion (--fp32: both
    embedders); [] = the detector alone. A fusion name with --fp32 runs the PyTorch parts with the
    fusion weights of --bundle (default: the shipped one)."""
    from facegate.edge_runtime.bundle import BundleError, default_bundle_dir, load_bundle, read_manifest
    kw = {"score_threshold": args.score_threshold, "max_side": getattr(args, "max_side", 640)}
    root = args.bundle or default_bundle_dir()
    if args.fp32:
        from facegate.edge_runtime.contract import EMBEDDERS
        from facegate.edge_runtime.embedding import FusedEmbedder
        from facegate.models.backend import torch_detector, torch_embedder
        names = ["sface", "dlib_resnet"] if embedders is None else embedders
        out = {}
        for n in names:
            if n in EMBEDDERS:
                out[n] = torch_embedder(n)
                continue
            m = read_manifest(Path(root))
            if m.fusion is None or m.fusion.name != n:
                raise BundleError(f"bundle {root} has no fusion {n!r} to take the weights from; pass --bundle DIR")
            out[n] = FusedEmbedder([torch_embedder(p) for p in m.fusion.fusion.parts], m.fusion.fusion)
        return torch_detector(**kw), out, "pytorch-fp32"
    names = read_manifest(Path(root)).choices if embedders is None else embedders
    loaded = {n: load_bundle(root, embedder=n, threads=args.threads, **kw) for n in names}
    first = next(iter(loaded.values())) if loaded else load_bundle(root, threads=args.threads, **kw)
    return first.detector, {n: b.embedder for n, b in loaded.items()}, f"bundle {root} ({first.manifest.id})"


def quality_gate_for(args, embs: dict):
    """(the bundle's quality gate as the door applies it, or None; a line saying which) for `bench openset` and
    `bench lfw`: the model and threshold of --bundle (default: the shipped one), read on the fusion's embeddings.
    None with --no-quality-gate, with --fp32 (no bundle runs), for a bundle without a quality model, and when the
    fusion is not measured (a door running a single embedder has no quality gate)."""
    from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle, read_manifest
    from facegate.edge_runtime.eval.lfw_eval import QualityGate

    if getattr(args, "no_quality_gate", False):          # parsers without the flag: the gate applies
        return None, "quality gate off (--no-quality-gate)"
    if args.fp32:
        return None, "quality gate off: --fp32 runs no bundle, and the bundle's quality model reads its int8 embeddings"
    root = Path(args.bundle or default_bundle_dir())
    m = read_manifest(root)
    if m.quality is None:
        return None, f"no quality gate: bundle {m.id} has no quality model"
    if m.fusion.name not in embs:
        return None, (f"no quality gate: its model reads {m.fusion.name} embeddings, not measured here (a door "
                      "running a single embedder has no quality gate)")
    b = load_bundle(root, embedder=m.fusion.name, threads=args.threads)
    return (QualityGate(b.quality, m.quality.threshold, m.fusion.name),
            f"quality gate of bundle {m.id}: {m.quality.file}, faces below {m.quality.threshold:g} unusable")


def _gate_report(gate, note: str, low: dict[str, float], groups: dict[str, list[str]]) -> dict:
    """The report's "quality_gate" entry: whether it ran, its threshold, and the refused photos ({relpath: quality})
    counted in each of `groups` ({label: relpaths})."""
    return {"applied": gate is not None, "note": note, "threshold": None if gate is None else gate.threshold,
            "refused": {k: len(set(v) & set(low)) for k, v in groups.items()}, "refused_photos": low}


def _print_gate(g: dict) -> None:
    print(g["note"] + ("; refused " + ", ".join(f"{k} {v}" for k, v in g["refused"].items()) if g["applied"] else ""))


def default_embedder(args) -> str:
    """The embedder a plain run measures: the bundle's default (--fp32: sface)."""
    from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
    return "sface" if args.fp32 else read_manifest(Path(args.bundle or default_bundle_dir())).default_embedder


def cmd_bench_lfw(args) -> int:
    from facegate.edge_runtime.eval.lfw_eval import evaluate_lfw, plot_roc

    lfw = data_dir() / "lfw"
    if not (lfw / "pairs.txt").is_file():
        print(f"facegate bench lfw: no LFW at {lfw}; set FACEGATE_DATA", file=sys.stderr)
        return 2
    detector, embedders, backend = models_for(args, args.embedder)
    gate, note = quality_gate_for(args, embedders)
    report = evaluate_lfw(lfw, detector, embedders, limit=args.limit, gate=gate)
    report["backend"] = backend
    report["quality_gate"] = _gate_report(gate, note, report["low_quality"], {"photos": list(report["low_quality"])})
    print(f"LFW 10-fold ({backend}): {report['pairs']} pairs, {report['images']} images, "
          f"{len(report['no_face'])} without a face, {report['seconds']:.0f} s")
    _print_gate(report["quality_gate"])
    print(f"{'embedder':18s} {'accuracy':>10s} {'std':>7s} {'TAR@FAR1e-3':>12s} {'TAR@FAR1e-2':>12s}")
    for n, r in report["results"].items():
        print(f"{n:18s} {r['accuracy'] * 100:9.2f}% {r['std'] * 100:6.2f}% "
              f"{r['tar_at_far_0.001'] * 100:11.2f}% {r['tar_at_far_0.01'] * 100:11.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_roc(report, args.plot)
    return 0


def _write(args, report: dict) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def _speed_ours(args, threads: int, photos: list[Path], liveness_bundle: Path | None = None) -> dict:
    """Rows of our pipeline; with liveness_bundle (a bundle with liveness models, used instead of --bundle)
    each row also times the liveness check of the face."""
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.eval.speed import bench_stages
    from facegate.edge_runtime.sessions import share_thread_pool
    args.threads = threads
    if not args.fp32:
        share_thread_pool(threads)          # as the device commands run (facegate.main)
    if liveness_bundle is not None:
        args.bundle = liveness_bundle
    det, embs, backend = models_for(args, args.embedder or [default_embedder(args)])
    live = load_bundle(liveness_bundle, threads=threads).liveness if liveness_bundle is not None else None
    return {name: dict(bench_stages(det, emb, photos, threads=threads, repeats=args.repeats, liveness=live),
                       backend=backend)
            for name, emb in embs.items()}


def _liveness_bundle(args, work: Path) -> tuple[Path | None, str]:
    """(a bundle with liveness models, how it was found) for bench speed's liveness row: --bundle when it has
    them, else one built in `work` from $FACEGATE_DATA/weights/minifasnet (needs facegate[train]); (None, why)
    when neither is possible."""
    from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
    src = Path(args.bundle or default_bundle_dir())
    if read_manifest(src).liveness is not None:
        return src, f"liveness models of {src}"
    weights = data_dir() / "weights" / "minifasnet"
    try:
        from facegate.export.liveness_export import LivenessBuildError, add_liveness
    except ModuleNotFoundError as e:
        return None, f"no liveness row: {src} has no liveness model and building one needs {e.name} (facegate[train])"
    try:
        return add_liveness(weights, work / "liveness-bundle", bundle=src), f"built from {weights} (temporary)"
    except LivenessBuildError as e:
        return None, f"no liveness row: {src} has no liveness model and none could be built ({e})"


def _speed_peer(args, threads: int, photos: list[Path]) -> dict:
    from facegate.edge_runtime.eval.peers import OpenCVZooPeer
    from facegate.edge_runtime.eval.speed import bench_stages
    peer = OpenCVZooPeer(threads=threads, max_side=args.max_side)
    return bench_stages(peer, peer, photos, threads=threads, repeats=args.repeats)


def cmd_bench_speed(args) -> int:
    """Median latency per stage on a 640x480 frame, ours vs OpenCV Zoo's YuNet + SFace, 1 and 2 threads.
    Every row runs in its own fresh process (own thread pools, own peak RSS)."""
    import tempfile

    photos = face_photos()
    rows, backend = {}, None
    with tempfile.TemporaryDirectory(prefix="facegate.bench.") as work:
        live_bundle, live_note = (None, "no liveness row with --fp32") if args.fp32 else \
            _liveness_bundle(args, Path(work))
        for threads in (1, 2):
            for name, r in fresh_process(_speed_ours, args, threads, photos).items():
                backend = r.pop("backend")
                rows[f"facegate {name} ({'fp32' if args.fp32 else 'bundle'}), {threads} thr"] = r
            if live_bundle is not None:
                for name, r in fresh_process(_speed_ours, args, threads, photos, live_bundle).items():
                    r.pop("backend")
                    rows[f"facegate {name} + liveness, {threads} thr"] = dict(r, liveness=live_note)
            if not args.no_peer:
                rows[f"OpenCV Zoo YuNet+SFace int8bq, {threads} thr"] = fresh_process(_speed_peer, args, threads,
                                                                                      photos)
    cols = ("decode", "detect", "align", "embed", "match", "detect+align+embed", "total", "liveness",
            "detect+align+embed+liveness")
    heads = ("decode", "detect", "align", "embed", "match", "det+al+emb", "total", "liveness", "+liveness")
    print(f"median ms, 640x480 frame, detector input longer side {args.max_side}")
    print(f"{'pipeline':44s} " + " ".join(f"{h:>10s}" for h in heads))
    for k, r in rows.items():
        print(f"{k:44s} " + " ".join(f"{r['ms'][s]:10.2f}" if s in r["ms"] else f"{'-':>10s}" for s in cols))
    print(f"liveness: {live_note}")
    ratios = {}
    for threads in (1, 2):
        ours = [r for k, r in rows.items() if k.startswith("facegate") and k.endswith(f"{threads} thr")]
        peer = [r for k, r in rows.items() if k.startswith("OpenCV") and k.endswith(f"{threads} thr")]
        if ours and peer:
            ratios[threads] = {s: peer[0]["ms"][s] / ours[0]["ms"][s] for s in ("detect+align+embed", "total")}
            print(f"{threads} thread(s): facegate is {ratios[threads]['detect+align+embed']:.2f}x the speed of "
                  f"OpenCV Zoo on detect+align+embed, {ratios[threads]['total']:.2f}x end to end (same run)")
    for k, r in rows.items():
        print(f"peak RSS {r['peak_rss_mb']:5.0f} MB  {k} (its own process)")
    _write(args, {"backend": backend, "max_side": args.max_side, "rows": rows, "speedup_vs_peer": ratios,
                  "liveness": live_note})
    return 0


def cmd_bench_wider(args) -> int:
    """Detection AP (IoU 0.5) on the WIDER FACE val subset, ours vs YuNet."""
    from facegate.edge_runtime.eval.peers import OpenCVZooPeer
    from facegate.edge_runtime.eval.wider_eval import evaluate_wider

    root = data_dir() / "widerface_val_subset"
    det, _, backend = models_for(args, [])
    report = {"backend": backend, "max_side": args.max_side, "min_face": args.min_face,
              "facegate": evaluate_wider(root, det, limit=args.limit, min_face=args.min_face)}
    if not args.no_peer:
        report["yunet"] = evaluate_wider(root, OpenCVZooPeer(threads=args.threads, max_side=args.max_side),
                                         limit=args.limit, min_face=args.min_face)
    for k in ("facegate", "yunet"):
        if k in report:
            r = report[k]
            print(f"{k:10s} AP@0.5 {r['ap'] * 100:6.2f}%  images {r['images']}  faces {r['faces']}  "
                  f"{r['seconds']:.0f} s")
    _write(args, report)
    return 0


def cmd_bench_identify(args) -> int:
    """1:N search time against 1,000 / 10,000 / 100,000 enrolled templates."""
    from facegate.edge_runtime.eval.speed import bench_search

    metric = args.metric
    if metric == "fused":
        from facegate.edge_runtime.bundle import BundleError, default_bundle_dir, read_manifest
        m = read_manifest(default_bundle_dir())
        if m.fusion is None:
            raise BundleError("the shipped bundle has no fusion; use --metric cosine or euclidean")
        metric = m.fusion.fusion
    report = bench_search(tuple(args.sizes), metric=metric)
    print(f"{'templates':>10s} {'people':>8s} {'median ms':>10s} {'p90 ms':>8s}")
    for r in report["rows"]:
        print(f"{r['templates']:10d} {r['people']:8d} {r['median_ms']:10.3f} {r['p90_ms']:8.3f}")
    _write(args, report)
    return 0


def cmd_bench_pipeline(args) -> int:
    """The door loop on a 640x480 video: fps, decision latency, peak RSS, each side in a fresh process so
    that each peak RSS is its own. The person is enrolled by the enrollment code into a throw-away store;
    then each frame goes through `Runner.process`, the method `facegate run` calls per frame (recognise,
    decide, act on a dry-run door, write the event and the audit rows), with the door's memory settings and
    again with onnxruntime's defaults; and OpenCV Zoo's YuNet + SFace run on the same frames."""
    import tempfile

    from facegate.edge_runtime.eval.pipeline import bench_pipeline, door_clip

    if args.fp32:
        raise SystemExit("facegate bench pipeline runs an ONNX bundle (the device path); drop --fp32")
    with tempfile.TemporaryDirectory(prefix="facegate.bench.") as home:
        sides = bench_pipeline(door_clip(data_dir()), Path(home), args.bundle, (args.embedder or [None])[0],
                               args.threads, args.max_side, peer=not args.no_peer)
    report = sides["door"]
    print(f"{report['backend']}, {args.threads} threads, {report['frames']} frames at 640x480 "
          f"(detector at {report['live_max_side']} px), {report['frames_with_face']} with a face recognised")
    if "fps_with_face" in report:
        print(f"frames with a face: median {report['median_face_frame_ms']:.1f} ms ({report['fps_with_face']:.1f} fps)")
    print(f"median {report['median_frame_ms']:.1f} ms/frame ({report['fps']:.1f} fps), "
          f"p90 {report['p90_frame_ms']:.1f} ms; decision latency "
          f"{report.get('decision_latency_ms', float('nan')):.0f} ms (k={report['k']}); "
          f"peak RSS {report['peak_rss_mb']:.0f} MB (max {report['peak_rss_mb_max']:.0f})")
    print(f"(medians of {len(report['runs'])} runs of each side, interleaved, each in its own process)")
    for key, label in (("door_ort_defaults", "the door with onnxruntime's default memory settings"),
                       ("peer", "OpenCV Zoo YuNet + SFace on the same frames")):
        if key in sides:
            r = sides[key]
            print(f"{label}: median {r['median_frame_ms']:.1f} ms/frame, frames with a face "
                  f"{r.get('median_face_frame_ms', float('nan')):.1f} ms; peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(max {r['peak_rss_mb_max']:.0f})")
    _write(args, dict(report, **{k: v for k, v in sides.items() if k != "door"}))
    return 0


def cmd_bench_openset(args) -> int:
    """Open-set 1:N on LFW: one photo enrolled per person with several, their other photos as mated
    probes, never-enrolled people as impostors; FNIR at FPIR 1% and 0.1% of every embedder and of the
    bundle's fusion, a two-fold held-out check of the fusion, the peer, and the door at its operating point."""
    from facegate.edge_runtime.eval.lfw_eval import embed_images
    from facegate.edge_runtime.eval.openset import build_searches, evaluate_openset, openset_relpaths
    from facegate.edge_runtime.eval.peers import OpenCVZooPeer

    lfw = data_dir() / "lfw"
    enrol, mated, nonmated = openset_relpaths(lfw)
    det, embs, backend = models_for(args, args.embedder)
    rel = sorted(set(enrol) | set(mated) | set(nonmated))
    gate, note = quality_gate_for(args, embs)
    ours = embed_images(lfw, rel, det, embs, gate=gate)
    tables = {n: (t, embs[n].metric) for n, t in ours["embeddings"].items()}
    if not args.no_peer:
        peer = OpenCVZooPeer(threads=args.threads)
        tables["opencv_zoo_peer"] = (embed_images(lfw, rel, peer, {"peer": peer})["embeddings"]["peer"], "cosine")
    searches = {n: build_searches(t, enrol, mated, nonmated, metric) for n, (t, metric) in tables.items()}
    report = {"backend": backend, "results": {n: evaluate_openset(s) for n, s in searches.items()},
              "quality_gate": _gate_report(gate, note, ours["low_quality"],
                                           {"enrol": enrol, "mated": mated, "nonmated": nonmated})}
    report.update(_fusion_section(embs, searches))
    if args.plot:
        from facegate.edge_runtime.eval.openset import det_curve, plot_det
        plot_det({n: det_curve(s) for n, s in searches.items()}, args.plot)
    door = default_embedder(args)
    if door in embs:
        report["door"] = _door_section(args, lfw, {n: t for n, t in tables.items() if n in (door, "opencv_zoo_peer")},
                                       backend, report["quality_gate"])
    _print_openset(report, embs)
    _write(args, report)
    return 0


def _fusion_section(embs: dict, searches: dict) -> dict:
    """The two-fold held-out check of the fusion: of the bundle's (its weight re-picked per half, its
    z-stats kept) or, with two single embedders, of a fusion fitted here. {} when neither applies."""
    from facegate.edge_runtime.eval.openset import fusion_report

    fused = [e for e in embs.values() if not isinstance(e.metric, str)]
    singles = [n for n, e in embs.items() if isinstance(e.metric, str)]
    if fused and all(p in searches for p in fused[0].fusion.parts):
        f = fused[0].fusion
        names = list(f.parts)
        section = fusion_report(*(searches[p] for p in names), stats=tuple(zip(f.means, f.stds)))
    elif len(singles) == 2:
        names = singles
        section = fusion_report(*(searches[n] for n in names))
    else:
        return {}
    return {"fusion": section, "fusion_embedders": {"a": names[0], "b": names[1]}}


def _print_openset(report: dict, embs: dict) -> None:
    print(f"open-set 1:N on LFW ({report['backend']})")
    _print_gate(report["quality_gate"])
    print(f"{'embedder':18s} {'rank-1':>8s} {'FNIR@FPIR1%':>12s} {'FNIR@FPIR0.1%':>14s}")
    for n, r in report["results"].items():
        f = r["at_fpir"]
        print(f"{n:18s} {r['rank1'] * 100:7.2f}% {f['0.01']['fnir'] * 100:11.2f}% "
              f"{f['0.001']['fnir'] * 100:13.2f}%")
    fused = [e for e in embs.values() if not isinstance(e.metric, str)]
    if fused:
        print(f"({fused[0].name}: the bundle's weight was picked on these people, so its row is optimistic; "
              "the held-out lines below are the fair estimate)")
    names = report.get("fusion_embedders", {})
    for fold, r in report.get("fusion", {}).items():
        fn = lambda k: r[k]["at_fpir"]["0.01"]["fnir"] * 100  # noqa: E731
        print(f"fusion {fold} (weight tuned on the other half of the people, w={r['w']:.2f} on {names['a']}): "
              f"FNIR@FPIR1% {names['a']} {fn('a'):.2f}%, {names['b']} {fn('b'):.2f}%, fused {fn('fused'):.2f}%")
    if "door" in report:
        _print_door(report["door"])


def _door_section(args, lfw: Path, tables: dict, backend: str, gate: dict) -> dict:
    """The door's numbers at its operating point ({name: (table, metric)}; the first is the bundle's; gate: the
    report's "quality_gate" entry, applied to the bundle's table, not to the peer's)."""
    from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
    from facegate.edge_runtime.config import RecognitionConfig
    from facegate.edge_runtime.eval.door_eval import LFW_ALIASES, cohort_comparison, door_report, fit_model
    from facegate.edge_runtime.eval.lfw import lfw_people

    calibration, evaluation = lfw_people(lfw)
    target = args.false_open_rate or RecognitionConfig().false_open_rate
    shipped = read_manifest(Path(args.bundle or default_bundle_dir())).score_models
    section = {"backend": backend, "target": target, "aliases": [list(a) for a in LFW_ALIASES],
               "calibration_people": len(calibration), "calibration_photos": sum(map(len, calibration.values())),
               "evaluation_people": len(evaluation), "embedders": {}}
    low = gate["refused_photos"]
    section["quality_gate"] = dict(gate, refused={
        "calibration": sum(r in low for v in calibration.values() for r in v),
        "evaluation": sum(r in low for v in evaluation.values() for r in v)})
    for i, (name, (table, metric)) in enumerate(tables.items()):
        # the bundle's own score model; --fp32 and the peer get one measured the same way, on the same people
        model = shipped.get(name) if i == 0 and not args.fp32 else None
        model = model or fit_model(name, table, calibration, metric)
        section["embedders"][name] = door_report(table, metric, model, evaluation, target)
        if i == 0:
            section["embedders"][name]["cohort"] = cohort_comparison(table, metric, calibration, evaluation)
    if args.markdown:
        from facegate.edge_runtime.eval.door_eval import door_markdown
        Path(args.markdown).write_text(_with_gate(door_markdown(section), section["quality_gate"]))
    return section


def _with_gate(markdown: str, g: dict) -> str:
    """The operating-point Markdown with a paragraph on the quality gate after its opening paragraphs."""
    if g["applied"]:
        low = g["refused_photos"]
        line = (f"Quality gate: as the door, the bundle's: a face whose quality is below {g['threshold']:g} is "
                f"unusable (a genuine attempt with it is a miss, a stranger's cannot open, an enrollment photo is "
                f"refused). It refused {len(low)} photo(s) of the bundle's embedder "
                f"({g['refused']['calibration']} of calibration people, {g['refused']['evaluation']} of evaluation "
                f"people: " + (", ".join(f"{r} ({q:.2f})" for r, q in low.items()) or "none") +
                "); the peer has no quality gate.")
    else:
        line = g["note"][:1].upper() + g["note"][1:] + "."
    head, sep, rest = markdown.partition("\n\n")
    first, sep2, rest2 = rest.partition("\n\n")
    return head + sep + first + sep2 + line + "\n\n" + rest2


def _print_door(d: dict) -> None:
    print(f"\nthe door at its operating point (false_open_rate {d['target']:g}; evaluation people only)")
    print(f"{'embedder':18s} {'N':>5s} {'photos':>6s} {'threshold':>9s} {'false opens':>22s} {'misses':>20s}")
    for name, r in d["embedders"].items():
        for t in r["trials"]:
            fo, mi = t["false_open"], t["miss"]
            print(f"{name:18s} {t['people']:5d} {t['photos']:6d} {t['threshold']:9.3f} "
                  f"{fo['rate'] * 100:8.3f}% ({fo['count']:3d}/{fo['of']:5d}) {mi['rate'] * 100:7.2f}% "
                  f"({mi['count']:4d}/{mi['of']:4d})")


def liveness_scorer(args, workdir: Path):
    """(detector, score(image_rgb, face) -> float, description) for `bench liveness`: the runtime path (a bundle
    with liveness: --bundle when it has one, else a copy of --bundle / the shipped bundle with the MiniFASNet
    models of --weights added in `workdir`), or with --fp32 the PyTorch module (models/minifasnet)."""
    from facegate.edge_runtime.bundle import BundleError, default_bundle_dir, load_bundle, read_manifest

    weights = Path(args.weights) if args.weights else data_dir() / "weights" / "minifasnet"
    src = Path(args.bundle) if args.bundle else default_bundle_dir()
    kw = {"score_threshold": args.score_threshold, "max_side": args.max_side}
    if args.fp32:
        from facegate.models.minifasnet import Liveness

        live = Liveness(weights)
        det = load_bundle(src, threads=args.threads, **kw).detector
        return det, lambda img, face: live(img, face.box), f"pytorch-fp32 MiniFASNet ({weights})"
    if read_manifest(src).liveness is None:
        if not weights.is_dir():
            raise BundleError(f"bundle {src} has no liveness models and no MiniFASNet weights at {weights}: pass "
                              "--weights DIR (user-supplied; docs/liveness.md) or --bundle DIR with liveness")
        from facegate.export.liveness_export import add_liveness

        b = load_bundle(add_liveness(weights, workdir / "bundle", src), threads=args.threads, **kw)
        return b.detector, b.liveness.score, (f"bundle {b.manifest.id}: {src.name} with the MiniFASNet models of "
                                              f"{weights} added (bundle add-liveness, temp folder)")
    b = load_bundle(src, threads=args.threads, **kw)
    return b.detector, b.liveness.score, f"bundle {b.manifest.id} ({src})"


def cmd_bench_liveness(args) -> int:
    """APCER per synthetic PAI species and BPCER (videos, LFW) of the liveness model (docs/liveness_benchmark.md)."""
    import tempfile

    from facegate.edge_runtime.config import LivenessConfig, load_config
    from facegate.edge_runtime.eval.liveness_eval import markdown, report, run_bench, write_examples

    data = data_dir()
    if not (data / "videos").is_dir() or not (data / "lfw" / "pairs.txt").is_file():
        print(f"facegate bench liveness: no videos/ or lfw/pairs.txt under {data}; set FACEGATE_DATA", file=sys.stderr)
        return 2
    threshold = args.threshold if args.threshold is not None else (
        load_config(args.config).liveness.threshold if args.config else LivenessConfig().threshold)
    with tempfile.TemporaryDirectory(prefix="facegate-liveness-") as tmp:
        det, score, scorer = liveness_scorer(args, Path(tmp))
        scorers, finetuned = {"main": score}, None
        if args.finetuned:
            finetuned = []
            for i, wdir in enumerate(args.finetuned):
                scorers[f"finetuned{i}"], ft = _finetuned_scorer(args, Path(wdir), Path(tmp) / f"ft{i}",
                                                                 f"finetuned{i}")
                finetuned.append(ft)
        raw = run_bench(data, det, scorers, frame_step=args.frame_step, video_copies=args.video_attacks,
                        lfw_photos=args.lfw_photos, lfw_copies=args.lfw_attacks, seed=args.seed,
                        min_face=args.min_face, progress=None if args.quiet else lambda m: print(m, file=sys.stderr))
    rep = report(raw, threshold, scorer, "LFW people who appear only in folds 6-10 of pairs.txt (the evaluation "
                                          "people of the training issue's rule; none of them trains anything)",
                 finetuned)
    rep["settings"]["detector_max_side"] = args.max_side
    at5, atc = rep["at_bpcer_5pct_video"], rep["at_config_threshold"]
    for name, r in (("BPCER 5% on video", at5), ("configured", atc)):
        print(f"threshold {r['threshold']:.3f} ({name}): BPCER video {_rate(r['video']['BPCER'])}, "
              f"LFW {_rate(r['lfw']['BPCER'])}; APCER " + ", ".join(
                  f"{s} {_rate(v)}" for s, v in r["APCER_all_sources"].items()))
    print(f"target APCER <= 1% at BPCER <= 5%: {'met' if rep['target']['met'] else 'not met'}; "
          f"{rep['seconds']:.0f} s")
    for ba in rep.get("before_after", []):
        for label in ("pretrained", "fine-tuned"):
            r = ba[label]["at_bpcer_5pct_held_out_video"]
            print(f"{label} on the presentations held out from {ba['trained_on']['config']['train_video']}'s model: "
                  f"threshold {r['threshold']:.3f}, BPCER video {_rate(r['video']['BPCER'])}, LFW "
                  f"{_rate(r['lfw']['BPCER'])}; APCER " + ", ".join(f"{s} {_rate(v)}"
                                                                     for s, v in r["APCER_all_sources"].items()))
    for label in ("pretrained", "fine-tuned") if "before_after_union" in rep else ():
        r = rep["before_after_union"][label]
        print(f"{label}, union of the held-out halves: BPCER video {_rate(r['video']['BPCER'])}, LFW "
              f"{_rate(r['lfw']['BPCER'])}; APCER " + ", ".join(f"{s} {_rate(v)}"
                                                                 for s, v in r["APCER_all_sources"].items())
              + f"; target {'met' if r['target_met'] else 'not met'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=1))
        if args.markdown is None:
            args.markdown = Path(args.json).with_suffix(".md")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rep, Path(args.json).name if args.json else "the JSON report"))
    examples = args.examples or _examples_dir(args.json)
    if examples is not None:
        n = len(write_examples(raw["examples"], examples))
        print(f"{n} example images in {examples} (research faces: keep them out of the repository)")
    return 0


def _finetuned_scorer(args, wdir: Path, workdir: Path, name: str):
    """(score, {"scorer", "description", "record"}) of the weights written by `facegate train liveness`, through
    a bundle of their own (the source bundle with them added), and the training record beside them."""
    from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle
    from facegate.edge_runtime.errors import FacegateError
    from facegate.export.liveness_export import add_liveness

    record = wdir.parent / "liveness_finetune.json"
    if not record.is_file():
        raise FacegateError(f"--finetuned {wdir}: no training record {record}; give the weights/ folder "
                            "`facegate train liveness` wrote")
    out = add_liveness(wdir, workdir / "bundle-finetuned", Path(args.bundle) if args.bundle else default_bundle_dir())
    b = load_bundle(out, threads=args.threads, score_threshold=args.score_threshold, max_side=args.max_side)
    return b.liveness.score, {"scorer": name, "record": json.loads(record.read_text()),
                              "description": f"bundle with the weights of {wdir} ({b.manifest.id})"}


def _examples_dir(json_path: Path | None) -> Path | None:
    """Where the example attack images go by default: next to the JSON report, except when that is inside this
    repository (docs/): then build/liveness_examples (ignored by git). Research faces never enter the repository."""
    if json_path is None:
        return None
    here = Path(json_path).resolve().parent
    repo = Path(__file__).resolve().parents[1]
    return repo / "build" / "liveness_examples" if here.is_relative_to(repo) else here / "liveness_examples"


def _rate(r: dict) -> str:
    return "-" if r["rate"] is None else f"{r['rate'] * 100:.2f}% ({r['errors']}/{r['of']})"


def cmd_bench_template_update(args) -> int:
    """Templates that age on LFW: FNIR at FPIR 1% with and without updates, impostor templates added
    (edge_runtime/eval/template_update_eval.py; docs/template_updates.md)."""
    from facegate.edge_runtime.eval.lfw_eval import embed_images
    from facegate.edge_runtime.eval.template_update_eval import evaluate_template_updates, lfw_time_ordered

    lfw = data_dir() / "lfw"
    if not lfw.is_dir():
        print(f"facegate bench template-update: no LFW at {lfw}; set FACEGATE_DATA", file=sys.stderr)
        return 2
    people, impostors = lfw_time_ordered(lfw, 3, args.max_photos, args.impostors)
    name = default_embedder(args)
    det, embs, backend = models_for(args, [name])
    rel = sorted({r for p in people.values() for r in p} | set(impostors))
    table = _cached_embeddings(args.cache, backend, rel, lambda todo: embed_images(lfw, todo, det, embs)
                               ["embeddings"][name])
    report = evaluate_template_updates(table, embs[name].metric, people, impostors, tuple(args.margin or (0.5, 1, 2, 3)),
                                       args.max_per_person)
    report.update(backend=backend, embedder=name, max_photos=args.max_photos,
                  people_used=sorted(people), impostors_used=impostors)
    print(f"{report['people']} people enrolled from one photo, {report['mated_probes']} later photos, "
          f"{report['impostor_probes']} impostor probes; threshold {report['threshold']:.4f} (FPIR 1% at the start)")
    for run, r in report["runs"].items():
        print(f"{run:>22}: FNIR {r['fnir']:.4f}  FPIR {r['fpir']:.4f}  (FNIR {r['fnir_at_fpir_1pct_in_stream']:.4f} "
              f"at FPIR 1% in the stream)  added {r['added']}  from impostors {r['added_from_impostors']}  to the "
              f"wrong person {r['added_to_wrong_person']}")
    _write(args, report)
    return 0


def _cached_embeddings(cache: Path | None, backend: str, relpaths: list[str], embed) -> dict:
    """{relpath: float32 (D,)} from the .npz `cache` when it was made by `backend`, the missing ones from
    `embed(relpaths) -> {relpath: vector}` (photos without a face stay absent); the cache is rewritten."""
    import numpy as np

    table, seen = {}, set()
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["backend"]) == backend:
            table = dict(zip(z["relpaths"].tolist(), z["vectors"]))
            seen = set(z["seen"].tolist())
    todo = [r for r in relpaths if r not in seen]
    if todo:
        table.update(embed(todo))
        seen.update(todo)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            keys = sorted(table)
            np.savez(cache, backend=backend, relpaths=np.array(keys), seen=np.array(sorted(seen)),
                     vectors=np.stack([table[k] for k in keys]).astype(np.float32))
    return {r: table[r] for r in relpaths if r in table}
