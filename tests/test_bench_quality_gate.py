"""The LFW benches (`bench openset`, `bench lfw`) apply the shipped bundle's quality gate as the door does."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle, read_manifest
from facegate.edge_runtime.eval.lfw_eval import QualityGate, apply_quality_gate, embed_images
from facegate.edge_runtime.recognizer import quality_gate


@pytest.fixture(scope="module")
def shipped():
    """The shipped bundle opened with its fusion (the embedder its quality model reads)."""
    m = read_manifest(default_bundle_dir())
    if m.quality is None:
        pytest.skip("the shipped bundle has no quality model")
    return load_bundle(embedder=m.fusion.name, threads=1)


def _args(**kw):
    return SimpleNamespace(**{"no_quality_gate": False, "fp32": False, "bundle": None, "threads": 1, **kw})


def test_the_gate_is_the_bundles(shipped):
    """quality_gate_for gives the shipped model and threshold on the fusion, and says why when there is none."""
    from facegate.bench import quality_gate_for

    m = shipped.manifest
    gate, note = quality_gate_for(_args(), {m.fusion.name: None, "sface": None})
    assert gate.threshold == m.quality.threshold and gate.features_of == m.fusion.name
    assert gate.model.contract == shipped.quality.contract and m.id in note
    for args, embs, why in ((_args(no_quality_gate=True), {m.fusion.name: None}, "--no-quality-gate"),
                            (_args(fp32=True), {m.fusion.name: None}, "--fp32"),
                            (_args(), {"sface": None}, "single embedder")):
        gate, note = quality_gate_for(args, embs)
        assert gate is None and why in note


def test_refused_faces_leave_every_table(shipped):
    """Synthetic fused embeddings through the real quality model: those below the threshold are dropped from
    every embedder's table and reported with their quality; the rest are kept untouched."""
    dims = shipped.manifest.fusion.fusion.dims
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(40, sum(dims))).astype(np.float32) * rng.uniform(0.05, 3, size=(40, 1)).astype(np.float32)
    keys = [f"P{i:02d}/P{i:02d}_0001.jpg" for i in range(40)]
    q = shipped.quality.score(vecs)
    thr = float(np.median(q))
    name = shipped.manifest.fusion.name
    tables = {name: dict(zip(keys, vecs)), "sface": {k: v[:dims[0]] for k, v in zip(keys, vecs)}}
    low = apply_quality_gate(tables, QualityGate(shipped.quality, thr, name))
    below = {k for k, v in zip(keys, q) if v < thr}
    assert set(low) == below and len(below) == 20
    assert all(low[k] == pytest.approx(float(v)) for k, v in zip(keys, q) if k in below)
    for t in tables.values():
        assert set(t) == set(keys) - below
    assert np.array_equal(tables[name][keys[int(np.argmax(q))]], vecs[int(np.argmax(q))])
    np.testing.assert_array_equal(quality_gate(shipped.quality, thr, vecs)[1], q >= thr)


def test_a_degraded_photo_is_unusable_in_the_openset_protocol(shipped, data_dir, tmp_path):
    """A real LFW face shrunk to 20 px and back: the detector still finds it, the shipped quality model scores it
    below the threshold, so with the gate the mated probe is a miss (as at the door) and without it a hit."""
    from facegate.edge_runtime.eval.openset import build_searches, evaluate_openset, openset_relpaths

    src = sorted((data_dir / "lfw/Colin_Powell").glob("*.jpg"))[:2]
    for person, i in (("Colin_Powell", 0), ("Colin_Powell", 1), ("Other_Person", 1)):
        d = tmp_path / "lfw" / person
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src[i], d / f"{person}_{i + 1:04d}.jpg")
    bad = tmp_path / "lfw/Colin_Powell/Colin_Powell_0002.jpg"
    img = cv2.imread(str(bad))
    cv2.imwrite(str(bad), cv2.resize(cv2.resize(img, (20, 20), interpolation=cv2.INTER_AREA), img.shape[1::-1]))
    lfw = tmp_path / "lfw"
    enrol, mated, nonmated = openset_relpaths(lfw)
    assert mated == ["Colin_Powell/Colin_Powell_0002.jpg"]
    m = shipped.manifest
    embs = {m.fusion.name: shipped.embedder}
    rel = sorted(enrol + mated + nonmated)
    gate = QualityGate(shipped.quality, m.quality.threshold, m.fusion.name)
    gated = embed_images(lfw, rel, shipped.detector, embs, progress=False, gate=gate)
    plain = embed_images(lfw, rel, shipped.detector, embs, progress=False)
    assert plain["no_face"] == gated["no_face"] == [] and plain["low_quality"] == {}
    assert list(gated["low_quality"]) == mated and gated["low_quality"][mated[0]] < m.quality.threshold
    assert set(gated["embeddings"][m.fusion.name]) == set(rel) - set(mated)
    fused = shipped.embedder.metric
    with_gate = evaluate_openset(build_searches(gated["embeddings"][m.fusion.name], enrol, mated, nonmated, fused))
    assert with_gate["mated_without_face"] == 1 and with_gate["rank1"] == 0
    without = evaluate_openset(build_searches(plain["embeddings"][m.fusion.name], enrol, mated, nonmated, fused))
    assert without["mated_without_face"] == 0


def test_cohort_comparison_counts_missing_photos_as_the_door_does():
    """Refused photos are absent from the table: a missing probe is a miss, a missing stranger cannot open, a
    missing template enrolls nobody; with nothing missing the numbers are those of the full table."""
    from facegate.edge_runtime.eval.door_eval import cohort_comparison

    rng = np.random.default_rng(1)
    centre = {f"P{i:02d}": rng.normal(size=16) for i in range(60)}
    table, evaluation, calibration = {}, {}, {}
    for i, (p, c) in enumerate(centre.items()):
        rels = [f"{p}/{p}_{k:04d}.jpg" for k in range(1, 4 if i < 40 else 2)]
        (evaluation if i < 50 else calibration)[p] = rels
        for r in rels:
            v = c + 0.3 * rng.normal(size=16)
            table[r] = (v / np.linalg.norm(v)).astype(np.float32)
    full = cohort_comparison(table, "cosine", calibration, evaluation, sizes=(10,), rates=(0.1,))
    assert full["N=10"]["0.1"]["raw"] == 0.0
    # every enrolled person's first probe missing: 10 of their 20 genuine attempts are misses
    chosen = [str(p) for p in np.random.default_rng(0).permutation(sorted(p for p, v in evaluation.items()
                                                                          if len(v) >= 2))[:10]]
    missing = {evaluation[p][1] for p in chosen} | {evaluation[chosen[0]][0]}
    part = cohort_comparison({k: v for k, v in table.items() if k not in missing}, "cosine", calibration,
                             evaluation, sizes=(10,), rates=(0.1,))
    assert part["N=10"]["0.1"]["raw"] == pytest.approx(11 / 20)


def test_the_door_report_says_what_the_gate_refused():
    from facegate.bench import _with_gate

    md = "# The door\n\nGenerated by ...\n\nPeople: ...\n\n## fusion\n"
    g = {"applied": True, "threshold": 0.0, "note": "", "refused": {"calibration": 0, "evaluation": 1},
         "refused_photos": {"A_B/A_B_0001.jpg": -0.5}}
    out = _with_gate(md, g).split("\n\n")
    assert out[:2] == ["# The door", "Generated by ..."] and out[3:] == ["People: ...", "## fusion\n"]
    assert "below 0 is unusable" in out[2] and "A_B/A_B_0001.jpg (-0.50)" in out[2]
    off = _with_gate(md, {"applied": False, "note": "quality gate off (--no-quality-gate)"}).split("\n\n")
    assert off[2] == "Quality gate off (--no-quality-gate)."
