"""`facegate train student` on a handful of real LFW photos: the distillation loss goes down, the checkpoint
carries its config and resumes, the student exports to ONNX with its contract, calibrates to int8 and runs
in the runtime (alone and as the small bundle's embedder); `train map` and `train saliency` write their
pictures."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from facegate.main import main  # noqa: E402

QUICK = ["--limit-people", "4", "--width", "0.25", "--epoch-samples", "24", "--batch-size", "8",
         "--warmup-steps", "1", "--lr", "0.005", "--calib-images", "8", "--latency-rounds", "3", "--quiet"]


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """One quick run (4 epochs of 3 steps) with evaluation and the small bundle: (out, args less --epochs)."""
    out = tmp_path_factory.mktemp("student")
    args = ["train", "student", "--lfw", str(data_dir / "lfw"), "--out", str(out / "run"), "--cache", str(out),
            "--describe-cache", str(out), *QUICK]
    assert main([*args, "--epochs", "4", "--bundle-out", str(out / "bundle_small")]) == 0
    return out, args


def _state(out):
    from facegate.models.training.common import load_checkpoint
    return load_checkpoint(out / "run" / "student.pt")


def test_loss_goes_down_and_config_is_saved(trained):
    out, _ = trained
    state = _state(out)
    hist = state["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    cfg = state["config"]
    assert cfg["train_people"].startswith("folds 1-5") and cfg["test_people"] == "folds 6-10 of pairs.txt"
    assert len(cfg["train_list_sha256"]) == 16 and cfg["git_commit"] and cfg["bundle_id"]
    assert state["trained_by"].startswith("trained by facegate")
    for name in ("student_curves.csv", "student_curves.png", "report.json", "report.md"):
        assert (out / "run" / name).is_file()
    header = (out / "run" / "student_curves.csv").read_text().splitlines()[0]
    assert header.split(",")[:3] == ["epoch", "train_loss", "heldout_pair_accuracy"]


def test_export_runs_in_the_runtime(trained, data_dir):
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.contract import STUDENT_MFN
    from facegate.edge_runtime.detection import central_face
    from facegate.edge_runtime.imageio import load_image
    from facegate.edge_runtime.matching import similarity
    from facegate.edge_runtime.sessions import onnx_embedder

    out, _ = trained
    img = load_image(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
    b = load_bundle(out / "bundle_small")
    assert b.embedder.name == "student_mfn" and b.manifest.embedders["student_mfn"].precision == "int8"
    face = central_face(b.detector, img)
    chip = b.embedder.align(img, face)
    assert chip.shape == (112, 112, 3)
    for precision in ("fp32", "int8"):
        emb = onnx_embedder(out / "run" / f"student.{precision}.onnx")
        assert emb.contract == STUDENT_MFN
        e = emb.embed(chip)
        assert e.shape == (1, 128) and np.isfinite(e).all()
        u = e / np.linalg.norm(e, axis=1, keepdims=True)
        assert abs(float(np.linalg.norm(u)) - 1) < 1e-5
        assert similarity(e, e, "cosine")[0, 0] == pytest.approx(1.0, abs=1e-5)
    meta = json.loads((out / "bundle_small" / "bundle.json").read_text())
    prov = meta["provenance"]["student_mfn"]
    assert prov["trained_by"].startswith("trained by facegate") and prov["config"]["width"] == 0.25
    report = json.loads((out / "run" / "report.json").read_text())
    assert set(report["models"]) == {"teacher (shipped sface)", "student_mfn fp32", "student_mfn int8"}
    assert report["speedup"] > 0 and 0 <= report["models"]["student_mfn int8"]["pairs"]["accuracy"] <= 1


def test_resume_continues_and_refuses_other_settings(trained):
    out, args = trained
    assert main([*args, "--epochs", "5", "--resume", "--no-eval"]) == 0
    assert [h["epoch"] for h in _state(out)["history"]] == [1, 2, 3, 4, 5]
    other_lr = [a if a != "0.005" else "0.01" for a in args]
    assert main([*other_lr, "--epochs", "5", "--resume", "--no-eval"]) == 1     # refused: another --lr


def test_map_and_saliency_write_their_pictures(trained, data_dir, tmp_path):
    import cv2

    out, _ = trained
    png = tmp_path / "map.png"
    assert main(["train", "map", "--checkpoint", str(out / "run" / "student.pt"), "--cache", str(out),
                 "--describe-cache", str(out), "--people", "3", "--per-person", "4", "--out", str(png),
                 "--quiet"]) == 0
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] > img.shape[0] > 100
    lfw = data_dir / "lfw"
    assert main(["train", "saliency", str(lfw / "Colin_Powell/Colin_Powell_0001.jpg"),
                 str(lfw / "Colin_Powell/Colin_Powell_0002.jpg"), "--checkpoint", str(out / "run" / "student.pt"),
                 "--out", str(tmp_path / "sal")]) == 0
    pair = cv2.imread(str(tmp_path / "sal" / "saliency_pair.png"))
    assert pair.shape == (112, 448, 3)
    maps = np.load(tmp_path / "sal" / "saliency.npy")
    assert maps.shape == (2, 112, 112) and maps.max() == pytest.approx(1.0) and maps.min() >= 0
