"""Static int8 quantisation (QDQ, per-channel int8 weights) of an exported facegate ONNX model.

    fp32.onnx --quant_pre_process--> pre.onnx --calibrate (chunked)--> tensor ranges (JSON cache)
              --quantize_static(QDQ, ranges from the cache)--> int8.onnx (+ metadata)

Calibration is done here rather than inside `quantize_static`, one chunk of inputs at a time, because
onnxruntime's histogram calibrators (Entropy, Percentile) keep every intermediate output of a
`collect_data` call in memory: the whole LFW calibration pool in one call does not fit in memory.
The computed ranges reach `quantize_static` through its supported `calibration_cache_path`
(`save_tensors_data` / `load_tensors_data`), so the quantiser itself is unchanged onnxruntime code.

The output keeps the fp32 model's `facegate.*` metadata (contract, provenance) and adds
`facegate.quantization` (JSON: method, types, per_channel, excluded nodes, calibration inputs, source).
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

from facegate.export.metadata import add_metadata

from .reader import chunk_feeds, drain

METHODS = {"MinMax": CalibrationMethod.MinMax, "Entropy": CalibrationMethod.Entropy,
           "Percentile": CalibrationMethod.Percentile}
DEFAULT_METHOD = "Percentile"      # what `facegate calibrate` / `build-bundle` use unless told (README, calibration grid)
DEFAULT_PERCENTILE = 99.99         # the Percentile method's clipping percentile
TYPES = {"U8": QuantType.QUInt8, "S8": QuantType.QInt8}
DEFAULT_CHUNK = 32                 # calibration inputs per collect_data call for histogram methods
METADATA_KEY = "facegate.quantization"

log = logging.getLogger(__name__)


class QuantizationError(RuntimeError):
    """Quantisation could not be done (bad arguments, no calibration data, onnxruntime failure)."""


def preprocess(fp32_path: str | Path, out_path: str | Path) -> dict:
    """`quant_pre_process` (shape inference + graph optimisation), falling back to no symbolic shape
    inference when that fails (it does not know every op). Returns {"skip_symbolic_shape": bool}."""
    try:
        quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=False)
        return {"skip_symbolic_shape": False}
    except Exception as e:  # symbolic shape inference raises assorted errors on unknown patterns
        log.info("symbolic shape inference failed (%s); retrying without it", str(e).splitlines()[0][:120])
        quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)
        return {"skip_symbolic_shape": True}


def calibrate(model_path: str | Path, reader: CalibrationDataReader, method: str = DEFAULT_METHOD,
              percentile: float = DEFAULT_PERCENTILE, chunk_size: int = DEFAULT_CHUNK,
              work_dir: str | Path | None = None,
              symmetric: bool | None = None):
    """Tensor ranges (onnxruntime TensorsData) of `model_path` on the reader's inputs.

    The reader is drained in chunks of at most `chunk_size` same-shape inputs; each chunk goes through
    one `collect_data` call (the calibrator merges ranges / histograms across calls).
    Returns (TensorsData, number of inputs used).
    """
    if method not in METHODS:
        raise QuantizationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    ops = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))     # what quantize_static calibrates
    extra = {}
    if method == "Percentile":
        extra["percentile"] = percentile
    if symmetric is not None:
        extra["symmetric"] = symmetric
    with tempfile.TemporaryDirectory(prefix="facegate.calib.", dir=work_dir) as tmp:
        calibrator = create_calibrator(Path(model_path), ops, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=METHODS[method], extra_options=extra)
        n = 0
        for chunk in chunk_feeds(drain(reader), chunk_size):
            calibrator.collect_data(chunk)
            n += len(chunk)
        if n == 0:
            raise QuantizationError("the calibration reader gave no inputs (no images, or no faces found)")
        ranges = calibrator.compute_data()
        del calibrator
    return ranges, n


def quantize_model(fp32_path: str | Path, out_path: str | Path,
                   reader_factory: Callable[[], CalibrationDataReader], method: str = DEFAULT_METHOD,
                   activation_type: str = "U8", per_channel: bool = True, exclude_nodes: Sequence[str] = (),
                   percentile: float = DEFAULT_PERCENTILE, chunk_size: int = DEFAULT_CHUNK,
                   extra_options: dict | None = None, ranges_cache: str | Path | None = None) -> Path:
    """Quantise an exported fp32 ONNX model to static int8 QDQ and write it to `out_path`.

    Args:
        fp32_path: ONNX model written by `facegate.export.onnx_export.export_model`.
        out_path: where the int8 model goes.
        reader_factory: zero-argument callable returning a fresh CalibrationDataReader
            (e.g. `lambda: calibration.reader.EmbedderCalibrationReader(...)`).
        method: "MinMax", "Entropy" or "Percentile" (default DEFAULT_METHOD; histogram methods are
            collected in chunks).
        activation_type: "U8" (uint8 activations, the fast path on x86) or "S8".
        per_channel: per-output-channel int8 weights (True) or one scale per tensor.
        exclude_nodes: node names left in float (names as in the pre-processed graph; see debug.py).
        percentile: for method="Percentile".
        chunk_size: calibration inputs per collect_data call.
        extra_options: passed on to `quantize_static` (e.g. {"ActivationSymmetric": True}).
        ranges_cache: a JSON file for the tensor ranges: read when it exists (no calibration run),
            written otherwise. The ranges depend on the model, reader and method, not on the
            activation type, so U8 and S8 variants of one method can share it; the caller keeps it apart
            from other models and methods.
    Returns:
        out_path as a Path.
    """
    if activation_type not in TYPES:
        raise QuantizationError(f"unknown activation type {activation_type!r}; expected U8 or S8")
    if method not in METHODS:
        raise QuantizationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    reader = reader_factory()
    with tempfile.TemporaryDirectory(prefix="facegate.quant.") as tmp:
        pre = Path(tmp) / "pre.onnx"
        pre_info = preprocess(fp32_path, pre)
        cache = Path(ranges_cache) if ranges_cache is not None else Path(tmp) / "ranges.json"
        n = _ranges_file(pre, reader, cache, ranges_cache is not None, method, percentile, chunk_size, tmp)
        quantize_static(str(pre), str(out_path), calibration_data_reader=None, calibration_cache_path=str(cache),
                        quant_format=QuantFormat.QDQ, activation_type=TYPES[activation_type],
                        weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=False,
                        nodes_to_exclude=list(exclude_nodes), calibrate_method=METHODS[method],
                        extra_options=dict(extra_options or {}))
    info = {"method": method, "format": "QDQ", "activation_type": "uint8" if activation_type == "U8" else "int8",
            "weight_type": "int8", "per_channel": per_channel, "reduce_range": False,
            "excluded_nodes": list(exclude_nodes), "calibration_inputs": n,
            "calibration_source": getattr(reader, "source", None) or type(reader).__name__,
            "onnxruntime": onnxruntime.__version__, **pre_info}
    if method == "Percentile":
        info["percentile"] = percentile
    if extra_options:
        info["extra_options"] = {k: v for k, v in extra_options.items() if _jsonable(v)}
    copy_metadata(fp32_path, out_path, {METADATA_KEY: json.dumps(info, sort_keys=True)})
    return out_path


def _ranges_file(pre: Path, reader: CalibrationDataReader, cache: Path, reuse: bool, method: str,
                 percentile: float, chunk_size: int, work_dir: str | Path) -> int:
    """Make sure `cache` holds the tensor ranges of the pre-processed model `pre` and return how many
    calibration inputs they came from: with `reuse`, an existing cache (and its `.inputs` count file)
    is kept; otherwise the reader is drained (calibrate) and both files are written."""
    count = cache.with_name(cache.name + ".inputs")
    if reuse and cache.is_file() and count.is_file():
        return int(count.read_text())
    ranges, n = calibrate(pre, reader, method, percentile, chunk_size, work_dir=work_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_tensors_data(ranges, cache)
    count.write_text(str(n))
    return n


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def copy_metadata(src: str | Path, dst: str | Path, extra: dict[str, str] | None = None) -> None:
    """Copy every `facegate.*` metadata_prop of `src` onto `dst` (replacing same keys), plus `extra`."""
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props
            if p.key.startswith("facegate.")}
    meta.update(extra or {})
    add_metadata(Path(dst), meta)


def quantization_info(path: str | Path) -> dict | None:
    """The `facegate.quantization` record of an ONNX file, or None for an fp32 model."""
    for p in onnx.load(str(path), load_external_data=False).metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None
