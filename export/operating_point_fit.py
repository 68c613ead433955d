"""The score models behind the door's operating point, measured when a bundle is built.

For every embedder of the bundle (and its fusion) the impostor and genuine scores of the LFW
calibration people (people who appear in no pair of pairs.txt, `eval.lfw.lfw_people`) are
measured and modelled (edge_runtime/operating_point.py): the runtime derives its threshold from
them, the target false-open rate and the number of enrolled templates. No evaluation person is used.
"""
from __future__ import annotations

from pathlib import Path

from facegate.edge_runtime.bundle import load_bundle, read_manifest
from facegate.edge_runtime.eval.lfw import lfw_people
from facegate.edge_runtime.eval.lfw_eval import embed_images
from facegate.edge_runtime.eval.openset import pair_scores
from facegate.edge_runtime.operating_point import ScoreModel, measure_model

from .bundle_write import update_manifest


def calibration_relpaths(data_dir: Path) -> list[str]:
    """The calibration people's photos (eval.lfw.lfw_people), relative to the LFW folder, in
    calibration_photos' order."""
    calibration, _ = lfw_people(Path(data_dir) / "lfw")
    return [r for photos in calibration.values() for r in photos]


def fit_score_models(bundle_dir: Path, data_dir: Path, progress: bool = True) -> dict[str, ScoreModel]:
    """{embedder or fusion name: ScoreModel} for every choice of the bundle, from the calibration people."""
    m = read_manifest(bundle_dir)
    opened = {n: load_bundle(bundle_dir, embedder=n) for n in m.choices}
    first = next(iter(opened.values()))
    rels = calibration_relpaths(data_dir)
    emb = embed_images(Path(data_dir) / "lfw", rels, first.detector, {n: b.embedder for n, b in opened.items()},
                       progress)["embeddings"]
    models = {}
    for name, b in opened.items():
        impostor, genuine = pair_scores(emb[name], rels, b.metric)
        models[name] = measure_model(name, impostor, genuine)
    return models


def record_score_models(bundle_dir: Path, data_dir: Path, progress: bool = True) -> dict[str, ScoreModel]:
    """Measure the score models and write them into the bundle's bundle.json ("score_models")."""
    models = fit_score_models(bundle_dir, data_dir, progress)
    update_manifest(bundle_dir, {"score_models": {n: sm.to_json() for n, sm in models.items()}})
    return models
