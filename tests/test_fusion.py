"""Score fusion in the runtime: the maths, the fused template search, the fused embedder's chips and crops."""
import cv2
import numpy as np
import pytest

from facegate.edge_runtime.contract import DLIB_RESNET, SFACE
from facegate.edge_runtime.embedding import FaceEmbedder, FusedEmbedder
from facegate.edge_runtime.eval.openset import impostor_stats, pick_fusion_weight
from facegate.edge_runtime.face import Face
from facegate.edge_runtime.fusion import FusionError, ScoreFusion
from facegate.edge_runtime.matching import TemplateGallery, pair_similarity, similarity

F = ScoreFusion(("sface", "dlib_resnet"), ("cosine", "euclidean"), (4, 3), (0.7, 0.3), (0.1, -0.9), (0.05, 0.1))


def _manual(a, b):
    """The fused score of two fused vectors, written out."""
    cos = a[:4] @ b[:4] / np.linalg.norm(a[:4]) / np.linalg.norm(b[:4])
    dist = np.linalg.norm(a[4:] - b[4:])
    return 0.7 * (cos - 0.1) / 0.05 + 0.3 * (-dist + 0.9) / 0.1


def test_fused_similarity_is_the_weighted_sum_of_z_scores():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((6, 7)).astype(np.float32)
    s = similarity(a, b, F)
    assert s.shape == (5, 6) and s.dtype == np.float32
    want = np.array([[_manual(x, y) for y in b] for x in a])
    np.testing.assert_allclose(s, want, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(pair_similarity(a, b[:5], F), np.diag(want[:, :5]), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="7 values"):
        similarity(a[:, :6], b[:, :6], F)


@pytest.mark.parametrize("change, message", [
    (dict(weights=(0.7, 0.4)), "sum to 1"),
    (dict(stds=(0.05, 0.0)), "std > 0"),
    (dict(metrics=("cosine", "hamming")), "unknown metric"),
    (dict(dims=(4,)), "1 dims"),
])
def test_bad_fusions_are_refused(change, message):
    fields = dict(parts=F.parts, metrics=F.metrics, dims=F.dims, weights=F.weights, means=F.means, stds=F.stds)
    with pytest.raises(FusionError, match=message):
        ScoreFusion(**{**fields, **change})
    with pytest.raises(FusionError, match="missing or bad field"):
        ScoreFusion.from_json({"parts": ["a", "b"]})
    assert ScoreFusion.from_json(F.to_json()) == F and F.name == "sface+dlib_resnet" and F.embedding_size == 7


def test_fused_search_takes_the_best_fused_template_per_person():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((9, 7)).astype(np.float32)
    ids = (3, 3, 5, 5, 5, 8, 8, 9, 9)
    g = TemplateGallery(tuple(f"p{i}" for i in ids), ids, m, F)
    probes = rng.standard_normal((4, 7)).astype(np.float32)
    per_template = similarity(probes, m, F)
    want = np.stack([per_template[:, np.array(ids) == i].max(axis=1) for i in (3, 5, 8, 9)], axis=1)
    np.testing.assert_allclose(g.person_scores(probes), want, rtol=1e-4, atol=1e-3)
    best = g.nearest(probes, threshold=float(np.median(want.max(axis=1))))
    assert [b.candidate for b in best] == [f"p{(3, 5, 8, 9)[j]}" for j in want.argmax(axis=1)]
    assert sum(b.name is None for b in best) == 2               # the two below the median threshold
    with pytest.raises(ValueError, match="fused templates"):
        TemplateGallery(("a",), (1,), np.zeros((1, 128), np.float32), F)


def test_fusion_decides_where_the_embedders_disagree():
    """Part one (weight 0.7) says A, part two says B: the fused search follows the stronger evidence."""
    f = ScoreFusion(("x", "y"), ("cosine", "cosine"), (2, 2), (0.7, 0.3), (0.0, 0.0), (0.1, 0.1))
    a, b = [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]         # A and B: orthogonal in both parts
    g = TemplateGallery(("A", "B"), (1, 2), np.array([a, b], np.float32), f)
    probe_y_b = np.array([0.9, 0.1, 0.99, 0.1], np.float32)     # part x near A, part y near B
    assert g.nearest(probe_y_b)[0].candidate == "A"              # 0.7 on x outweighs 0.3 on y
    g2 = TemplateGallery(("A", "B"), (1, 2), np.array([a, b], np.float32),
                 ScoreFusion(("x", "y"), ("cosine", "cosine"), (2, 2), (0.2, 0.8), (0.0, 0.0), (0.1, 0.1)))
    assert g2.nearest(probe_y_b)[0].candidate == "B"


def _fake(contract, value):
    """A FaceEmbedder whose embedding is the mean chip value repeated (records the chip sizes it saw)."""
    seen = []

    def run(x):
        seen.append(x.shape)
        return [np.repeat(x.reshape(len(x), -1).mean(axis=1, keepdims=True), contract.embedding_size, 1) + value]
    e = FaceEmbedder(run, contract)
    e.seen = seen
    return e


def _face():
    lm = np.array([[110, 120], [150, 120], [130, 145], [113, 165], [147, 165]], np.float32)
    return Face(np.array([90, 90, 170, 190], np.float32), lm, 0.99)


def _fusion_for(parts):
    return ScoreFusion(tuple(p.name for p in parts), tuple(p.metric for p in parts),
                       tuple(p.embedding_size for p in parts), (0.6, 0.4), (0.0, -1.0), (0.1, 0.1))


def test_fused_embedder_aligns_each_part_to_its_own_template_and_size():
    img = np.random.default_rng(2).integers(0, 255, (240, 260, 3), np.uint8)
    parts = [_fake(SFACE, 0.0), _fake(DLIB_RESNET, 1000.0)]
    fe = FusedEmbedder(parts, _fusion_for(parts))
    chips = fe.align_all(img, _face())
    assert [c.shape for c in chips] == [(112, 112, 3), (150, 150, 3)]
    np.testing.assert_array_equal(chips[0], fe.align(img, _face()))
    np.testing.assert_array_equal(chips[1], parts[1].align(img, _face()))
    v = fe.embed_sets([chips, chips])
    assert v.shape == (2, 256) and fe.embedding_size == 256 and fe.metric.name == "sface+dlib_resnet"
    assert parts[0].seen[-1] == (2, 3, 112, 112) and parts[1].seen[-1] == (2, 3, 150, 150)
    assert (v[:, :128] < 10).all() and (v[:, 128:] > 999).all()      # each slice from its own part
    with pytest.raises(ValueError, match="needs embedders"):
        FusedEmbedder(parts[::-1], _fusion_for(parts))


def test_kept_crop_strip_gives_back_every_chip_through_jpeg():
    rng = np.random.default_rng(3)
    parts = [_fake(SFACE, 0.0), _fake(DLIB_RESNET, 0.0)]
    fe = FusedEmbedder(parts, _fusion_for(parts))
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (150, 150, 3), np.uint8), (0, 0), 3)
    chips = (np.ascontiguousarray(smooth[:112, :112]), np.ascontiguousarray(smooth[:, ::-1]))
    strip = fe.kept_crop(chips)
    assert strip.shape == (150, 262, 3) and not strip[112:, 150:].any()     # dlib's 150 chip first
    np.testing.assert_array_equal(strip[:, :150], chips[1])
    back = fe.chips_from_crop(strip)
    for a, b in zip(back, chips):
        np.testing.assert_array_equal(a, b)
    ok, jpg = cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, 90])
    again = fe.chips_from_crop(cv2.imdecode(jpg, cv2.IMREAD_COLOR))
    for a, b in zip(again, chips):          # JPEG: a little loss, chips stay apart
        assert np.abs(a.astype(int) - b).mean() < 2.0
    assert fe.chips_from_crop(chips[0]) is None and parts[0].chips_from_crop(chips[1]) is None
    np.testing.assert_array_equal(parts[0].chips_from_crop(chips[0])[0], chips[0])


def test_impostor_stats_use_only_pairs_of_different_people():
    table = {"A/A_1.jpg": np.array([1.0, 0.0]), "A/A_2.jpg": np.array([1.0, 0.0]),
             "B/B_1.jpg": np.array([0.0, 1.0]), "C/C_1.jpg": np.array([-1.0, 0.0])}
    mean, std, n = impostor_stats(table, sorted(table) + ["D/D_1.jpg"], "cosine")
    # different-person pairs: A1-B, A2-B (0), A1-C, A2-C (-1), B-C (0); the A1-A2 pair (1) is left out
    assert n == 5 and mean == pytest.approx(-0.4) and std == pytest.approx(np.std([0, 0, -1, -1, 0]))
    with pytest.raises(ValueError, match="two people"):
        impostor_stats({"A/A_1.jpg": table["A/A_1.jpg"], "A/A_2.jpg": table["A/A_2.jpg"]},
                       ["A/A_1.jpg", "A/A_2.jpg"], "cosine")


def test_pick_fusion_weight_with_fixed_stats_uses_them():
    from facegate.edge_runtime.eval.openset import Searches
    rng = np.random.default_rng(4)
    s = rng.standard_normal((30, 10)).astype(np.float32)
    s[np.arange(10), np.arange(10)] = 6
    ids = np.array([f"P{i}" for i in range(10)] + [f"X{i}" for i in range(20)])
    a = Searches(s, ids, ids[:10], np.arange(30) < 10)
    b = a.with_scores(rng.standard_normal((30, 10)))
    w, table = pick_fusion_weight(a, b, fpir=0.05, stats=((0.0, 1.0), (0.0, 1.0)))
    assert table[1.0] == 0.0 and w >= 0.5


def test_default_embedder_is_the_lowest_miss_rate_within_the_latency_target():
    pytest.importorskip("onnx")
    from facegate.export.fusion_fit import choose_default

    held = {"sface": 0.0245, "dlib_resnet": 0.53, "sface+dlib_resnet": 0.0198}
    name, why = choose_default(held, {"sface": 6.9, "dlib_resnet": 3.8, "sface+dlib_resnet": 8.6})
    assert name == "sface+dlib_resnet" and "1.98%" in why and "none met it" not in why
    name, _ = choose_default(held, {"sface": 6.9, "dlib_resnet": 3.8, "sface+dlib_resnet": 25.0})
    assert name == "sface"                                   # the fusion misses the 20 ms target
    name, why = choose_default(held, {"sface": 30.0, "dlib_resnet": 30.0, "sface+dlib_resnet": 35.0})
    assert name == "sface+dlib_resnet" and "none met it" in why
