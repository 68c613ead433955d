"""Shared fixtures: where the research data lives, and tiny generated inputs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from facegate.edge_runtime import paths


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$FACEGATE_DATA (default ../shared/data). Skips when absent; under CI=true it fails instead."""
    d = paths.data_dir()
    if not (d / "lfw").is_dir():
        msg = f"face data not found at {d}: set FACEGATE_DATA to the shared data folder"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def fp32_models(data_dir, tmp_path_factory):
    """The three networks exported to fp32 ONNX once per test session: {name: path}."""
    pytest.importorskip("torch")
    from facegate.export.onnx_export import export_model

    out = tmp_path_factory.mktemp("onnx")
    imgs = [data_dir / "faceapi_bbt_scenes/bbt1.jpg", data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"]
    return {n: Path(export_model(n, out / f"{n}.onnx", imgs).path)
            for n in ("retinaface_mnet025", "dlib_resnet", "sface")}


def _shipped_manifest() -> dict:
    import json

    from facegate.edge_runtime.bundle import default_bundle_dir

    return json.loads((default_bundle_dir() / "bundle.json").read_text())


@pytest.fixture(scope="session")
def fp32_bundle(fp32_models, tmp_path_factory):
    """An fp32 bundle of the three exported networks (thresholds: the models' published defaults; score
    models: the shipped bundle's, measured on its int8 parts, which score within a few hundredths of these
    fp32 forms, so the door's operating point is derived as on a built bundle)."""
    from facegate.export.bundle_write import ModelFile, update_manifest, write_bundle

    m = fp32_models
    out = write_bundle(tmp_path_factory.mktemp("bundle") / "fp32",
                       ModelFile("retinaface_mnet025", m["retinaface_mnet025"], "fp32"),
                       [ModelFile("sface", m["sface"], "fp32", 0.363, 1e-3, 1e-3),
                        ModelFile("dlib_resnet", m["dlib_resnet"], "fp32", -0.6, 1e-3, 1e-3)], "sface")
    shipped = _shipped_manifest()["score_models"]
    update_manifest(out, {"score_models": {n: shipped[n] for n in ("sface", "dlib_resnet")}})
    return out


@pytest.fixture(scope="session")
def fused_fp32_bundle(fp32_bundle, tmp_path_factory):
    """The fp32 bundle with the shipped bundle's SFace + dlib fusion (weights, z-stats, threshold, score
    models) as its default embedder: templates of the same embedder as the shipped default, made by other
    model files."""
    import shutil

    from facegate.export.bundle_write import set_fusion, update_manifest

    out = tmp_path_factory.mktemp("bundle") / "fp32-fused"
    shutil.copytree(fp32_bundle, out)
    shipped = _shipped_manifest()
    set_fusion(out, dict(shipped["fusion"], precision="fp32+fp32"), "sface+dlib_resnet")
    update_manifest(out, {"score_models": shipped["score_models"]})
    return out


@pytest.fixture(scope="session")
def liveness_bundle(data_dir, tmp_path_factory):
    """A copy of the shipped bundle with the MiniFASNet liveness models (`facegate bundle add-liveness`) from
    $FACEGATE_DATA/weights/minifasnet, built once per session (never in the repository). Skips without them."""
    pytest.importorskip("torch")
    from facegate.export.liveness_export import add_liveness
    from facegate.models.minifasnet import VARIANTS

    weights = data_dir / "weights" / "minifasnet"
    if not all((weights / v.file).is_file() for v in VARIANTS):
        pytest.skip(f"MiniFASNet weights not found in {weights} (user-supplied; docs/liveness.md)")
    return add_liveness(weights, tmp_path_factory.mktemp("liveness") / "bundle")


@pytest.fixture(scope="session")
def admin_bundle(fp32_bundle):
    """The fp32 bundle loaded once and shared by every admin app of the session."""
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.enrollment import open_bundle

    return open_bundle(Config(), fp32_bundle)


@pytest.fixture
def make_app(tmp_path, admin_bundle):
    """make(**flask_config) -> an admin app over a fresh data home in tmp_path and the shared bundle."""
    from facegate.edge_runtime.admin import create_app

    def make(**config):
        return create_app({"HOME": tmp_path / "home", "BUNDLE": admin_bundle, **config})
    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def admin(app):
    """A logged-in test client of `app` (the first administrator was set up through /setup)."""
    from admin_client import set_up_admin

    c = app.test_client()
    set_up_admin(app, c)
    return c


@pytest.fixture
def powell(data_dir):
    """Colin Powell's LFW photos, sorted."""
    return sorted((data_dir / "lfw/Colin_Powell").glob("*.jpg"))
