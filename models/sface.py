"""SFace (OpenCV Zoo face_recognition_sface_2021dec) as a readable fp32 PyTorch module.

The published file is int8 block-quantised (weights only; activations are float). This module
dequantises it once, offline, into ordinary fp32 layers. The graph is a MobileNet-v1-style trunk
(no residual connections): one 3x3 conv unit, 13 depthwise-separable stages, then
BN -> dropout -> flatten -> linear(50176 -> 128) -> BN1d. Every conv has no bias and is followed
by BatchNorm + per-channel PReLU.

Input contract: RGB chips, 112x112, normalised as (x - 127.5) / 128 outside the module
(`facegate.edge_runtime.preprocess.to_model_input(chips, MEAN, STD)`); the Sub/Mul nodes the
ONNX graph starts with are checked against MEAN/STD and left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegate.edge_runtime.contract import SFACE as CONTRACT

# The input contract lives in facegate.edge_runtime.contract; these names are views of it.
INPUT_SIZE = CONTRACT.input_size
MEAN = CONTRACT.mean[0]
STD = CONTRACT.std[0]
EMBEDDING_SIZE = CONTRACT.embedding_size
COLOR_ORDER = CONTRACT.colour_order

# (in_channels, out_channels, depthwise stride) of the graph's stages conv_2 .. conv_14.
_STAGES = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
           (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1),
           (512, 1024, 2), (1024, 1024, 1)]


def dequantize_blocked(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                       axis: int, block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21 blocked form): w = (q - zero_point) * scale.

    Args:
        q: int8/uint8 array, any shape.
        scale: float array, q's shape except ceil(q.shape[axis] / block_size) along `axis`;
            a 0-d scale means per-tensor.
        zero_point: integer array shaped like `scale`, or None (zero).
        axis: the blocked axis of q.
        block_size: consecutive elements along `axis` that share one scale (the last block may be short).

    Returns:
        float32 array shaped like q.
    """
    q = np.asarray(q)
    scale = np.asarray(scale, np.float32)
    zp = np.zeros_like(scale, np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32)
    if q.dtype not in (np.int8, np.uint8):
        raise ValueError(f"expected int8/uint8 quantised values, got {q.dtype}")
    if zp.shape != scale.shape:
        raise ValueError(f"zero_point shape {zp.shape} != scale shape {scale.shape}")
    if scale.ndim:
        axis = axis % q.ndim
        n = q.shape[axis]
        want = list(q.shape)
        want[axis] = -(-n // block_size) if block_size > 0 else -1
        if block_size < 1 or list(scale.shape) != want:
            raise ValueError(f"scale shape {scale.shape} does not fit q {q.shape} with "
                             f"block_size={block_size} along axis {axis}")
        scale = np.take(np.repeat(scale, block_size, axis=axis), np.arange(n), axis=axis)
        zp = np.take(np.repeat(zp, block_size, axis=axis), np.arange(n), axis=axis)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


@dataclass
class NodeWeights:
    """The fp32 parameter inputs of one compute node, in the node's input order (the data input excluded)."""

    op_type: str
    tensors: list[np.ndarray]
    attrs: dict = field(default_factory=dict)


def read_int8bq_onnx(path: str | Path) -> dict[str, NodeWeights]:
    """Read an int8 block-quantised ONNX file into fp32 weights keyed by compute-node name.

    DequantizeLinear (and the Reshape that restores a conv kernel's 4-d shape) are evaluated here,
    so every Conv/BatchNormalization/PRelu/Gemm/Sub/Mul node gets plain float32 arrays.

    Raises:
        ValueError: the file is missing, truncated or not the expected kind of graph.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
        graph = model.graph
        inits = {t.name: t for t in graph.initializer}
    except Exception as e:  # protobuf DecodeError, OSError, ...
        raise ValueError(f"cannot read ONNX file {path}: {e}") from e
    producers = {out: n for n in graph.node for out in n.output}
    cache: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        if name in cache:
            return cache[name]
        if name in inits:
            arr = numpy_helper.to_array(inits[name])
        elif name in producers and producers[name].op_type == "DequantizeLinear":
            node = producers[name]
            a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            args = [value(x) for x in node.input]
            try:
                arr = dequantize_blocked(args[0], args[1], args[2] if len(args) > 2 else None,
                                         a.get("axis", 1), a.get("block_size", 0))
            except ValueError as e:
                raise ValueError(f"{path}: node {node.name}: {e}") from e
        elif name in producers and producers[name].op_type == "Reshape":
            node = producers[name]
            arr = value(node.input[0]).reshape(value(node.input[1]))
        else:
            raise ValueError(f"{path}: tensor {name!r} has no stored value (truncated or different graph?)")
        cache[name] = arr
        return arr

    out: dict[str, NodeWeights] = {}
    try:
        for node in graph.node:
            if node.op_type in ("Conv", "BatchNormalization", "PRelu", "Gemm", "Sub", "Mul"):
                attrs = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
                tensors = [value(x).astype(np.float32) for x in node.input[1:] if x]
                out[node.name] = NodeWeights(node.op_type, tensors, attrs)
    except ValueError:
        raise
    except Exception as e:  # short raw_data, bad reshape, ...
        raise ValueError(f"{path}: corrupt tensor data: {e}") from e
    return out


class ConvUnit(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d(eps=1e-3) -> PReLU(per channel). (N,cin,H,W) -> (N,cout,H/stride,W/stride)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.prelu = nn.PReLU(cout)


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise ConvUnit (carries the stride) then 1x1 pointwise ConvUnit; no residual."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = ConvUnit(cin, cin, 3, stride, groups=cin)
        self.pw = ConvUnit(cin, cout, 1)


class SFace(nn.Module):
    """SFace embedding network: float32 (N,3,112,112) normalised RGB -> float32 (N,128) raw features.

    The input must already be (RGB - 127.5) / 128; the output is not L2-normalised.
    """

    def __init__(self):
        super().__init__()
        self.stem = ConvUnit(3, 32, 3)                                     # graph conv_1, 112x112
        self.stages = nn.Sequential(*[DepthwiseSeparable(i, o, s) for i, o, s in _STAGES])  # conv_2..14
        self.bn = nn.BatchNorm2d(1024, eps=2e-5)                           # graph bn1, on 1024x7x7
        self.dropout = nn.Dropout(0.4)                                     # graph dropout5 (identity in eval)
        self.fc = nn.Linear(1024 * 7 * 7, EMBEDDING_SIZE)                  # graph pre_fc1 (Gemm)
        self.features = nn.BatchNorm1d(EMBEDDING_SIZE, eps=2e-5)           # graph fc1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = self.dropout(self.bn(x))
        return self.features(self.fc(torch.flatten(x, 1)))

    def _graph_units(self) -> dict[str, ConvUnit]:
        """Graph name prefix -> ConvUnit, e.g. 'conv_1', 'conv_2_dw', 'conv_2'."""
        units = {"conv_1": self.stem}
        for i, stage in enumerate(self.stages, start=2):
            units[f"conv_{i}_dw"], units[f"conv_{i}"] = stage.dw, stage.pw
        return units

    @classmethod
    def from_int8bq_onnx(cls, path: str | Path) -> "SFace":
        """Build the module from face_recognition_sface_2021dec_int8bq.onnx, in eval mode.

        Raises:
            ValueError: a node is missing, a shape/attribute differs, or the file is truncated/corrupt.
        """
        nodes = read_int8bq_onnx(path)
        model = cls()

        def get(name: str, op: str, n: int) -> NodeWeights:
            nw = nodes.get(name)
            if nw is None or nw.op_type != op or len(nw.tensors) != n:
                raise ValueError(f"{path}: expected {op} node {name!r} with {n} weight inputs")
            return nw

        def put(param: torch.Tensor, arr: np.ndarray, what: str) -> None:
            if tuple(arr.shape) != tuple(param.shape):
                raise ValueError(f"{path}: {what} has shape {tuple(arr.shape)}, expected {tuple(param.shape)}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{path}: {what} contains non-finite values")
            with torch.no_grad():
                param.copy_(torch.from_numpy(np.ascontiguousarray(arr)))

        def put_bn(bn: nn.modules.batchnorm._BatchNorm, name: str) -> None:
            nw = get(name, "BatchNormalization", 4)
            if not np.isclose(nw.attrs.get("epsilon", 1e-5), bn.eps, rtol=1e-6):
                raise ValueError(f"{path}: {name} epsilon {nw.attrs.get('epsilon')} != {bn.eps}")
            for t, arr in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), nw.tensors):
                put(t, arr, name)

        sub, mul = get("_minusscalar0", "Sub", 1), get("_mulscalar0", "Mul", 1)
        if not (np.allclose(sub.tensors[0], MEAN) and np.allclose(mul.tensors[0], 1.0 / STD)):
            raise ValueError(f"{path}: input normalisation is not (x - {MEAN}) / {STD}")

        for prefix, unit in model._graph_units().items():
            conv = get(f"{prefix}_conv2d", "Conv", 1)
            c = unit.conv
            a = conv.attrs
            if (list(a.get("strides", [1, 1])) != list(c.stride) or a.get("group", 1) != c.groups
                    or list(a.get("pads", [0] * 4)) != [c.padding[0]] * 4):
                raise ValueError(f"{path}: {prefix}_conv2d attributes {a} do not match {c}")
            put(c.weight, conv.tensors[0], f"{prefix}_conv2d weight")
            put_bn(unit.bn, f"{prefix}_batchnorm")
            put(unit.prelu.weight, get(f"{prefix}_relu", "PRelu", 1).tensors[0].reshape(-1), f"{prefix}_relu")

        put_bn(model.bn, "bn1")
        gemm = get("pre_fc1", "Gemm", 2)
        if gemm.attrs.get("transB", 0) != 1 or gemm.attrs.get("transA", 0) != 0:
            raise ValueError(f"{path}: pre_fc1 Gemm attributes {gemm.attrs} unexpected")
        put(model.fc.weight, gemm.tensors[0], "pre_fc1 weight")
        put(model.fc.bias, gemm.tensors[1], "pre_fc1 bias")
        put_bn(model.features, "fc1")
        return model.eval()
