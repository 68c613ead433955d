"""The face-image quality model at run time: its contract, QualityModel, a bundle carrying one (added
without touching the other model files), and what the pipeline does with it (enrollment refuses, the
door skips, the photo organiser leaves the face unsorted)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from facegate.edge_runtime.bundle import BundleError, default_bundle_dir, load_bundle, read_manifest, sha256_file
from facegate.edge_runtime.contract import QualityContract, from_metadata
from facegate.edge_runtime.errors import ContractError
from facegate.edge_runtime.quality_model import LOW_QUALITY, QualityModel, low_quality_problem
from facegate.edge_runtime.sessions import onnx_quality
from facegate.export.bundle_write import add_quality


def _plain_bundle(tmp_path):
    """A copy of the shipped bundle without its quality model (if it has one)."""
    src = default_bundle_dir()
    m = read_manifest(src)
    if m.quality is None:
        return src
    from facegate.export.bundle_write import update_manifest

    out = tmp_path / "plain"
    shutil.copytree(src, out)
    (out / m.quality.file).unlink()
    raw = json.loads((out / "bundle.json").read_text())
    raw.pop("quality")
    raw["provenance"].pop("face_quality", None)
    raw["id"] = None
    from facegate.edge_runtime.bundle import bundle_id
    raw["id"] = bundle_id(raw)
    (out / "bundle.json").write_text(json.dumps(raw, indent=2))
    update_manifest(out, {})
    return out


def _norm_model(path, manifest, part_sha256=None, weight=1.0):
    """A quality model written with onnx.helper: quality = weight * |SFace part|^2 - 1 (a stand-in with the
    real contract; the trained one comes from `facegate train quality`)."""
    parts = manifest.fusion.fusion.parts
    dims = manifest.fusion.fusion.dims
    d = int(sum(dims))
    mask = np.zeros((d, 1), np.float32)
    mask[:dims[0]] = weight
    nodes = [helper.make_node("Mul", ["embedding", "embedding"], ["sq"]),
             helper.make_node("MatMul", ["sq", "mask"], ["s"]),
             helper.make_node("Sub", ["s", "one"], ["s1"]),
             helper.make_node("Squeeze", ["s1", "axes"], ["quality"])]
    graph = helper.make_graph(
        nodes, "q", [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("quality", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor("mask", TensorProto.FLOAT, mask.shape, mask.ravel()),
         helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
         helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    contract = {"kind": "quality", "name": "face_quality", "input": "raw fused embedding", "layout": "ND",
                "features_of": manifest.fusion.name, "parts": list(parts), "dims": list(dims),
                "part_sha256": part_sha256 or {p: manifest.embedders[p].sha256 for p in parts},
                "bundle_id": manifest.id, "output": "quality", "higher_is_better": True, "units": "test units"}
    for k, v in {"facegate.contract": json.dumps(contract),
                 "facegate.provenance": json.dumps({"trained_by": "tests"})}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(model, str(path))
    return path


def test_contract_is_read_from_the_metadata():
    meta = {"facegate.contract": json.dumps({"kind": "quality", "name": "q", "parts": ["a", "b"], "dims": [2, 3],
                                             "part_sha256": {"a": "1", "b": "2"}, "features_of": "a+b"})}
    c = from_metadata(meta)
    assert isinstance(c, QualityContract) and c.dims == (2, 3) and c.part_sha256 == {"a": "1", "b": "2"}
    with pytest.raises(ContractError, match="unknown contract fields"):
        from_metadata({"facegate.contract": json.dumps({"kind": "quality", "name": "q", "parts": [], "dims": [],
                                                         "colour": 1})})


def test_quality_model_scores_and_checks_its_embedders(tmp_path):
    m = read_manifest(default_bundle_dir())
    q = onnx_quality(_norm_model(tmp_path / "q.onnx", m), threads=1)
    x = np.zeros((3, 256), np.float32)
    x[0, 0], x[1, :2] = 1.0, 2.0                        # SFace parts of norm^2 0, 1, 8
    assert np.allclose(q.score(x), [0.0, 7.0, -1.0]) and q.score(x).dtype == np.float32
    assert q.score(np.zeros((0, 256), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match=r"\(N, 256\)"):
        q.score(np.zeros((2, 128), np.float32))
    shas = {p: m.embedders[p].sha256 for p in m.fusion.fusion.parts}
    q.check_embedders(m.fusion.name, shas)
    with pytest.raises(ContractError, match="other embedder files"):
        q.check_embedders(m.fusion.name, {**shas, "sface": "0" * 64})
    with pytest.raises(ContractError, match="reads"):
        q.check_embedders("sface", shas)
    assert isinstance(q, QualityModel)


def test_problem_text_says_why():
    text = low_quality_problem(0.123, 0.3)
    assert text.startswith(LOW_QUALITY) and "(0.12 < 0.30)" in text and "blurred" in text


def test_adding_a_quality_model_keeps_every_other_file(tmp_path):
    src = _plain_bundle(tmp_path)
    before = read_manifest(src)
    out = add_quality(src, tmp_path / "b", _norm_model(tmp_path / "q.onnx", before), 0.25, "test threshold")
    after = read_manifest(out)
    assert after.id != before.id and after.quality.threshold == 0.25 and after.quality.precision == "fp32"
    for name in [before.detector_file, *(e.file for e in before.embedders.values())]:
        assert sha256_file(out / name) == sha256_file(src / name)
    for key in ("detector", "embedders", "fusion", "score_models", "contracts", "default_embedder"):
        assert after.raw[key] == before.raw[key]
    b = load_bundle(out, threads=1)
    assert b.quality is not None and b.quality.contract.units == "test units"
    assert load_bundle(out, embedder="sface", threads=1).quality is None    # it reads fused embeddings only
    # an edited threshold is refused (the id covers it)
    raw = json.loads((out / "bundle.json").read_text())
    raw["quality"]["threshold"] = 0.0
    (out / "bundle.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="edited"):
        read_manifest(out)


def test_a_model_of_other_embedder_files_is_refused(tmp_path):
    src = _plain_bundle(tmp_path)
    m = read_manifest(src)
    bad = _norm_model(tmp_path / "q.onnx", m, {p: "0" * 64 for p in m.fusion.fusion.parts})
    with pytest.raises(ValueError, match="other"):
        add_quality(src, tmp_path / "b", bad, 0.0, "")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The shipped models plus the stand-in quality model: with a threshold no face reaches ("strict") and
    one every face passes ("lenient")."""
    tmp = tmp_path_factory.mktemp("qb")
    src = _plain_bundle(tmp)
    q = _norm_model(tmp / "q.onnx", read_manifest(src))
    return {k: add_quality(src, tmp / k, q, t, "test") for k, t in (("strict", 1e9), ("lenient", -1e9))}


def test_pipeline_uses_the_quality(bundles, powell):
    """A face below the threshold: enrollment refuses it with the reason, analyze records its quality and
    does not match it, the door's candidate is never it, and the photo scan leaves it unembedded (unsorted)."""
    import cv2

    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.imageio import load_image
    from facegate.edge_runtime.photos.scan import embed_faces, find_faces, photo_gate
    from facegate.edge_runtime.recognizer import Recognizer, door_candidate

    img = load_image(powell[0])
    lenient = Recognizer(load_bundle(bundles["lenient"], threads=1), Config())
    ok = lenient.analyze(img)
    assert len(ok) == 1 and ok[0].usable and ok[0].match is not None
    assert ok[0].quality == pytest.approx(float(np.sum(ok[0].face.embedding[:128] ** 2)) - 1, rel=1e-4)
    assert door_candidate(ok) is ok[0] and lenient.enrollment_photo(powell[0]).ok

    strict = Recognizer(load_bundle(bundles["strict"], threads=1), Config())
    bad = strict.analyze(img)
    assert len(bad) == 1 and not bad[0].usable and bad[0].match is None and bad[0].face.embedding is None
    assert bad[0].problems == (low_quality_problem(ok[0].quality, 1e9),)
    assert bad[0].quality == pytest.approx(ok[0].quality, rel=1e-5)
    assert door_candidate(bad) is None
    data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()
    r = strict.enrollment_photo(data, "powell.png")
    assert not r.ok and LOW_QUALITY in r.reason and "blurred" in r.reason
    faces = find_faces(strict, img, photo_gate(strict.config))
    embed_faces(strict, faces)
    assert faces[0].embedding is None and faces[0].problems[-1].startswith(LOW_QUALITY)
    assert faces[0].record().problems == faces[0].problems


def test_at_threshold_counts_what_the_threshold_refuses():
    from facegate.edge_runtime.eval.quality_eval import at_threshold

    q = np.array([0.9, 0.1, 0.8, 0.7, -np.inf])
    found = np.array([True, True, True, True, False])
    gen = np.array([[0, 1], [2, 3], [0, 2], [3, 4]])
    miss = np.array([True, False, True, True])
    a = at_threshold(q, found, gen, miss, 0.5)
    assert a["photos"] == 4 and a["photos_refused"] == 1 and a["photos_refused_share"] == 0.25
    assert a["pairs_refused_share"] == 0.25 and a["fnmr_kept"] == 0.5     # pairs 2 and 3 kept (4 has no face)
