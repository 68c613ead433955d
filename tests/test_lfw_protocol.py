"""LFW protocol maths on hand-made scores."""
import numpy as np
import pytest

from facegate.edge_runtime.eval.lfw import (
    best_threshold,
    calibration_photos,
    lfw_people,
    read_pairs,
    tar_at_far,
    ten_fold_accuracy,
)


def test_read_pairs(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t4\nE\t1\tF\t1\n")
    pairs = read_pairs(p)
    assert [(x.a, x.b, x.same, x.fold) for x in pairs] == [
        ("A/A_0001.jpg", "A/A_0002.jpg", True, 0), ("B/B_0001.jpg", "C/C_0003.jpg", False, 0),
        ("D/D_0002.jpg", "D/D_0004.jpg", True, 1), ("E/E_0001.jpg", "F/F_0001.jpg", False, 1)]


def test_calibration_people_are_those_in_no_pair(tmp_path):
    (tmp_path / "pairs.txt").write_text("1\t1\nA\t1\t2\nB\t1\tC\t1\n")
    for person, photos in {"A": 2, "B": 1, "C": 1, "Zed": 2, "Kim": 1, "Empty": 0}.items():
        (tmp_path / person).mkdir()
        for i in range(photos, 0, -1):
            (tmp_path / person / f"{person}_{i:04d}.jpg").write_bytes(b"")
    (tmp_path / "Kim" / "notes.txt").write_text("not a photo")
    calibration, evaluation = lfw_people(tmp_path)
    assert calibration == {"Kim": ["Kim/Kim_0001.jpg"], "Zed": ["Zed/Zed_0001.jpg", "Zed/Zed_0002.jpg"]}
    assert list(evaluation) == ["A", "B", "C"] and evaluation["A"] == ["A/A_0001.jpg", "A/A_0002.jpg"]
    assert calibration_photos(tmp_path) == [tmp_path / "Kim/Kim_0001.jpg", tmp_path / "Zed/Zed_0001.jpg",
                                            tmp_path / "Zed/Zed_0002.jpg"]


def test_best_threshold_separable():
    s = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([False, False, True, True])
    t = best_threshold(s, y)
    assert 0.2 < t < 0.8


def test_ten_fold_perfect_and_missing():
    rng = np.random.default_rng(0)
    same = np.tile([True, False], 100)
    folds = np.repeat(np.arange(10), 20)
    scores = np.where(same, rng.uniform(0.6, 1, 200), rng.uniform(0, 0.4, 200))
    assert ten_fold_accuracy(scores, same, folds)["accuracy"] == 1.0
    scores[0] = np.nan                          # a pair whose face was not found counts as wrong
    r = ten_fold_accuracy(scores, same, folds)
    assert r["accuracy"] == pytest.approx(1.0 - 1 / 200)
    assert r["fold_accuracies"][0] == 19 / 20


def test_tar_at_far():
    same = np.array([True] * 4 + [False] * 10)
    scores = np.array([0.9, 0.8, 0.5, 0.3] + [0.6] + [0.1] * 9)
    tar, t = tar_at_far(scores, same, 0.1)          # one impostor allowed above
    assert tar == 1.0 and t <= 0.3 + 1e-6
    tar0, t0 = tar_at_far(scores, same, 0.0)        # none allowed: threshold above 0.6
    assert tar0 == 0.5 and t0 > 0.6
