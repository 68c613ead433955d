"""`facegate calibrate` / `facegate build-bundle`: export -> int8 calibration -> fp32 vs int8 report
-> per-model precision chosen by the numbers -> LFW threshold -> bundle."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facegate.calibration.prelu import prelu_to_conv_pair
from facegate.calibration.quantize import DEFAULT_METHOD, quantize_model
from facegate.calibration.reader import DetectorCalibrationReader, EmbedderCalibrationReader, calibration_images
from facegate.calibration.report import DETECTOR, compare, write_report

from .bundle_write import ModelFile, set_fusion, write_bundle
from .fusion_fit import FUSION_PARTS, fit_fusion
from .onnx_export import export_model, sample_images
from .operating_point_fit import record_score_models

# onnxruntime has no int8 PRelu: these models get PRelu rewritten as Conv + Relu(Conv) -> Add
# (exact for slopes < 1) before quantisation, so every block stays int8 (calibration/prelu.py).
PRELU_REWRITE = {"sface"}
MIN_SPEEDUP = 1.5          # int8 must be at least this much faster (2 threads) to ship
MAX_LFW_LOSS = 0.002       # ... and lose at most 0.2 LFW points
MAX_AP_LOSS = 0.01         # ... or 1 AP point for the detector
# bundle.json "quality" "meaning": what the --quality-threshold decides (docs/quality.md says how it was chosen)
QUALITY_MEANING = ("minimum predicted quality of a usable face: below it enrollment refuses the photo, the door "
                   "does not decide on the frame and the photo organiser leaves the face unsorted")


@dataclass(frozen=True)
class CalibrationSettings:
    method: str = DEFAULT_METHOD           # MinMax, Entropy or Percentile (calibration.quantize.METHODS)
    activation_type: str = "U8"            # U8 (uint8 activations) or S8
    images: Path | None = None             # calibration folder; None = LFW people outside pairs.txt
    limit: int | None = None               # calibration images (None = all)
    lfw_limit: int | None = None           # LFW pairs per fold and class for the report (None = all)
    wider_limit: int | None = None         # WIDER images for the report (None = all)
    exclude: tuple[str, ...] = ()          # node names left in float (see `facegate quant-debug`)


def export_all(work: Path, names: list[str]) -> dict[str, Path]:
    imgs = sample_images(None)
    return {n: Path(export_model(n, work / "fp32" / f"{n}.onnx", imgs).path) for n in names}


def calibrate_all(fp32: dict[str, Path], work: Path, s: CalibrationSettings) -> dict[str, Path]:
    """int8 QDQ version of every model, calibrated through the runtime's preprocessing."""
    images = calibration_images(s.images, limit=s.limit)
    out = {}
    for name, path in fp32.items():
        if name == DETECTOR:
            factory = lambda p=path: DetectorCalibrationReader(p, images)  # noqa: E731
        else:
            factory = lambda p=path: EmbedderCalibrationReader(p, images, fp32[DETECTOR])  # noqa: E731
        path = quantization_source(name, path, work)
        out[name] = quantize_model(path, work / "int8" / f"{name}.onnx", factory, method=s.method,
                                   activation_type=s.activation_type, exclude_nodes=s.exclude)
    return out


def choose_precision(name: str, e: dict) -> tuple[str, str]:
    """("int8" or "fp32", why) from one model's fp32-vs-int8 numbers."""
    speed = e["speedup_2t"]
    if name == DETECTOR:
        loss = e["fp32"]["wider_ap"] - e["int8"]["wider_ap"]
        ok, what = loss <= MAX_AP_LOSS, f"WIDER AP change {-loss * 100:+.2f} points"
    else:
        loss = e["fp32"]["lfw_accuracy"] - e["int8"]["lfw_accuracy"]
        ok, what = loss <= MAX_LFW_LOSS, f"LFW change {-loss * 100:+.2f} points"
    if ok and speed >= MIN_SPEEDUP:
        return "int8", f"int8: {speed:.2f}x faster at 2 threads, {what}"
    if not ok:
        return "fp32", f"fp32: int8 loses accuracy ({what})"
    return "fp32", f"fp32: int8 is only {speed:.2f}x faster at 2 threads (< {MIN_SPEEDUP}x), {what}"


def build_bundle(out: Path, work: Path, data_dir: Path, s: CalibrationSettings,
                 embedders: tuple[str, ...] = FUSION_PARTS, default: str | None = None,
                 target_far: float = 1e-3, fusion: bool = True) -> dict:
    """Run the whole chain and write the bundle at `out`; returns the report (also saved in the bundle).

    embedders: what the bundle carries. When it carries both FUSION_PARTS and `fusion` is set, their
    score fusion is fitted (export/fusion_fit.py) and the default embedder is chosen by the numbers
    (lowest held-out open-set FNIR at FPIR 1% within the latency target); otherwise the default is
    `default` (None = the first embedder). ("dlib_resnet",) or ("sface",) build single-embedder bundles."""
    fit = fusion and all(n in embedders for n in FUSION_PARTS)
    default = default or embedders[0]
    names = [DETECTOR, *embedders]
    fp32 = export_all(Path(work), names)
    int8 = calibrate_all(fp32, Path(work), s)
    report = compare(fp32, int8, data_dir, s.lfw_limit, s.wider_limit)
    report["calibration"] = {"method": s.method, "activation_type": s.activation_type,
                             "images": str(s.images or "LFW people outside pairs.txt"), "limit": s.limit,
                             "excluded_nodes": list(s.exclude)}
    decisions, files = {}, {}
    for n in names:
        precision, why = choose_precision(n, report["models"][n])
        decisions[n] = why
        files[n] = (precision, (int8 if precision == "int8" else fp32)[n])
    report["decisions"] = decisions
    det = ModelFile(DETECTOR, files[DETECTOR][1], files[DETECTOR][0], report=report["models"][DETECTOR])
    embs = []
    for n in embedders:
        precision, path = files[n]
        r = report["models"][n][precision]
        embs.append(ModelFile(n, path, precision, r["threshold_at_far_1e-3"], target_far,
                              r["far_at_threshold"], report=report["models"][n]))
    write_bundle(out, det, embs, default, notes={"decisions": decisions, "calibration": report["calibration"]})
    if fit:
        entry = fit_fusion(out, data_dir, fp32=fp32, lfw_limit=s.lfw_limit)
        report["fusion"] = entry["report"]
        default = entry["report"]["default_embedder"]
        decisions["default_embedder"] = entry["report"]["decision"]
        set_fusion(out, entry, default)
    models = record_score_models(out, data_dir)
    report["score_models"] = {n: {"impostor_pairs": m.impostor_pairs, "tail": m.tail.__dict__,
                                  "genuine_pairs": len(m.genuine)} for n, m in models.items()}
    write_report(report, out)
    return report


def quantization_source(name: str, fp32: Path, work: Path) -> Path:
    """The graph that gets quantised: the fp32 export, or its PRelu-rewritten form (PRELU_REWRITE)."""
    if name not in PRELU_REWRITE:
        return fp32
    path = Path(work) / "fp32" / f"{name}.prelu-rewritten.onnx"
    prelu_to_conv_pair(fp32, path)
    return path
