"""1:N search: exact agreement with a plain loop, unknowns, nobody enrolled, speed."""
import math

import numpy as np
import pytest

from facegate.edge_runtime.eval.speed import bench_search
from facegate.edge_runtime.matching import Match, TemplateGallery, similarity


def _loop_nearest(names, matrix, probe, metric):
    """Reference: best template per person, then best and second-best person, with Python loops."""
    s = similarity(probe[None], matrix, metric)[0]
    best = {}
    for n, v in zip(names, s):
        best[n] = max(best.get(n, -np.inf), float(v))
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    return ranked[0][0], ranked[0][1], ranked[1][1] if len(ranked) > 1 else -np.inf


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_a_plain_loop(metric):
    rng = np.random.default_rng(0)
    pids = rng.integers(0, 7, size=40)                 # people interleaved, unequal template counts
    names = tuple(f"person{p}" for p in pids)
    matrix = rng.standard_normal((40, 16)).astype(np.float32) * rng.uniform(0.5, 3, (40, 1)).astype(np.float32)
    g = TemplateGallery(names, tuple(int(p) for p in pids), matrix, metric)
    probes = rng.standard_normal((25, 16)).astype(np.float32)
    for probe, m in zip(probes, g.nearest(probes)):
        name, score, second = _loop_nearest(names, matrix, probe, metric)
        assert m.name == m.candidate == name
        assert m.person_id == int(name[6:])
        assert m.score == pytest.approx(score, abs=1e-4)
        assert m.second == pytest.approx(second, abs=1e-4)
        assert m.score >= m.second


def test_finds_the_enrolled_person_and_thresholds():
    rng = np.random.default_rng(1)
    people = rng.standard_normal((3, 32)).astype(np.float32)
    matrix = np.repeat(people, 2, axis=0) + 0.05 * rng.standard_normal((6, 32)).astype(np.float32)
    g = TemplateGallery(("a", "a", "b", "b", "c", "c"), (1, 1, 2, 2, 3, 3), matrix, "cosine")
    probes = np.stack([people[1] * 5.0, people[2], -people[0]])      # scale does not matter for cosine
    m = g.nearest(probes, threshold=0.5)
    assert [x.name for x in m] == ["b", "c", None]
    assert m[0].score > 0.99 and m[1].score > 0.99
    assert m[2].candidate is not None and m[2].score < 0.5 and m[2].person_id is None
    assert [x.name for x in g.nearest(probes[0])] == ["b"]            # a single (D,) probe
    assert g.people == ("a", "b", "c") and len(g) == 6 and g.dim == 32


def test_euclidean_scores_are_minus_distances():
    g = TemplateGallery(("a", "b"), (1, 2), np.array([[0, 0], [3, 4]], np.float32), "euclidean")
    (m,) = g.nearest(np.array([[3, 0]], np.float32))
    assert (m.name, m.score, m.second) == ("a", pytest.approx(-3.0), pytest.approx(-4.0))
    (m,) = g.nearest(np.array([[3, 4]], np.float32))
    assert m.name == "b" and m.score == pytest.approx(0.0, abs=1e-3)
    # the same templates searched with the other metric gives cosine scores
    (m,) = g.nearest(np.array([[6, 8]], np.float32), metric="cosine")
    assert m.name == "b" and m.score == pytest.approx(1.0)


def test_empty_and_single_person_galleries():
    empty = TemplateGallery.empty("cosine")
    ms = empty.nearest(np.ones((2, 128), np.float32), threshold=0.3)
    assert ms == [Match(None, -math.inf, -math.inf)] * 2
    one = TemplateGallery(("solo",), (5,), np.ones((1, 4), np.float32))
    (m,) = one.nearest(np.ones(4, np.float32))
    assert m.name == "solo" and m.second == -math.inf


def test_rejects_mismatched_inputs():
    g = TemplateGallery(("a",), (1,), np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="different embedders"):
        g.nearest(np.ones((1, 8), np.float32))
    with pytest.raises(ValueError, match="len\\(names\\)"):
        TemplateGallery(("a", "b"), (1,), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="several names"):
        TemplateGallery(("a", "b"), (1, 1), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        TemplateGallery(("a",), (1,), np.full((1, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="metric"):
        TemplateGallery(("a",), (1,), np.ones((1, 4), np.float32), "manhattan")


def test_search_against_100k_templates_is_fast():
    report = bench_search(sizes=(1000, 100_000), repeats=15)
    rows = {r["templates"]: r for r in report["rows"]}
    assert report["dim"] == 128 and rows[100_000]["people"] == 20_000
    assert 0 < rows[1000]["median_ms"] < rows[100_000]["median_ms"]
    assert rows[100_000]["median_ms"] < 50.0, rows        # a few ms on a desktop core; slack for a busy CI box
