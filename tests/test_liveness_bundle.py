"""`facegate bundle add-liveness`: a copy of the shipped bundle with the MiniFASNet liveness models, built in a
temporary folder from $FACEGATE_DATA/weights/minifasnet (user-supplied data; never in the repository).

The new bundle has a new id, licence and NOTICE; the source bundle is untouched; an altered liveness model is
refused; the ONNX models score like the PyTorch ones; the upstream samples are judged real / attack through
`facegate identify --json --bundle DST`."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facegate.edge_runtime.bundle import BundleError, default_bundle_dir, load_bundle, read_manifest, sha256_file

SAMPLES = (("live/image_T1.jpg", True), ("spoof/image_F1.jpg", False), ("spoof/image_F2.jpg", False))


def _sample(data_dir, name):
    p = data_dir / "antispoof_samples" / name
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


def test_new_bundle_carries_liveness(liveness_bundle):
    src = read_manifest(default_bundle_dir())
    m = read_manifest(liveness_bundle)
    assert m.id != src.id and src.liveness is None
    assert [(e.name, e.precision, e.scale) for e in m.liveness.models] == [
        ("minifasnet_v2", "fp32", 2.7), ("minifasnet_v1se", "fp32", 4.0)]
    assert m.liveness.threshold == 0.72
    for e in m.liveness.models:
        assert sha256_file(liveness_bundle / e.file) == e.sha256
        assert m.raw["licences"][e.name] == "Apache-2.0"
        assert m.raw["provenance"][e.name]["sha256"] == sha256_file(_weights_of(e.name))
        assert m.raw["contracts"][e.name]["kind"] == "liveness"
        assert m.raw["liveness"]["report"]["parity_max_diff"][e.name] < 1e-4
    assert "Apache License" in (liveness_bundle / "LICENSE-minifasnet").read_text()
    assert "Silent-Face-Anti-Spoofing" in (liveness_bundle / "NOTICE").read_text()
    # the rest of the bundle is the source's: same models, same decisions
    assert m.embedders == src.embedders and m.detector_sha256 == src.detector_sha256
    assert m.raw["score_models"] == src.raw["score_models"] and m.raw["fusion"] == src.raw["fusion"]


def _weights_of(name):
    from facegate.edge_runtime.paths import data_dir
    from facegate.models.minifasnet import VARIANTS

    return data_dir() / "weights" / "minifasnet" / next(v.file for v in VARIANTS if v.contract == name)


def test_source_bundle_untouched(liveness_bundle):
    src = default_bundle_dir()
    files = sorted(p.name for p in src.iterdir() if p.is_file())
    assert not any("minifasnet" in f or f in ("NOTICE", "LICENSE-minifasnet") for f in files)
    m = read_manifest(src)
    assert "liveness" not in m.raw and load_bundle(src).liveness is None


def test_altered_liveness_model_refused(liveness_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(liveness_bundle, b)
    f = b / "minifasnet_v1se.fp32.onnx"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))
    with pytest.raises(BundleError, match="minifasnet_v1se.fp32.onnx is altered"):
        load_bundle(b)


def test_edited_liveness_entry_refused(liveness_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(liveness_bundle, b)
    raw = json.loads((b / "bundle.json").read_text())
    raw["liveness"]["threshold"] = 0.1
    (b / "bundle.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="edited after it was built"):
        read_manifest(b)


def test_add_liveness_refuses_bad_input(liveness_bundle, tmp_path, data_dir):
    from facegate.export.liveness_export import LivenessBuildError, add_liveness

    with pytest.raises(LivenessBuildError, match="already exists"):
        add_liveness(data_dir / "weights" / "minifasnet", liveness_bundle)
    with pytest.raises(LivenessBuildError, match="already has liveness"):
        add_liveness(data_dir / "weights" / "minifasnet", tmp_path / "again", bundle=liveness_bundle)
    with pytest.raises(LivenessBuildError, match="lacks 2.7_80x80_MiniFASNetV2.pth"):
        add_liveness(tmp_path, tmp_path / "out")
    assert not (tmp_path / "again").exists() and not (tmp_path / "again.partial").exists()


def test_onnx_scores_match_pytorch(liveness_bundle, data_dir):
    from facegate.edge_runtime.detection import central_face
    from facegate.edge_runtime.imageio import load_image
    from facegate.models.minifasnet import Liveness

    bundle = load_bundle(liveness_bundle)
    ref = Liveness(data_dir / "weights" / "minifasnet")
    for name, _ in SAMPLES:
        img = load_image(_sample(data_dir, name))
        face = central_face(bundle.detector, img)
        p_onnx = bundle.liveness.probabilities_many(img, [face])[0]
        assert np.abs(p_onnx - ref.probabilities(img, face.box)).max() < 1e-5, name
        assert abs(bundle.liveness.score(img, face) - ref(img, face.box)) < 1e-5


def test_identify_json_reports_liveness(liveness_bundle, data_dir, tmp_path, capsys):
    from facegate.main import main

    paths = [_sample(data_dir, n) for n, _ in SAMPLES]
    assert main(["identify", "--json", "--home", str(tmp_path / "home"), "--bundle", str(liveness_bundle),
                 *map(str, paths)]) == 0
    out = json.loads(capsys.readouterr().out)
    for item, (name, live) in zip(out, SAMPLES):
        (face,) = item["faces"]
        assert face["live"] is live, (name, face)
        assert 0.0 <= face["liveness"] <= 1.0
        assert (face["liveness"] > 0.9) if live else (face["liveness"] < 0.4), (name, face["liveness"])
    # the shipped bundle has no liveness model: the fields are there, and None
    assert main(["identify", "--json", "--home", str(tmp_path / "home"), str(paths[0])]) == 0
    (face,) = json.loads(capsys.readouterr().out)[0]["faces"]
    assert face["liveness"] is None and face["live"] is None


def test_liveness_entry_must_name_its_model(liveness_bundle, tmp_path):
    from facegate.export.bundle_write import update_manifest

    b = tmp_path / "b"
    shutil.copytree(liveness_bundle, b)
    live = json.loads((b / "bundle.json").read_text())["liveness"]
    v2, v1se = live["models"]
    for k in ("file", "sha256"):
        v2[k], v1se[k] = v1se[k], v2[k]
    update_manifest(b, {"liveness": live})          # sealed with a fresh id: only the contract check can tell
    with pytest.raises(BundleError, match=r"is liveness model minifasnet_v1se \(crop x4\), bundle.json says "
                                          r"minifasnet_v2"):
        load_bundle(b)


def test_add_liveness_without_torch_names_the_extra(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from facegate.main import main\n"
            f"sys.exit(main(['bundle', 'add-liveness', '--weights', {str(tmp_path)!r}, '--out', "
            f"{str(tmp_path / 'out')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2 and "pip install 'facegate[train]'" in out.stderr, out.stderr
    assert not (tmp_path / "out").exists()


def test_bench_speed_skips_the_liveness_row_without_weights(tmp_path, monkeypatch):
    import argparse

    from facegate.bench import _liveness_bundle

    pytest.importorskip("torch")

    monkeypatch.setenv("FACEGATE_DATA", str(tmp_path))
    bundle, note = _liveness_bundle(argparse.Namespace(bundle=None), tmp_path / "work")
    assert bundle is None and note.startswith("no liveness row:") and "lacks 2.7_80x80_MiniFASNetV2.pth" in note


def test_a_clone_of_the_upstream_repository_is_understood(tmp_path, data_dir):
    pytest.importorskip("torch")
    from facegate.export.liveness_export import LivenessBuildError, licence_file, sample_images, weight_files
    from facegate.models.minifasnet import VARIANTS

    src = (data_dir / "weights" / "minifasnet").resolve()
    models = tmp_path / "Silent-Face-Anti-Spoofing" / "resources" / "anti_spoof_models"
    models.mkdir(parents=True)
    for v in VARIANTS:
        (models / v.file).symlink_to(src / v.file)
    with pytest.raises(LivenessBuildError, match="no LICENSE found"):
        licence_file(models)
    clone = models.parent.parent
    (clone / "LICENSE").symlink_to(src / "LICENSE")
    (clone / "images" / "sample").mkdir(parents=True)
    (clone / "images" / "sample" / "image_T1.jpg").symlink_to(_sample(data_dir, "live/image_T1.jpg").resolve())
    assert set(weight_files(models).values()) == {models / v.file for v in VARIANTS}
    assert licence_file(models) == clone.resolve() / "LICENSE"
    assert sample_images(models) == [clone.resolve() / "images" / "sample" / "image_T1.jpg"]
