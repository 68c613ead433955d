"""`facegate train quality` on a handful of real LFW photos: the loss goes down, the checkpoint resumes,
the model exports to ONNX and runs in onnxruntime on features made by the runtime's own pipeline; the
targets, degradations and the error-versus-discard curve on small made-up inputs."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facegate.edge_runtime.eval.quality_eval import edc, hand_gate_score, pair_min, random_edc  # noqa: E402
from facegate.main import main  # noqa: E402

QUICK = ["--limit-people", "4", "--degradations", "2", "--batch-size", "32", "--quiet", "--split", "first"]


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """One quick training run (3 epochs): (output folder, cache folder)."""
    out = tmp_path_factory.mktemp("quality")
    args = ["train", "quality", "--lfw", str(data_dir / "lfw"), "--out", str(out), "--cache", str(out / "cache"),
            "--epochs", "3", *QUICK]
    assert main(args) == 0
    return out, args


def _history(path):
    from facegate.models.training.common import load_checkpoint
    return load_checkpoint(path)["history"]


def test_loss_goes_down_and_files_are_written(trained):
    out, _ = trained
    hist = _history(out / "quality_first.pt")
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    assert hist[-1]["train_mse"] < hist[0]["train_mse"]
    for name in ("quality_first.onnx", "quality_first_curves.csv", "quality_first_curves.png"):
        assert (out / name).is_file()
    state = torch.load(out / "quality_first.pt", weights_only=False)
    cfg = state["config"]
    assert cfg["train_people"].startswith("folds 1-5") and cfg["test_people"] == "folds 6-10 of pairs.txt"
    assert len(cfg["train_list_sha256"]) == 16 and cfg["git_commit"] and cfg["bundle_id"]


def test_resume_continues_and_refuses_other_settings(trained):
    out, args = trained
    more = [a if a != "3" else "5" for a in args]                # --epochs 5
    assert main([*more, "--resume"]) == 0
    assert [h["epoch"] for h in _history(out / "quality_first.pt")] == [0, 1, 2, 3, 4, 5]
    from facegate.edge_runtime.errors import FacegateError
    from facegate.models.training.common import CheckpointError
    with pytest.raises(CheckpointError, match="lr"):
        from dataclasses import asdict

        from facegate.models.training.common import check_resume
        from facegate.models.training.quality_train import RESUMABLE_CHANGES
        check_resume({**torch.load(out / "quality_first.pt", weights_only=False)["config"], "lr": 0.5},
                     asdict(_config_from(out)), RESUMABLE_CHANGES)
    assert issubclass(CheckpointError, FacegateError)


def _config_from(out):
    from facegate.models.training.quality_train import QualityTrainConfig
    return QualityTrainConfig(**torch.load(out / "quality_first.pt", weights_only=False)["config"])


def test_onnx_runs_on_the_runtime_pipeline(trained, data_dir):
    """Photo -> detector -> align -> the bundle's fused embedder (runtime preprocessing) -> quality ONNX,
    equal to the PyTorch head; a blurred copy of the face scores lower."""
    import cv2

    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.detection import central_face
    from facegate.edge_runtime.eval.quality_eval import read_quality_contract, run_quality_model
    from facegate.edge_runtime.imageio import load_image
    from facegate.models.training.quality_model import QualityHead

    out, _ = trained
    bundle = load_bundle()
    img = load_image(data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg")
    face = central_face(bundle.detector, img)
    blurred = cv2.GaussianBlur(img, (0, 0), 6)
    emb = bundle.embedder.embed_sets([bundle.embedder.align_all(img, face), bundle.embedder.align_all(blurred, face)])
    q = run_quality_model(out / "quality_first.onnx", emb, np.array([True, True]))
    contract = read_quality_contract(out / "quality_first.onnx")
    assert contract["part_sha256"] == {p: bundle.manifest.embedders[p].sha256 for p in contract["parts"]}
    assert contract["dims"] == [128, 128]
    head = QualityHead(tuple(contract["dims"]), 64)
    head.load_state_dict(torch.load(out / "quality_first.pt", weights_only=False)["model"])
    with torch.inference_mode():
        ref = head.eval()(torch.from_numpy(emb)).numpy()
    assert np.allclose(q, ref, atol=1e-4) and np.isfinite(q).all()


def test_checkpoint_goes_into_a_bundle_and_runs_in_the_runtime(trained, powell, tmp_path):
    """build-bundle --models-from --quality CKPT: the checkpoint is exported, the bundle's other files are
    copied unchanged, and the runtime's Recognizer scores faces with it (the ONNX's numbers)."""
    from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle, read_manifest, sha256_file
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.eval.quality_eval import run_quality_model
    from facegate.edge_runtime.imageio import load_image
    from facegate.edge_runtime.recognizer import Recognizer

    out, _ = trained
    shipped = read_manifest(default_bundle_dir())
    assert main(["build-bundle", "--models-from", str(default_bundle_dir()), "--quality", str(out / "quality_first.pt"),
                 "--quality-threshold", "-100", "--out", str(tmp_path / "b"), "--work", str(tmp_path / "w")]) == 0
    m = read_manifest(tmp_path / "b")
    assert m.quality.threshold == -100 and m.raw["provenance"]["face_quality"]["trained_by"] == "facegate train quality"
    assert m.raw["provenance"]["face_quality"]["config"]["split"] == "first"
    for name in [shipped.detector_file, *(e.file for e in shipped.embedders.values())]:
        assert sha256_file(tmp_path / "b" / name) == sha256_file(default_bundle_dir() / name)
    rec = Recognizer(load_bundle(tmp_path / "b", threads=1), Config())
    r = rec.analyze(load_image(powell[0]))
    assert len(r) == 1 and r[0].usable
    ref = run_quality_model(tmp_path / "w" / "quality_first.onnx", r[0].face.embedding[None], np.array([True]))
    assert r[0].quality == pytest.approx(float(ref[0]), abs=1e-4)


def test_pairwise_loss_goes_down_and_exports(trained, data_dir, tmp_path):
    """--loss pairwise: genuine pairs' soft-min quality regressed on their score margin; the loss falls and the
    ONNX carries the pairwise units."""
    from facegate.edge_runtime.eval.quality_eval import read_quality_contract

    out, _ = trained
    args = ["train", "quality", "--lfw", str(data_dir / "lfw"), "--out", str(tmp_path), "--cache", str(out / "cache"),
            "--epochs", "4", "--loss", "pairwise", *QUICK]
    assert main(args) == 0
    hist = _history(tmp_path / "quality_first.pt")
    assert hist[-1]["train_mse"] < hist[0]["train_mse"]
    assert "FMR 1e-3" in read_quality_contract(tmp_path / "quality_first.onnx")["units"]
    assert torch.load(tmp_path / "quality_first.pt", weights_only=False)["config"]["loss"] == "pairwise"


def test_empty_data_folder_is_a_clear_error(tmp_path):
    from facegate.models.training.common import DataFolderError
    from facegate.models.training.quality_data import lfw_folders

    with pytest.raises(DataFolderError, match="does not exist"):
        lfw_folders(tmp_path / "nowhere")
    (tmp_path / "pairs.txt").write_text("10\t300\n")
    with pytest.raises(DataFolderError, match="no person folder"):
        lfw_folders(tmp_path)
    assert main(["train", "quality", "--lfw", str(tmp_path / "nowhere"), "--out", str(tmp_path), "--quiet"]) == 1


def test_degradations_are_seeded_per_image():
    from facegate.edge_runtime.face import Face
    from facegate.models.training.quality_data import degrade

    img = np.random.default_rng(1).integers(0, 255, (120, 100, 3), np.uint8)
    face = Face([20, 20, 80, 90], [[40, 45], [62, 45], [51, 60], [42, 75], [60, 75]], 0.9)
    a = [degrade(img, face, np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(a[0][0], a[1][0]) and a[0][2] == a[1][2]
    assert a[0][0].shape == img.shape and a[0][0].dtype == np.uint8


def test_margin_targets_on_made_up_scores():
    from facegate.models.training.quality_data import margin_targets

    gallery = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3]]       # person a twice, then b, c, d
    people = np.array(["a", "a", "b", "c", "d"])
    idx = np.arange(5)
    y = margin_targets(gallery, people, idx, gallery, people, idx, "cosine", quantile=1.0)
    assert y[0] == pytest.approx(1.0) and y[1] == pytest.approx(1.0)   # genuine 1, impostors 0
    assert np.isnan(y[2:]).all()                                         # no genuine partner
    noisy = (gallery[:1] + np.float32([[0, 1, 0, 0]]))
    assert margin_targets(noisy, people[:1], np.array([0]), gallery, people, idx, "cosine", 1.0)[0] < 0.5


def test_edc_discards_the_lowest_quality_first():
    miss = np.array([True, True, False, False, False, False, False, False, False, False])
    quality = np.arange(10.0)                                            # the misses have the lowest quality
    pairs = np.stack([np.arange(10), np.arange(10)], 1)
    curve = edc(pair_min(quality, pairs), miss, fractions=(0.0, 0.1, 0.2))
    assert curve == pytest.approx([0.2, 1 / 9, 0.0])
    assert random_edc(miss, fractions=(0.0,))[0] == pytest.approx(0.2)


def test_hand_gate_score_is_zero_at_the_gate():
    from facegate.edge_runtime.face import Face

    chip = np.full((112, 112, 3), 128, np.uint8)
    chip[::2] = 0
    face = Face([0, 0, 200, 200], [[70, 80], [130, 80], [100, 110], [75, 140], [125, 140]], 0.9)
    assert hand_gate_score(face, chip) > 0
    dark = Face([0, 0, 30, 30], face.landmarks, 0.9)
    assert hand_gate_score(dark, chip) < 0                               # too small


def test_targets_and_markdown_on_a_made_up_report(tmp_path):
    from facegate.edge_runtime.eval.quality_eval import FRACTIONS, markdown_report, plot_edc, targets_met

    good = [0.02 * (1 - f * 5) for f in FRACTIONS]
    flat = [0.02] * len(FRACTIONS)
    t = targets_met({"quality model": good, "random": flat})
    assert t["lowest_curve"] and t["halved_at_10"]
    assert not targets_met({"quality model": flat, "random": good})["lowest_curve"]
    half = {"people": 3, "images": 9, "genuine_pairs": 4, "threshold": 3.0, "impostor_comparisons": 20,
            "curves": {"quality model": good, "random": flat}}
    report = {"bundle_id": "x", "fractions": list(FRACTIONS), "target_fmr": 1e-3, "images": 9, "no_face": 0,
              "halves": {"tested on folds 6-10": half}, "union": {"genuine_pairs": 4, "curves": half["curves"]},
              "trained": {"first": {"train_people": "a", "test_people": "b"}},
              "quality_model_time": {"threads": 2, "median_ms": 0.01, "p90_ms": 0.02},
              "describe_seconds": 0.0, "seconds": 1.0}
    text = markdown_report(report)
    assert "trained on a" in text and "tested on b" in text and "**met**" in text
    plot_edc(report, tmp_path / "edc.png")
    assert (tmp_path / "edc.png").stat().st_size > 1000
