"""The PRelu -> Conv + Relu(Conv) -> Add rewrite keeps the function (synthetic graph, no data needed)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facegate.calibration.prelu import REWRITE_KEY, prelu_to_conv_pair
from facegate.edge_runtime.sessions import open_session


def _model(path, slopes2):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.uniform(-0.6, 0.9, size=(8, 1, 1)).astype(np.float32), "a1"),
             numpy_helper.from_array(rng.normal(size=(8, 1, 3, 3)).astype(np.float32), "w2"),   # depthwise
             numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b2"),
             numpy_helper.from_array(np.asarray(slopes2, np.float32).reshape(8, 1, 1), "a2")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["y1"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("PRelu", ["y1", "a1"], ["z1"], name="p1"),
             helper.make_node("Conv", ["z1", "w2", "b2"], ["y2"], name="c2", group=8, pads=[1, 1, 1, 1]),
             helper.make_node("PRelu", ["y2", "a2"], ["out"], name="p2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 12, 12])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.metadata_props.add(key="facegate.contract", value='{"kind": "embedder"}')
    onnx.save(m, str(path))


def _run(path, x):
    return open_session(path, 1).run(None, {"input": x})[0]


def test_conv_pair_is_exact_below_slope_one(tmp_path):
    slopes = [-0.5, -0.1, 0.0, 0.1, 0.25, 0.5, 0.9, 0.99]
    _model(tmp_path / "m.onnx", slopes)
    info = prelu_to_conv_pair(tmp_path / "m.onnx", tmp_path / "p.onnx")
    assert info == {"prelu_rewritten": 2, "channels": 16, "channels_clamped": 0, "max_slope": pytest.approx(0.99)}
    x = np.random.default_rng(1).normal(size=(1, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "p.onnx", x), _run(tmp_path / "m.onnx", x), rtol=1e-4, atol=1e-4)
    m = onnx.load(str(tmp_path / "p.onnx"))
    assert "PRelu" not in {n.op_type for n in m.graph.node}
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["facegate.contract"] == '{"kind": "embedder"}'
    assert json.loads(meta[REWRITE_KEY])["rewrite"] == "prelu_to_conv_pair"


def test_conv_pair_clamps_slopes_of_one_and_more(tmp_path):
    _model(tmp_path / "m.onnx", [0.2] * 6 + [1.0, 1.1])
    info = prelu_to_conv_pair(tmp_path / "m.onnx", tmp_path / "p.onnx")
    assert info["channels_clamped"] == 2 and info["max_slope"] == pytest.approx(1.1)
