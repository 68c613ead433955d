"""int8 calibration: readers feed the runtime's own preprocessing; quantised dlib model stays faithful."""
from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest

pytest.importorskip("torch")          # the fp32 models are exported inside the tests

from facegate.calibration.debug import LayerError, layer_errors  # noqa: E402
from facegate.calibration.quantize import quantization_info, quantize_model  # noqa: E402
from facegate.calibration.reader import (  # noqa: E402
    DetectorCalibrationReader,
    EmbedderCalibrationReader,
    calibration_images,
    chunk_feeds,
    reader_for_model,
)
from facegate.edge_runtime.eval.lfw import read_pairs  # noqa: E402
from facegate.edge_runtime.face import nearest_to_center  # noqa: E402
from facegate.edge_runtime.imageio import load_image  # noqa: E402
from facegate.edge_runtime.sessions import onnx_detector, onnx_embedder, open_session  # noqa: E402


@pytest.fixture(scope="module")
def cal_images(data_dir):
    return calibration_images(data_dir=data_dir, limit=24)


@pytest.fixture(scope="module")
def models(tmp_path_factory, cal_images):
    from facegate.export.onnx_export import export_model
    d = tmp_path_factory.mktemp("calib_models")
    det, emb = d / "retinaface_mnet025.onnx", d / "dlib_resnet.onnx"
    export_model("retinaface_mnet025", det, cal_images[:2])
    export_model("dlib_resnet", emb, cal_images[:2])
    return {"detector": det, "dlib": emb, "dir": d}


@pytest.fixture(scope="module")
def dlib_int8(models, cal_images):
    reader = EmbedderCalibrationReader(models["dlib"], cal_images[:16], models["detector"])
    out = quantize_model(models["dlib"], models["dir"] / "dlib_resnet.int8.onnx", lambda: reader,
                         method="MinMax", activation_type="U8")
    return out, reader


def test_default_pool_is_lfw_people_outside_pairs(data_dir):
    images = calibration_images(data_dir=data_dir)
    pairs = read_pairs(data_dir / "lfw" / "pairs.txt")
    in_pairs = {p.a.split("/")[0] for p in pairs} | {p.b.split("/")[0] for p in pairs}
    people = {p.parent.name for p in images}
    assert len(images) == 1549 and len(people) == 1468
    assert not people & in_pairs
    assert len(calibration_images(data_dir=data_dir, limit=10)) == 10


def test_embedder_reader_is_runtime_preprocessing(models, cal_images):
    reader = EmbedderCalibrationReader(models["dlib"], cal_images[:3], models["detector"])
    items = list(reader)
    assert len(items) == 3 and reader.used == 3 and not reader.skipped
    name = open_session(models["dlib"], 1).get_inputs()[0].name
    for it in items:
        assert set(it) == {name}
        x = it[name]
        assert x.dtype == np.float32 and x.shape == (1, 3, 150, 150) and x.flags.c_contiguous
    # the same path by hand: fp32 detector, face nearest the centre, FaceEmbedder.align + .prepare
    det, emb = onnx_detector(models["detector"]), onnx_embedder(models["dlib"])
    img = load_image(cal_images[1])
    face = nearest_to_center(det.detect(img), img.shape[1], img.shape[0])
    np.testing.assert_array_equal(items[1][name], emb.prepare(emb.align(img, face)))
    # get_next / rewind give the same data (what onnxruntime's calibrators call)
    reader.rewind()
    first = reader.get_next()
    np.testing.assert_array_equal(first[name], items[0][name])


def test_detector_reader_frames_and_folder(models, cal_images, tmp_path):
    big = cv2.resize(cv2.imread(str(cal_images[0])), (1000, 800))
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "big.png"), big)
    cv2.imwrite(str(tmp_path / "small.jpg"), cv2.imread(str(cal_images[1])))
    (tmp_path / "notes.txt").write_text("not an image")
    reader = reader_for_model(models["detector"], folder=tmp_path)
    assert isinstance(reader, DetectorCalibrationReader)
    items = list(reader)
    # sorted paths: small.jpg, sub/big.png; frames shrink to a longer side of 640 like the runtime
    assert [next(iter(i.values())).shape for i in items] == [(1, 3, 250, 250), (1, 3, 512, 640)]
    det = onnx_detector(models["detector"])
    x, _ = det.prepare(load_image(tmp_path / "sub" / "big.png"))
    np.testing.assert_array_equal(next(iter(items[1].values())), x)
    # chunks never mix shapes (histogram calibrators stack a chunk's outputs per tensor)
    chunks = list(chunk_feeds(items + items, 3))
    assert [len(c) for c in chunks] == [1, 1, 1, 1]


def test_quantised_dlib_keeps_contract_and_accuracy(models, dlib_int8, cal_images):
    out, reader = dlib_int8
    m = onnx.load(str(out))
    meta = {p.key: p.value for p in m.metadata_props}
    fp32_meta = {p.key: p.value for p in onnx.load(str(models["dlib"])).metadata_props}
    assert meta["facegate.contract"] == fp32_meta["facegate.contract"]
    assert meta["facegate.provenance"] == fp32_meta["facegate.provenance"]
    info = json.loads(meta["facegate.quantization"])
    assert info == quantization_info(out)
    assert info["method"] == "MinMax" and info["activation_type"] == "uint8" and info["weight_type"] == "int8"
    assert info["per_channel"] is True and info["calibration_inputs"] == 16 and info["excluded_nodes"] == []
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert out.stat().st_size < 0.5 * models["dlib"].stat().st_size
    # the runtime opens it like the fp32 model (contract check) and the embeddings barely move
    fp32, int8 = onnx_embedder(models["dlib"]), onnx_embedder(out)
    chips = np.stack([reader.chip(p) for p in cal_images[16:24] if reader.chip(p) is not None])
    a, b = fp32.embed(chips), int8.embed(chips)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert len(chips) >= 6 and cos.min() >= 0.999, cos


def test_layer_errors_rows(models, dlib_int8):
    out, reader = dlib_int8
    reader.rewind()
    rows = layer_errors(models["dlib"], out, reader, max_inputs=2)
    assert len(rows) > 20 and all(isinstance(r, LayerError) for r in rows)
    sqnr = [r.qdq_sqnr for r in rows]
    assert sqnr == sorted(sqnr) and all(np.isfinite(sqnr))
    assert all(r.rel_error < 0.2 for r in rows)
    assert any(r.op_type == "Conv" and r.node for r in rows)


def test_calibration_grid_scores_every_setting_on_the_same_chips(models, data_dir, tmp_path):
    from facegate.calibration.grid import calibration_grid, grid_markdown

    fp32 = {"retinaface_mnet025": models["detector"], "dlib_resnet": models["dlib"]}
    r = calibration_grid(fp32, {"dlib_resnet": models["dlib"]}, tmp_path, data_dir, ["dlib_resnet"], limit=8,
                         lfw_limit=2, methods=("MinMax", "Percentile"), activations=("U8", "S8"))
    assert r["pairs"] == 40 and len(r["rows"]) == 4
    for m in ("MinMax", "Percentile"):       # one calibration per method, shared by U8 and S8
        assert (tmp_path / "grid" / f"dlib_resnet.{m}.ranges.json").is_file()
        assert int((tmp_path / "grid" / f"dlib_resnet.{m}.ranges.json.inputs").read_text()) > 0
    assert {(x["method"], x["activations"]) for x in r["rows"]} == {("MinMax", "U8"), ("MinMax", "S8"),
                                                                    ("Percentile", "U8"), ("Percentile", "S8")}
    for x in r["rows"]:
        assert 0.9 <= x["lfw_accuracy"] <= 1.0 and 0.98 < x["cos_mean"] <= 1.0 and x["ms_2t"] > 0
        assert quantization_info(x["path"])["activation_type"] == ("uint8" if x["activations"] == "U8" else "int8")
    best = r["best"]["dlib_resnet"]
    assert best["lfw_accuracy"] >= max(x["lfw_accuracy"] for x in r["rows"]) - 0.0005
    md = grid_markdown(r)
    assert md.count("| dlib_resnet |") == 5 and f"**{best['method']}**" in md


def test_quant_debug_command_names_a_node_that_exclude_keeps_in_float(models, dlib_int8, cal_images, tmp_path):
    from facegate.main import main

    out, _ = dlib_int8
    rows_file = tmp_path / "rows.json"
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in cal_images[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    assert main(["quant-debug", str(models["dlib"]), str(out), "--images", str(folder), "--detector",
                 str(models["detector"]), "--inputs", "2", "--json", str(rows_file)]) == 0
    rows = json.loads(rows_file.read_text())
    worst = next(r for r in rows if r["op_type"] == "Conv" and r["node"])
    reader = EmbedderCalibrationReader(models["dlib"], cal_images[:8], models["detector"])
    kept = quantize_model(models["dlib"], tmp_path / "excl.onnx", lambda: reader, exclude_nodes=[worst["node"]])
    assert quantization_info(kept)["excluded_nodes"] == [worst["node"]]
    g = onnx.load(str(kept)).graph
    conv = next(n for n in g.node if n.name == worst["node"])
    producers = {o: n.op_type for n in g.node for o in n.output}
    weight_src = producers.get(conv.input[1], "initializer")
    assert weight_src != "DequantizeLinear"               # its weights stay float


def test_best_setting_breaks_lfw_ties_by_tar():
    from facegate.calibration.grid import best_setting

    rows = [{"m": "a", "lfw_accuracy": 0.9957, "tar_at_far_1e-3": 0.9913, "ms_2t": 3.6},
            {"m": "b", "lfw_accuracy": 0.9955, "tar_at_far_1e-3": 0.9930, "ms_2t": 3.7},
            {"m": "c", "lfw_accuracy": 0.9947, "tar_at_far_1e-3": 0.9990, "ms_2t": 3.5}]
    assert best_setting(rows)["m"] == "b"          # a and b tie on LFW (3 pairs); b accepts more at FAR 1e-3
    assert best_setting(rows, noise=0.0)["m"] == "a"
