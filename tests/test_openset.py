"""Open-set 1:N identification: protocol split, FNIR/FPIR on embeddings whose answer is known, fusion."""
from __future__ import annotations

import numpy as np
import pytest

from facegate.edge_runtime.eval.openset import (
    Searches,
    build_searches,
    evaluate_openset,
    fnir_fpir,
    fuse,
    fusion_report,
    openset_relpaths,
    pick_fusion_weight,
    split_people,
    subset,
    threshold_at_fpir,
    znorm_stats,
)


def test_openset_relpaths_splits_people_by_photo_count(tmp_path):
    for name, n in {"Ann": 3, "Bob": 1, "Cid": 2, "Dee": 1}.items():
        (tmp_path / name).mkdir()
        for i in range(n, 0, -1):                         # created in reverse: order must come from names
            (tmp_path / name / f"{name}_{i:04d}.jpg").write_bytes(b"")
    (tmp_path / "pairs.txt").write_text("")
    enrol, mated, nonmated = openset_relpaths(tmp_path)
    assert enrol == ["Ann/Ann_0001.jpg", "Cid/Cid_0001.jpg"]
    assert mated == ["Ann/Ann_0002.jpg", "Ann/Ann_0003.jpg", "Cid/Cid_0002.jpg"]
    assert nonmated == ["Bob/Bob_0001.jpg", "Dee/Dee_0001.jpg"]


def _unit(i, dim=8):
    v = np.zeros(dim, np.float32)
    v[i] = 1
    return v


def _toy():
    """TemplateGallery A, B, C, D (one-hot 0..3); E's enrolment photo has no face.

    Mated: A2 exact (score 1.0, right); B2 cos 0.8 to B and 0.6 to C (right at 0.8); C2 closer to D
    (wrong at every threshold); D2 has no face; E2 matches E's vector exactly, but E is not enrolled.
    Non-mated: 10 impostors whose best score is 0.05, 0.15, ..., 0.95 (all against A), one without a face.
    """
    e = {"A/A_0001.jpg": _unit(0), "B/B_0001.jpg": _unit(1), "C/C_0001.jpg": _unit(2), "D/D_0001.jpg": _unit(3),
         "A/A_0002.jpg": _unit(0), "B/B_0002.jpg": 0.8 * _unit(1) + 0.6 * _unit(2),
         "C/C_0002.jpg": 0.9 * _unit(3) + 0.3 * _unit(2), "E/E_0002.jpg": _unit(5)}
    nonmated = []
    for k in range(10):
        x = 0.05 + 0.1 * k
        rel = f"N{k}/N{k}_0001.jpg"
        e[rel] = x * _unit(0) + np.sqrt(1 - x * x) * _unit(7)
        nonmated.append(rel)
    nonmated.append("Z/Z_0001.jpg")                       # no face
    enrol = ["A/A_0001.jpg", "B/B_0001.jpg", "C/C_0001.jpg", "D/D_0001.jpg", "E/E_0001.jpg"]
    mated = ["A/A_0002.jpg", "B/B_0002.jpg", "C/C_0002.jpg", "D/D_0002.jpg", "E/E_0002.jpg"]
    return build_searches(e, enrol, mated, nonmated, "cosine")


def test_build_searches_shapes_and_missing_faces():
    s = _toy()
    assert s.scores.shape == (16, 4) and s.enrolled_ids.tolist() == ["A", "B", "C", "D"]
    assert s.mated.sum() == 5 and np.isnan(s.scores[3]).all() and np.isnan(s.scores[-1]).all()
    assert s.scores[1, 1] == pytest.approx(0.8)


def test_threshold_at_fpir_counts_exactly():
    nm = np.array([0.05, 0.95, 0.15, 0.85, 0.25, 0.75, 0.35, 0.65, 0.45, 0.55, -np.inf])
    t = threshold_at_fpir(nm, 0.1)           # floor(1.1) = 1 impostor may pass: only 0.95
    assert 0.85 < t < 0.850001 and np.mean(nm >= t) == pytest.approx(1 / 11)
    t = threshold_at_fpir(nm, 0.0)
    assert np.mean(nm >= t) == 0 and t > 0.95
    assert threshold_at_fpir(nm, 1.0) == -np.inf


def test_fnir_fpir_known_answers():
    s = _toy()
    # t = 0.5: A2 (1.0) and B2 (0.8) are hits; C2 wrong person, D2 no face, E2 not enrolled -> 3 misses of 5
    assert fnir_fpir(s, 0.5) == pytest.approx((3 / 5, 5 / 11))
    assert fnir_fpir(s, 0.9) == pytest.approx((4 / 5, 1 / 11))
    assert fnir_fpir(s, -np.inf) == pytest.approx((3 / 5, 10 / 11))   # the no-face impostor never passes


def test_evaluate_openset_report():
    r = evaluate_openset(_toy(), fpirs=(0.1, 0.3, 0.0))
    assert (r["mated"], r["nonmated"], r["enrolled"]) == (5, 11, 4)
    assert (r["mated_without_face"], r["nonmated_without_face"]) == (1, 1)
    assert r["rank1"] == pytest.approx(2 / 5)
    # FPIR 0.1 -> 1 of 11 impostors may pass -> t just above 0.85 -> only A2 is a hit
    assert r["at_fpir"]["0.1"]["fnir"] == pytest.approx(4 / 5)
    assert r["at_fpir"]["0.1"]["fpir"] == pytest.approx(1 / 11)
    assert r["at_fpir"]["0.1"]["threshold"] == pytest.approx(0.85, abs=1e-6)
    # FPIR 0.3 -> floor(3.3) = 3 may pass -> t just above 0.65 -> A2 and B2 hit
    assert r["at_fpir"]["0.3"]["fnir"] == pytest.approx(3 / 5)
    assert r["at_fpir"]["0.3"]["fpir"] == pytest.approx(3 / 11)
    assert r["at_fpir"]["0"]["fpir"] == 0 and r["at_fpir"]["0"]["fnir"] == pytest.approx(4 / 5)


def test_euclidean_metric_uses_negative_distance():
    e = {"A/A_0001.jpg": np.zeros(2), "B/B_0001.jpg": np.array([1.0, 0]), "A/A_0002.jpg": np.array([0.1, 0]),
         "N/N_0001.jpg": np.array([0, 5.0])}
    s = build_searches(e, ["A/A_0001.jpg", "B/B_0001.jpg"], ["A/A_0002.jpg"], ["N/N_0001.jpg"], "euclidean")
    np.testing.assert_allclose(s.scores, [[-0.1, -0.9], [-5, -np.sqrt(26)]], rtol=1e-6)
    assert fnir_fpir(s, -0.6) == (0.0, 0.0)


def _complementary(seed=0, people=10, impostors=60):
    """Two embedders' score matrices: a recognises the first half of the mated probes (right score 6),
    b the second half; every other score is N(0, 1) noise, with identical statistics in a and b."""
    rng = np.random.default_rng(seed)
    enrolled = np.array([f"P{i:02d}" for i in range(people)])
    probe_ids = np.concatenate([enrolled, [f"X{i:02d}" for i in range(impostors)]])
    mated = np.arange(len(probe_ids)) < people
    noise = rng.standard_normal((2, len(probe_ids), people)).astype(np.float32)
    a, b = noise[0].copy(), noise[1].copy()
    half = people // 2
    a[np.arange(half), np.arange(half)] = 6
    b[np.arange(half, people), np.arange(half, people)] = 6
    return Searches(a, probe_ids, enrolled, mated), Searches(b, probe_ids, enrolled, mated)


def test_fuse_endpoints_are_the_z_scored_inputs():
    a, b = _complementary()
    sa, sb = znorm_stats(a), znorm_stats(b)
    np.testing.assert_allclose(fuse(a, b, 1.0, sa, sb).scores, (a.scores - sa[0]) / sa[1], rtol=1e-5)
    np.testing.assert_allclose(fuse(a, b, 0.0, sa, sb).scores, (b.scores - sb[0]) / sb[1], rtol=1e-5)
    assert abs(sa[0]) < 0.3 and 0.7 < sa[1] < 1.3     # impostor rows are N(0, 1)
    with pytest.raises(ValueError):
        fuse(a, subset(b, {"P00", "X00"}), 0.5, sa, sb)


def test_pick_fusion_weight_finds_the_complementary_mix():
    a, b = _complementary()
    w, table = pick_fusion_weight(a, b, fpir=0.05)
    assert table[1.0] == pytest.approx(0.5) and table[0.0] == pytest.approx(0.5)   # each alone misses half
    assert w == 0.5 and table[0.5] == 0.0


def test_pick_fusion_weight_prefers_the_good_embedder():
    a, b = _complementary()
    scores = a.scores.copy()
    scores[np.arange(10), np.arange(10)] = 6          # a now recognises every mated probe
    good = a.with_scores(scores)
    w, table = pick_fusion_weight(good, b, fpir=0.05)
    assert table[1.0] == 0.0 and w >= 0.5 and table[w] == 0.0


def test_split_and_fusion_report():
    a, b = _complementary(people=20, impostors=200)
    even, odd = split_people(a)
    assert not even & odd and len(even | odd) == 220
    half = subset(a, even)
    assert set(half.enrolled_ids) <= even and set(half.probe_ids) <= even and half.mated.sum() == 10
    r = fusion_report(a, b, fpirs=(0.05,))
    for side in ("even->odd", "odd->even"):
        assert 0.2 <= r[side]["w"] <= 0.8
        assert r[side]["fused"]["at_fpir"]["0.05"]["fnir"] < r[side]["a"]["at_fpir"]["0.05"]["fnir"]
        assert r[side]["fused"]["at_fpir"]["0.05"]["fnir"] < r[side]["b"]["at_fpir"]["0.05"]["fnir"]


def test_det_curve_matches_fnir_fpir_at_every_point(tmp_path):
    from facegate.edge_runtime.eval.openset import best_candidates, det_curve, plot_det

    a, _ = _complementary(people=20, impostors=200)
    fpir, fnir = det_curve(a)
    assert len(fpir) == 200 and fpir[0] == 0 and np.all(np.diff(fpir) > 0) and np.all(np.diff(fnir) <= 1e-12)
    best, _ = best_candidates(a.scores)
    imp = np.sort(best[~a.mated])[::-1]
    for k in (0, 5, 50, 199):
        want_fnir, want_fpir = fnir_fpir(a, float(np.nextafter(imp[k], np.inf)))
        assert fpir[k] == pytest.approx(want_fpir) and fnir[k] == pytest.approx(want_fnir)
    plot_det({"a": (fpir, fnir)}, tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
