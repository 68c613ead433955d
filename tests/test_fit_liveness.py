"""`facegate fit-liveness`: the [liveness] threshold read off real frames of the door's camera (here the
Hamilton clip as the camera, the shipped bundle with the MiniFASNet liveness models added in a temp folder)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facegate.edge_runtime.door.liveness_fit import LivenessFit, min_frames, threshold_at_bpcer
from facegate.main import main


def test_threshold_and_refused_share():
    scores = np.linspace(0.5, 0.99, 40)
    t = threshold_at_bpcer(scores, 0.05)
    assert t == pytest.approx(scores[2]) and (scores < t).sum() == 2          # floor(0.05 * 40) = 2 refused
    fit = LivenessFit(scores, 0.05, t, 50, 0.72)
    assert fit.refused_at_configured == pytest.approx(np.mean(scores < 0.72))
    assert fit.summary()["frames_scored"] == 40 and fit.summary()["frames_read"] == 50
    assert min_frames(0.05) == 20 and min_frames(0.1) == 10


def test_fit_liveness_on_the_hamilton_clip(data_dir, liveness_bundle, tmp_path, capsys):
    clip = data_dir / "videos" / "face_recognition" / "short_hamilton_clip.mp4"
    home, out = tmp_path / "home", tmp_path / "fit.json"
    rc = main(["fit-liveness", "--home", str(home), "--bundle", str(liveness_bundle), "--source", str(clip),
               "--frames", "25", "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    scores = np.asarray(rep["scores"])
    assert rep["frames_scored"] == len(scores) == 25 and rep["frames_read"] >= 25
    assert rep["threshold"] == pytest.approx(threshold_at_bpcer(scores, 0.05), abs=1e-4)
    assert (scores < rep["threshold"] - 1e-4).sum() <= 1                      # at most 5% of 25 refused
    assert rep["configured_threshold"] == 0.72
    assert rep["bpcer_at_configured"] == pytest.approx(np.mean(scores < 0.72), abs=1e-4)
    assert 0.0 < scores.min() and scores.max() <= 1.0
    assert f"[liveness] threshold = {rep['threshold']:.3f}" in capsys.readouterr().out
    # too few frames with a face for BPCER 5%: a clear error, exit 2, nothing written
    out2 = tmp_path / "none.json"
    assert main(["fit-liveness", "--home", str(home), "--bundle", str(liveness_bundle), "--source", str(clip),
                 "--max-read", "5", "--json", str(out2)]) == 2
    assert "needs at least 20" in capsys.readouterr().err and not out2.exists()


def test_fit_liveness_needs_a_liveness_model(data_dir, tmp_path, capsys):
    clip = data_dir / "videos" / "face_recognition" / "short_hamilton_clip.mp4"
    assert main(["fit-liveness", "--home", str(tmp_path / "home"), "--source", str(clip), "--frames", "20"]) == 2
    assert "liveness is not checked" in capsys.readouterr().err
