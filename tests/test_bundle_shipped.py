"""The int8 bundle shipped as package data: verified, accurate, and reproducible by build-bundle."""
import json

import pytest

from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle, read_manifest
from facegate.edge_runtime.contract import DETECTOR, EMBEDDERS
from facegate.edge_runtime.eval.lfw_eval import evaluate_lfw
from facegate.export.bundle_write import QUALITY_LICENCE


def test_shipped_bundle_is_complete_and_verified():
    from facegate.edge_runtime.embedding import FusedEmbedder

    root = default_bundle_dir()
    m = read_manifest(root)
    assert set(m.embedders) == {"sface", "dlib_resnet"} and m.default_embedder == "sface+dlib_resnet"
    b = load_bundle()                                    # checks every sha256
    assert b.detector.contract == DETECTOR
    assert isinstance(b.embedder, FusedEmbedder)
    assert [p.contract for p in b.embedder.parts] == [EMBEDDERS["sface"], EMBEDDERS["dlib_resnet"]]
    for name, e in m.embedders.items():
        assert e.target_far == 1e-3 and 0 <= e.achieved_far <= 1e-3 and e.precision == "int8"
    f = m.fusion
    assert f.target_far == 1e-3 and 0 < f.achieved_far <= 1e-3 and f.precision == "int8+int8"
    assert 0.5 <= f.fusion.weights[0] <= 0.9               # SFace carries most of the weight
    report = json.loads((root / "calibration_report.json").read_text())
    assert set(report["decisions"]) == {"retinaface_mnet025", "sface", "dlib_resnet", "default_embedder"}
    assert 0.3 < m.embedders["sface"].threshold < 0.4
    assert report["models"]["sface"]["int8"]["lfw_accuracy"] >= 0.994
    fused = report["fusion"]
    # the numbers the default was chosen by: fewer open-set misses than SFace alone, on held-out people
    held = fused["openset_heldout_fnir_at_fpir_0.01"]
    assert held["sface+dlib_resnet"] < held["sface"] < held["dlib_resnet"]
    lfw_int8, lfw_fp32 = fused["lfw"]["int8"]["fused"]["accuracy"], fused["lfw"]["fp32"]["fused"]["accuracy"]
    assert lfw_int8 >= 0.994 and abs(lfw_int8 - lfw_fp32) <= 0.002
    assert fused["latency_ms_2t"]["sface+dlib_resnet"] <= 20.0
    assert m.raw["licences"] == {"retinaface_mnet025": "MIT", "sface": "Apache-2.0",
                                 "dlib_resnet": "public domain (dlib-models README; CC0-1.0)",
                                 "face_quality": QUALITY_LICENCE}


def test_docs_name_the_shipped_bundle_by_its_id():
    """docs/bundle.md quotes the id the shipped bundle.json gives (bundle_id), which templates carry."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "bundle.md"
    assert f"bundle id `{read_manifest(default_bundle_dir()).id}`" in docs.read_text()


def test_shipped_bundle_accuracy_on_lfw_subset(data_dir):
    b = load_bundle()
    r = evaluate_lfw(data_dir / "lfw", b.detector, {"fused": b.embedder}, progress=False, limit=15)
    assert r["results"]["fused"]["accuracy"] >= 0.98
    assert not r["no_face"]


@pytest.mark.slow
def test_rebuild_matches_shipped_contract_and_accuracy(data_dir, tmp_path):
    pytest.importorskip("torch")
    from facegate.export.bundle_build import CalibrationSettings, build_bundle

    build_bundle(tmp_path / "bundle", tmp_path / "work", data_dir,
                 CalibrationSettings(limit=24, lfw_limit=10, wider_limit=4))
    shipped, rebuilt = read_manifest(default_bundle_dir()), read_manifest(tmp_path / "bundle")
    assert rebuilt.raw["contracts"] == shipped.raw["contracts"]
    assert set(rebuilt.embedders) == set(shipped.embedders) and rebuilt.fusion.name == shipped.fusion.name
    assert rebuilt.fusion.fusion.dims == shipped.fusion.fusion.dims
    for a, b in zip(rebuilt.fusion.fusion.means + rebuilt.fusion.fusion.stds,
                    shipped.fusion.fusion.means + shipped.fusion.fusion.stds):
        assert abs(a - b) < 0.02                   # z-statistics from a tenth of the calibration people
    for name in shipped.choices:
        accs = []
        for root in (default_bundle_dir(), tmp_path / "bundle"):
            b = load_bundle(root, embedder=name)
            accs.append(evaluate_lfw(data_dir / "lfw", b.detector, {name: b.embedder}, progress=False,
                                     limit=10)["results"][name]["accuracy"])
        assert abs(accs[0] - accs[1]) <= 0.01, (name, accs)


def test_main_job_on_the_shipped_bundle(data_dir, tmp_path):
    """The README's main job: enroll from the still, run on the clip with the default bundle."""
    from facegate.main import main

    clips = data_dir / "videos/face_recognition"
    home, events = tmp_path / "home", tmp_path / "events.jsonl"
    assert main(["enroll", "--home", str(home), "--name", "Lin-Manuel Miranda",
                 str(clips / "lin-manuel-miranda.png")]) == 0
    assert main(["run", "--home", str(home), "--source", str(clips / "short_hamilton_clip.mp4"),
                 "--events", str(events)]) == 0
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    opens = [r for r in rows if r["decision"] == "open"]
    assert opens and {r["person"] for r in opens} == {"Lin-Manuel Miranda"}


def test_bench_wider_on_the_shipped_bundle(data_dir, tmp_path):
    from facegate.main import main

    out = tmp_path / "wider.json"
    assert main(["bench", "wider", "--limit", "4", "--no-peer", "--min-face", "40", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["backend"].startswith("bundle") and r["min_face"] == 40 and r["max_side"] == 640
    assert r["facegate"]["images"] == 4 and r["facegate"]["faces"] > 0
    assert 0.5 < r["facegate"]["ap"] <= 1.0
