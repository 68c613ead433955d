"""SFace int8 without the float PRelu: rewrite each Conv -> PRelu(slope a) as two convs and an Add.

Why: onnxruntime has no int8 PRelu. In a QDQ model every PRelu runs as int8 Conv -> DequantizeLinear
-> float PRelu -> QuantizeLinear, and those float passes cost more than the int8 convs save: plain
static int8 SFace is no faster than fp32 (measured: 0.96-1.16x).

The rewrite (exact for a < 1): for y = Conv(x; W, b) and per-output-channel slope a,

    PRelu(y) = a*y + (1 - a)*Relu(y) = Conv(x; a*W, a*b) + Relu(Conv(x; (1-a)*W, (1-a)*b))

(Relu(k*y) = k*Relu(y) for k > 0). Both convs and the Add have int8 kernels in onnxruntime
(QLinearConv with the Relu folded into its output quantisation, QLinearAdd), so the whole network
stays int8. It doubles the conv work but still ran 2.2-2.5x faster than fp32 on this machine.
Channels with a >= 1 cannot be written this way (1 - a <= 0); their slope is clamped to 1 - eps
(SFace: 3 of 14,336 channels, in the first two layers; fp32 cosine to the original >= 0.9992).

Example:
    >>> info = prelu_to_conv_pair("sface.onnx", "sface.pair.onnx")
    >>> quantize_model("sface.pair.onnx", "sface.pair.int8.onnx", factory)      # MinMax, U8
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader

from .benchmark import embedding_drift, file_mb, latency_ms, outputs
from .quantize import copy_metadata, quantize_model

REWRITE_KEY = "facegate.graph_rewrite"


def prelu_to_conv_pair(fp32_path: str | Path, out_path: str | Path, eps: float = 1e-3) -> dict:
    """Rewrite every Conv -> PRelu pair of an fp32 model as Conv + Relu(Conv) -> Add; see module doc.

    Every PRelu must directly follow a Conv (with bias) whose output it alone consumes.
    Keeps the `facegate.*` metadata and adds `facegate.graph_rewrite` (JSON). Returns
    {"prelu_rewritten", "channels", "channels_clamped", "max_slope"}.
    """
    m = onnx.load(str(fp32_path))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in m.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    replace, drop, new_inits = {}, set(), []
    channels = clamped = 0
    max_slope = -np.inf
    for n in m.graph.node:
        if n.op_type != "PRelu":
            continue
        c = producer.get(n.input[0])
        if c is None or c.op_type != "Conv" or len(c.input) < 3 or uses[n.input[0]] != 1 or n.input[1] not in init:
            raise ValueError(f"PRelu {n.name} does not directly follow a biased Conv used only by it")
        a = init[n.input[1]].reshape(-1).astype(np.float64)
        w, b = init[c.input[1]].astype(np.float64), init[c.input[2]].astype(np.float64)
        if a.size == 1:
            a = np.full(w.shape[0], a[0])
        if a.size != w.shape[0]:
            raise ValueError(f"PRelu {n.name}: {a.size} slopes for {w.shape[0]} channels")
        channels += a.size
        clamped += int((a > 1 - eps).sum())
        max_slope = max(max_slope, float(a.max()))
        a = np.minimum(a, 1 - eps)
        y = c.output[0]
        nodes = []
        for tag, k in (("lin", a), ("relpre", 1 - a)):
            wn, bn = f"{c.name}_{tag}.weight", f"{c.name}_{tag}.bias"
            new_inits += [numpy_helper.from_array((w * k[:, None, None, None]).astype(np.float32), wn),
                          numpy_helper.from_array((b * k).astype(np.float32), bn)]
            conv = helper.make_node("Conv", [c.input[0], wn, bn], [f"{y}_{tag}"], name=f"{c.name}_{tag}")
            conv.attribute.extend(c.attribute)
            nodes.append(conv)
        nodes.append(helper.make_node("Relu", [f"{y}_relpre"], [f"{y}_rel"], name=f"{c.name}_relu"))
        nodes.append(helper.make_node("Add", [f"{y}_lin", f"{y}_rel"], [n.output[0]], name=f"{n.name}_add"))
        replace[c.name] = nodes
        drop.add(n.name)
    if not replace:
        raise ValueError(f"{fp32_path} has no PRelu to rewrite")
    nodes = [x for n in m.graph.node if n.name not in drop for x in replace.get(n.name, [n])]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in m.graph.initializer if i.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept + new_inits)
    onnx.checker.check_model(m)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out_path))
    info = {"prelu_rewritten": len(replace), "channels": channels, "channels_clamped": clamped,
            "max_slope": max_slope}
    copy_metadata(fp32_path, out_path, {REWRITE_KEY: json.dumps({"rewrite": "prelu_to_conv_pair", "eps": eps,
                                                                    **info})})
    return info


def prelu_int8_experiment(fp32_path: str | Path, out_dir: str | Path,
                          reader_factory: Callable[[], CalibrationDataReader], eval_inputs: Sequence[np.ndarray],
                          threads: Sequence[int] = (1, 2), method: str = "MinMax", rounds: int = 20) -> dict:
    """Plain static int8 vs the conv-pair rewrite (fp32 and int8) of a PRelu network, against fp32.

    Writes <name>.int8.onnx, <name>.pair.onnx and <name>.pair.int8.onnx into out_dir (U8 activations,
    per-channel int8 weights). eval_inputs: batch-1 float32 model inputs (e.g. aligned chips through
    FaceEmbedder.prepare) not used for calibration; the first one is also the latency input.
    Returns {"rewrite": info, "rows": {variant: {mb, cos_min, cos_mean, max_abs, max_abs_rel,
    ms_<t>t (median), p10_<t>t, speedup_<t>t}}}.
    """
    fp32_path, out_dir = Path(fp32_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = fp32_path.stem
    paths = {"fp32": fp32_path, "int8": out_dir / f"{stem}.int8.onnx", "pair_fp32": out_dir / f"{stem}.pair.onnx",
             "pair_int8": out_dir / f"{stem}.pair.int8.onnx"}
    quantize_model(fp32_path, paths["int8"], reader_factory, method=method)
    info = prelu_to_conv_pair(fp32_path, paths["pair_fp32"])
    quantize_model(paths["pair_fp32"], paths["pair_int8"], reader_factory, method=method)
    ref = np.concatenate([o[0] for o in outputs(fp32_path, eval_inputs)])
    rows = {}
    for k, p in paths.items():
        rows[k] = {"mb": file_mb(p), **embedding_drift(ref, np.concatenate([o[0] for o in outputs(p, eval_inputs)]))}
    for t in threads:
        lat = latency_ms(paths, eval_inputs[0], t, rounds=rounds)
        for k in paths:
            rows[k][f"ms_{t}t"] = lat[k]["median"]
            rows[k][f"p10_{t}t"] = lat[k]["p10"]
            rows[k][f"speedup_{t}t"] = lat["fp32"]["median"] / lat[k]["median"]
    return {"rewrite": info, "rows": rows}
