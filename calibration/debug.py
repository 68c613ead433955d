"""Layer-by-layer fp32 vs int8 comparison, to find the layers worth leaving in float.

Built on onnxruntime.quantization.qdq_loss_debug: both models get every float activation added as an
output, run on a few calibration inputs, and each activation of the QDQ model is matched with the
same tensor of the fp32 model. Two numbers per tensor (SQNR in dB, higher is better):

- qdq_sqnr: the tensor before vs after its own QuantizeLinear/DequantizeLinear pair in the int8 model,
  i.e. the rounding/clipping error this one quantisation step adds (a poor range shows up here;
  where the quantiser folded a Relu into the QuantizeLinear, Relu(before) is compared);
- xmodel_sqnr: the fp32 model's tensor vs the int8 model's, i.e. the error accumulated up to here.

The fp32 model is first put through the same `quant_pre_process` as `quantize_model` so tensor
names match the QDQ graph, and `node` is the producing node's name there (what `exclude_nodes` takes).

Example:
    >>> rows = layer_errors("dlib_resnet.onnx", "dlib_resnet.int8.onnx", reader, max_inputs=4)
    >>> for r in rows[:5]: print(r)
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    compute_activation_error,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)

from .quantize import preprocess
from .reader import ListReader, drain


@dataclass(frozen=True)
class LayerError:
    """Quantisation error of one activation tensor (SQNR in dB; rel_error = |fp32 - int8| / |fp32|)."""

    tensor: str
    node: str            # producing node in the pre-processed fp32 graph ("" for a graph input)
    op_type: str
    qdq_sqnr: float      # this tensor's own Q/DQ step, inside the int8 model
    xmodel_sqnr: float   # fp32 model vs int8 model, error accumulated up to this tensor
    rel_error: float     # same comparison as xmodel_sqnr, as a relative L2 error


def _producers(model_path: Path) -> dict[str, tuple[str, str]]:
    m = onnx.load(str(model_path), load_external_data=False)
    return {o: (n.name, n.op_type) for n in m.graph.node for o in n.output}


def _rel_error(a, b) -> float:
    x = np.concatenate([np.ravel(t) for t in a]).astype(np.float64)
    y = np.concatenate([np.ravel(t) for t in b]).astype(np.float64)
    return float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-12))


def layer_errors(fp32_path: str | Path, int8_path: str | Path, reader: CalibrationDataReader,
                 max_inputs: int = 4, sort_by: str = "qdq_sqnr", preprocess_fp32: bool = True) -> list[LayerError]:
    """Per-tensor fp32 vs int8 error on the first `max_inputs` inputs of `reader`, worst first.

    Args:
        fp32_path: the fp32 model that was quantised. int8_path: its QDQ model.
        reader: any CalibrationDataReader (e.g. from calibration.reader); only max_inputs are read.
        sort_by: "qdq_sqnr" (default; the tensors whose own quantisation is worst), "xmodel_sqnr"
            or "rel_error" (where the int8 model has drifted most from fp32).
        preprocess_fp32: run quant_pre_process on the fp32 model first (needed for names to match
            whenever pre-processing fused or renamed nodes).
    """
    if sort_by not in ("qdq_sqnr", "xmodel_sqnr", "rel_error"):
        raise ValueError(f"sort_by must be qdq_sqnr, xmodel_sqnr or rel_error, not {sort_by!r}")
    feeds = []
    for f in drain(reader):
        feeds.append(f)
        if len(feeds) >= max_inputs:
            break
    if not feeds:
        raise ValueError("the reader gave no inputs")
    with tempfile.TemporaryDirectory(prefix="facegate.qdqdebug.") as tmp:
        tmp = Path(tmp)
        fp32 = Path(fp32_path)
        if preprocess_fp32:
            preprocess(fp32, tmp / "fp32_pre.onnx")
            fp32 = tmp / "fp32_pre.onnx"
        modify_model_output_intermediate_tensors(str(fp32), str(tmp / "fp32_aug.onnx"))
        modify_model_output_intermediate_tensors(str(int8_path), str(tmp / "int8_aug.onnx"))
        float_acts = collect_activations(str(tmp / "fp32_aug.onnx"), ListReader(feeds))
        qdq_acts = collect_activations(str(tmp / "int8_aug.onnx"), ListReader(feeds))
        producers = _producers(fp32)
        int8_producers = _producers(Path(int8_path))
    matched = create_activation_matching(qdq_acts, float_acts)
    matched = {k: v for k, v in matched.items() if "float" in v}      # tensors the fp32 model has
    for name, m in matched.items():
        # A Relu that the quantiser folded into the preceding QuantizeLinear (uint8 activations):
        # the int8 graph's tensor of that name is the pre-Relu value, so compare Relu(pre) instead.
        if producers.get(name, ("", ""))[1] == "Relu" and int8_producers.get(name, ("", ""))[1] != "Relu":
            m["pre_qdq"] = [np.maximum(t, 0) for t in m["pre_qdq"]]
    errors = compute_activation_error(matched)
    rows = []
    for name, err in errors.items():
        node, op = producers.get(name, ("", "input"))
        rows.append(LayerError(name, node, op, float(err["qdq_err"]), float(err["xmodel_err"]),
                               _rel_error(matched[name]["float"], matched[name]["post_qdq"])))
    if sort_by == "rel_error":
        rows.sort(key=lambda r: -r.rel_error)
    else:
        rows.sort(key=lambda r: getattr(r, sort_by))
    return rows


def format_rows(rows: list[LayerError], top: int = 15) -> str:
    """A plain-text table of the first `top` rows."""
    lines = [f"{'tensor':40s} {'node':32s} {'op':12s} {'qdq dB':>7s} {'xmodel dB':>9s} {'rel err':>8s}"]
    for r in rows[:top]:
        lines.append(f"{r.tensor[:40]:40s} {r.node[:32]:32s} {r.op_type[:12]:12s} {r.qdq_sqnr:7.1f} "
                     f"{r.xmodel_sqnr:9.1f} {r.rel_error:8.4f}")
    return "\n".join(lines)
