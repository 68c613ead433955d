"""SFace int8 without the float PRelu: rewrite each Conv -> PRelu(slope a) as two convs and an Add.

Why: onnxruntime has no int8 PRelu. In a QDQ model every PRelu runs as int8 Conv -> DequantizeLinear
-> float PRelu -> QuantizeLinear, and those float passes cost more than the int8 convs save: plain
static int8 SFace is no faster than fp32.

The rewrite (exact for a < 1): for y = Conv(x; W, b) and per-output-channel slope a,

    PRelu(y) = a*y + (1 - a)*Relu(y) = Conv(x; a*W, a*b) + Relu(Conv(x; (1-a)*W, (1-a)*b))

(Relu(k*y) = k*Relu(y) for k > 0). Both convs and the Add have int8 kernels in onnxruntime
(QLinearConv with the Relu folded into its output quantisation, QLinearAdd), so the whole network
stays int8. It doubles the conv work but still runs well ahead of fp32 (the calibration report
measures it). Channels with a >= 1 cannot be written this way (1 - a <= 0); their slope is clamped to
1 - eps (SFace: a few channels of its first layers; the returned info counts them).

Example:
    >>> info = prelu_to_conv_pair("sface.onnx", "sface.pair.onnx")
    >>> quantize_model("sface.pair.onnx", "sface.pair.int8.onnx", factory)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .quantize import copy_metadata

REWRITE_KEY = "facegate.graph_rewrite"


def prelu_to_conv_pair(fp32_path: str | Path, out_path: str | Path, eps: float = 1e-3) -> dict:
    """Rewrite every Conv -> PRelu pair of an fp32 model as Conv + Relu(Conv) -> Add; see module doc.

    Every PRelu must directly follow a Conv (with bias) whose output it alone consumes.
    Keeps the `facegate.*` metadata and adds `facegate.graph_rewrite` (JSON). Returns
    {"prelu_rewritten", "channels", "channels_clamped", "max_slope"} (slopes before clamping).
    """
    m = onnx.load(str(fp32_path))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    replace, drop, new_inits, slopes = {}, set(), [], []
    for prelu, conv in _conv_prelu_pairs(m, init):
        a = _slopes(prelu, conv, init)
        slopes.append(a)
        replace[conv.name], inits = _conv_pair(conv, prelu, np.minimum(a, 1 - eps), init)
        new_inits += inits
        drop.add(prelu.name)
    if not replace:
        raise ValueError(f"{fp32_path} has no PRelu to rewrite")
    _replace_nodes(m, replace, drop, new_inits)
    onnx.checker.check_model(m)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out_path))
    info = {"prelu_rewritten": len(replace), "channels": sum(a.size for a in slopes),
            "channels_clamped": sum(int((a > 1 - eps).sum()) for a in slopes),
            "max_slope": max(float(a.max()) for a in slopes)}
    copy_metadata(fp32_path, out_path, {REWRITE_KEY: json.dumps({"rewrite": "prelu_to_conv_pair", "eps": eps,
                                                                    **info})})
    return info


def _conv_prelu_pairs(m: onnx.ModelProto, init: dict[str, np.ndarray]) -> Iterator[tuple]:
    """(PRelu node, the Conv node feeding it) for every PRelu of the graph, in graph order. Raises
    ValueError for a PRelu that does not directly follow a biased Conv used by it alone, or whose
    slope is not an initializer."""
    producer = {o: n for n in m.graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in m.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for n in m.graph.node:
        if n.op_type != "PRelu":
            continue
        c = producer.get(n.input[0])
        if c is None or c.op_type != "Conv" or len(c.input) < 3 or uses[n.input[0]] != 1 or n.input[1] not in init:
            raise ValueError(f"PRelu {n.name} does not directly follow a biased Conv used only by it")
        yield n, c


def _slopes(prelu, conv, init: dict[str, np.ndarray]) -> np.ndarray:
    """float64 (C,) slope per output channel of `conv` (a single shared slope repeated). Raises
    ValueError when the counts disagree."""
    a = init[prelu.input[1]].reshape(-1).astype(np.float64)
    channels = init[conv.input[1]].shape[0]
    if a.size == 1:
        a = np.full(channels, a[0])
    if a.size != channels:
        raise ValueError(f"PRelu {prelu.name}: {a.size} slopes for {channels} channels")
    return a


def _conv_pair(conv, prelu, a: np.ndarray, init: dict[str, np.ndarray]) -> tuple[list, list]:
    """(nodes, new initializers) computing PRelu(conv) with slopes `a` (float64 (C,), all < 1) as
    Conv(a*W, a*b) + Relu(Conv((1-a)*W, (1-a)*b)); the Add writes the PRelu's output tensor."""
    w, b = init[conv.input[1]].astype(np.float64), init[conv.input[2]].astype(np.float64)
    y = conv.output[0]
    nodes, inits = [], []
    for tag, k in (("lin", a), ("relpre", 1 - a)):
        wn, bn = f"{conv.name}_{tag}.weight", f"{conv.name}_{tag}.bias"
        inits += [numpy_helper.from_array((w * k[:, None, None, None]).astype(np.float32), wn),
                  numpy_helper.from_array((b * k).astype(np.float32), bn)]
        part = helper.make_node("Conv", [conv.input[0], wn, bn], [f"{y}_{tag}"], name=f"{conv.name}_{tag}")
        part.attribute.extend(conv.attribute)
        nodes.append(part)
    nodes.append(helper.make_node("Relu", [f"{y}_relpre"], [f"{y}_rel"], name=f"{conv.name}_relu"))
    nodes.append(helper.make_node("Add", [f"{y}_lin", f"{y}_rel"], [prelu.output[0]], name=f"{prelu.name}_add"))
    return nodes, inits


def _replace_nodes(m: onnx.ModelProto, replace: dict[str, list], drop: set[str], new_inits: list) -> None:
    """In place: each node named in `replace` becomes its list of nodes, nodes named in `drop` go,
    initializers no node reads any more go and `new_inits` are appended."""
    nodes = [x for n in m.graph.node if n.name not in drop for x in replace.get(n.name, [n])]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in m.graph.initializer if i.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept + new_inits)
