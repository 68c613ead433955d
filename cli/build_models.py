"""Handlers for the build commands (needs facegate[train]): export, calibrate, build-bundle,
fit-operating-point, quant-debug."""
from __future__ import annotations

import json
from pathlib import Path

from facegate.edge_runtime.paths import data_dir


def calibration_settings(args):
    """The --method/--activation-type/--images/... arguments as a CalibrationSettings (--method not
    given, i.e. None: calibration.quantize.DEFAULT_METHOD)."""
    from facegate.calibration.quantize import DEFAULT_METHOD
    from facegate.export.bundle_build import CalibrationSettings

    method = DEFAULT_METHOD if args.method is None else args.method
    return CalibrationSettings(method, args.activation_type, args.images, args.limit, args.lfw_limit,
                               args.wider_limit, tuple(args.exclude))


def cmd_export(args) -> int:
    from facegate.export.onnx_export import FP32_TOLERANCE, export_model, sample_images
    from facegate.models.registry import list_models

    imgs = sample_images(args.images)
    for name in args.names or list_models():
        r = export_model(name, args.out / f"{name}.onnx", imgs, weights=args.weights)
        print(f"{name}: {r.path}  onnxruntime vs PyTorch max diff {r.max_abs_diff:.2e} "
              f"on {r.inputs_compared} real inputs (limit {FP32_TOLERANCE:g})")
    return 0


def cmd_calibrate(args) -> int:
    from facegate.calibration.report import compare, write_report
    from facegate.export.bundle_build import DETECTOR, calibrate_all, choose_precision, export_all

    s = calibration_settings(args)
    names = [DETECTOR, *(args.embedder or ["sface", "dlib_resnet"])]
    fp32 = export_all(args.work, names)
    if args.grid:
        return _grid(args, fp32, names[1:], s)
    int8 = calibrate_all(fp32, args.work, s)
    report = compare(fp32, int8, data_dir(), s.lfw_limit, s.wider_limit)
    report["decisions"] = {n: choose_precision(n, report["models"][n])[1] for n in names}
    md, js = write_report(report, args.out)
    print(md.read_text())
    print(f"wrote {md} and {js}; int8 models in {args.work / 'int8'}")
    return 0


def _grid(args, fp32: dict[str, Path], embedders: list[str], s) -> int:
    from facegate.calibration.grid import calibration_grid, write_grid
    from facegate.export.bundle_build import quantization_source

    source = {n: quantization_source(n, fp32[n], args.work) for n in embedders}
    report = calibration_grid(fp32, source, args.work, data_dir(), embedders, s.images, s.limit, s.lfw_limit)
    md, js = write_grid(report, args.out)
    print(md.read_text())
    print(f"wrote {md} and {js}")
    return 0


def cmd_fit_operating_point(args) -> int:
    """Measure the score models of an existing bundle (no re-export, no re-calibration)."""
    from facegate.edge_runtime.bundle import default_bundle_dir
    from facegate.export.operating_point_fit import record_score_models

    bundle = Path(args.bundle) if args.bundle else default_bundle_dir()
    models = record_score_models(bundle, data_dir())
    for n, m in models.items():
        print(f"{n}: {m.impostor_pairs} impostor and {len(m.genuine)} genuine comparisons of calibration people; "
              f"tail above {m.tail.u:.4f} (p {m.tail.p_u:.2g}, xi {m.tail.xi:.3f}, sigma {m.tail.sigma:.4f})")
    print(f"score models written to {bundle / 'bundle.json'}")
    return 0


def cmd_build_bundle(args) -> int:
    from facegate.export.bundle_build import build_bundle
    from facegate.export.fusion_fit import FUSION_PARTS

    if (args.quality is None) != (args.quality_threshold is None):
        raise SystemExit("build-bundle: --quality and --quality-threshold go together")
    if args.models_from is not None:
        if args.quality is None:
            raise SystemExit("build-bundle: --models-from only adds a quality model; give --quality too")
        return _add_quality(args, args.models_from)
    s = calibration_settings(args)
    report = build_bundle(args.out, args.work, data_dir(), s, embedders=tuple(args.embedder or FUSION_PARTS),
                          fusion=not args.no_fusion)
    print(json.dumps(report["decisions"], indent=1))
    print(f"bundle written to {args.out}")
    return _add_quality(args, args.out) if args.quality is not None else 0


def _add_quality(args, src: Path) -> int:
    """Write args.out = the bundle at `src` plus the quality model --quality (exported first when a checkpoint)."""
    from facegate.export.bundle_build import QUALITY_MEANING
    from facegate.export.bundle_write import add_quality, quality_onnx

    onnx_path = quality_onnx(args.quality, args.work)
    add_quality(src, args.out, onnx_path, args.quality_threshold, QUALITY_MEANING)
    from facegate.edge_runtime.bundle import read_manifest

    print(f"quality model {onnx_path} (threshold {args.quality_threshold:g}) added; bundle {read_manifest(args.out).id} "
          f"written to {args.out}")
    return 0


def cmd_quant_debug(args) -> int:
    """`facegate quant-debug FP32 INT8`: the worst layers first, to pick names for --exclude."""
    from facegate.calibration.debug import format_rows, layer_errors
    from facegate.calibration.reader import reader_for_model
    from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest

    detector = args.detector
    if detector is None:
        root = default_bundle_dir()
        detector = root / read_manifest(root).detector_file
    reader = reader_for_model(args.fp32, folder=args.images, detector_path=detector, limit=args.inputs * 4)
    rows = layer_errors(args.fp32, args.int8, reader, max_inputs=args.inputs, sort_by=args.sort_by)
    print(format_rows(rows, args.top))
    print(f"{len(rows)} tensors compared on {args.inputs} inputs; leave a layer in float with "
          "`facegate calibrate|build-bundle --exclude NODE` (the node column)")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0
