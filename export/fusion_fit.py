"""The bundle's score fusion, chosen by the numbers, and the default embedder it leads to.

For a bundle that carries SFace and dlib (each on its own graph, int8 where it earned it):
- z-statistics of each embedder: mean and std of the similarities of every pair of *different*
  people among the calibration images (LFW people in no pair of pairs.txt: never scored below);
- the weight: two-fold open-set search on LFW (`openset.py` protocol): on each half of the people
  the weight with the lowest FNIR at FPIR 1% is picked and measured on the other half; the bundle
  keeps the mean of the two picks;
- the threshold: the fused score at FAR 1e-3 on LFW pairs (as for a single embedder), with the
  10-fold accuracy of the fused score for the int8 graphs and for their fp32 forms;
- latency: detect + align + embed of one face in a 640x480 frame, 2 threads, live detector input,
  for each candidate, each in a fresh process on one shared thread pool (as `facegate run` runs).
The default embedder is the candidate with the lowest held-out FNIR at FPIR 1% within the latency
target.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.edge_runtime.bundle import load_bundle, read_manifest
from facegate.edge_runtime.config import DetectorConfig
from facegate.edge_runtime.contract import DETECTOR
from facegate.edge_runtime.eval.lfw import read_pairs
from facegate.edge_runtime.eval.lfw_eval import embed_images, pair_scores, scores_report
from facegate.edge_runtime.eval.openset import (
    Searches,
    build_searches,
    evaluate_openset,
    fuse,
    fusion_report,
    impostor_stats,
    openset_relpaths,
    person,
)
from facegate.edge_runtime.fusion import ScoreFusion
from facegate.edge_runtime.sessions import onnx_detector, onnx_embedder

from .bundle_write import set_fusion
from .operating_point_fit import calibration_relpaths

FUSION_PARTS = ("sface", "dlib_resnet")
WEIGHTS = tuple(np.round(np.linspace(0, 1, 21), 4))   # weight of the first part, step 0.05
MAX_LATENCY_MS = 20.0      # detect + align + embed, 2 threads, live detector input (issue target)


def choose_weight(a: Searches, b: Searches, stats_a, stats_b, weights=WEIGHTS) -> dict:
    """Two-fold weight choice at FPIR 1% with the bundle's fixed z-statistics (openset.fusion_report).

    Returns {"w": mean of the two picks, on the grid, "folds": fusion_report(...)}."""
    folds = fusion_report(a, b, stats=(stats_a, stats_b))
    step = float(weights[1] - weights[0])
    w = round(np.mean([f["w"] for f in folds.values()]) / step) * step
    return {"w": float(round(w, 4)), "folds": folds}


def lfw_reports(pairs: list, table: dict, fusion: ScoreFusion) -> dict:
    """{"fused": scores_report, part: scores_report, ...} on LFW pairs from {part: {relpath: embedding}}."""
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    scores = [pair_scores(pairs, table[n], m) for n, m in zip(fusion.parts, fusion.metrics)]
    return {"fused": scores_report(fusion.combine(scores), same, folds, fusion),
            **{n: scores_report(s, same, folds, m) for n, s, m in zip(fusion.parts, scores, fusion.metrics)}}


def choose_default(heldout: dict[str, float], latency: dict[str, float]) -> tuple[str, str]:
    """(name, why): the lowest held-out FNIR at FPIR 1% among candidates within MAX_LATENCY_MS (all of
    them, said so, when none is); ties go to the first listed."""
    fast = [n for n in heldout if latency[n] <= MAX_LATENCY_MS]
    choice = min(fast or heldout, key=lambda n: heldout[n])
    why = (f"{choice}: lowest open-set FNIR at FPIR 1% on held-out halves ("
           + ", ".join(f"{n} {heldout[n] * 100:.2f}%" for n in heldout) + "); detect + align + embed at 2 threads "
           + ", ".join(f"{n} {latency[n]:.1f} ms" for n in latency)
           + f" (target <= {MAX_LATENCY_MS:.0f} ms" + ("" if fast else "; none met it") + ")")
    return choice, why


def _latency(bundle_dir: str, embedder: str, threads: int, max_side: int, repeats: int, photos: list) -> float:
    """Median detect + align + embed (ms) of `embedder` of the bundle, opened as the runtime opens it
    (one shared thread pool); run by `fresh_process`."""
    from facegate.edge_runtime.eval.speed import bench_stages
    from facegate.edge_runtime.sessions import share_thread_pool

    share_thread_pool(threads)
    b = load_bundle(bundle_dir, embedder=embedder, threads=threads, max_side=max_side)
    return bench_stages(b.detector, b.embedder, photos, threads=threads, repeats=repeats)["ms"]["detect+align+embed"]


def candidate_latency(bundle_dir: Path, names: list[str], data_dir: Path, repeats: int = 40) -> dict[str, float]:
    """{embedder or fusion name: median detect + align + embed ms at 2 threads}, each in a fresh process."""
    from facegate.edge_runtime.eval.speed import face_photos, fresh_process

    photos, side = face_photos(data_dir), DetectorConfig().live_max_side
    return {n: fresh_process(_latency, str(bundle_dir), n, 2, side, repeats, photos) for n in names}


def fit_fusion(bundle_dir: Path, data_dir: Path, fp32: dict[str, Path] | None = None,
               lfw_limit: int | None = None, progress: bool = True,
               latency_repeats: int = 40) -> dict:
    """Measure and choose the fusion of the bundle's FUSION_PARTS; returns the "fusion" entry for bundle.json
    (ScoreFusion fields + threshold, target/achieved FAR, precision) and its report under "report".
    The entry is written into the bundle before the latency runs (so they open the fusion as the
    runtime does), with the default embedder left as it was; the caller records the chosen default.

    Args:
        fp32: {part: fp32 ONNX path} to report the fused LFW accuracy of the fp32 forms too.
        lfw_limit: quick runs: pairs per fold and class, and the open-set run on a matching subset.
    """
    data_dir = Path(data_dir)
    parts = {n: load_bundle(bundle_dir, embedder=n) for n in FUSION_PARTS}
    detector = parts[FUSION_PARTS[0]].detector
    embedders = {n: b.embedder for n, b in parts.items()}
    pairs, enrol, mated, nonmated, calib = fusion_photos(data_dir, lfw_limit)
    rels = sorted(set(enrol) | set(mated) | set(nonmated) | {p.a for p in pairs} | {p.b for p in pairs}
                  | set(calib))
    emb = embed_images(data_dir / "lfw", rels, detector, embedders, progress)["embeddings"]
    stats, searches, pick, fusion = fit_weight(emb, calib, (enrol, mated, nonmated), embedders)
    lfw_report = lfw_variants(data_dir / "lfw", pairs, fusion, emb, detector, fp32, progress)
    fused_lfw = lfw_report["int8"]["fused"]
    openset, heldout = openset_results(searches, stats, pick, fusion)
    precision = "+".join(parts[n].embedder_entry.precision for n in FUSION_PARTS)
    entry = {**fusion.to_json(), "precision": precision, "threshold": fused_lfw["threshold_at_far_0.001"],
             "target_far": 1e-3, "achieved_far": fused_lfw["far_at_threshold_1e-3"]}
    # recorded now (default unchanged) so the fusion's latency is measured on the bundle as the runtime opens it
    set_fusion(bundle_dir, entry, read_manifest(bundle_dir).default_embedder)
    latency = candidate_latency(bundle_dir, list(heldout), data_dir, latency_repeats)
    choice, why = choose_default(heldout, latency)
    report = {"weight_choice": pick, "impostor_stats": {n: {"mean": s[0], "std": s[1], "pairs": s[2]}
                                                         for n, s in stats.items()},
              "calibration_images": len(calib), "lfw": lfw_report, "openset": openset,
              "openset_heldout_fnir_at_fpir_0.01": heldout, "latency_ms_2t": latency,
              "default_embedder": choice, "decision": why}
    return {**entry, "report": report}


def fusion_photos(data_dir: Path, lfw_limit: int | None) -> tuple[list, list[str], list[str], list[str], list[str]]:
    """(LFW pairs, open-set enrol, mated and non-mated relpaths, calibration relpaths) the fusion is fitted
    and scored on; lfw_limit (quick runs): that many pairs per fold and class, every 20th person of the
    open-set protocol and every 10th calibration photo."""
    lfw = Path(data_dir) / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    if lfw_limit:
        pairs = [p for i, p in enumerate(pairs) if i % 300 < lfw_limit]
    enrol, mated, nonmated = openset_relpaths(lfw)
    # z-statistics need to know who is who, so they come from the LFW calibration people even when the
    # int8 calibration used another folder
    calib = calibration_relpaths(data_dir)
    if lfw_limit:
        keep = {person(r) for r in enrol[::20]} | {person(r) for r in nonmated[::20]}
        enrol, mated, nonmated = ([r for r in x if person(r) in keep] for x in (enrol, mated, nonmated))
        calib = calib[::10]
    return pairs, enrol, mated, nonmated, calib


def fit_weight(emb: dict, calib: list[str], openset: tuple[list[str], list[str], list[str]],
               embedders: dict) -> tuple[dict, dict, dict, ScoreFusion]:
    """(impostor stats per part, open-set Searches per part, choose_weight result, the ScoreFusion) from
    {part: {relpath: float32 (D,)}} embeddings, the calibration relpaths (z-statistics) and the open-set
    (enrol, mated, nonmated) relpaths (weight)."""
    metrics = [embedders[n].metric for n in FUSION_PARTS]
    stats = {n: impostor_stats(emb[n], calib, m) for n, m in zip(FUSION_PARTS, metrics)}
    searches = {n: build_searches(emb[n], *openset, m) for n, m in zip(FUSION_PARTS, metrics)}
    a, b = (searches[n] for n in FUSION_PARTS)
    sa, sb = (stats[n][:2] for n in FUSION_PARTS)
    pick = choose_weight(a, b, sa, sb)
    w = pick["w"]
    fusion = ScoreFusion(FUSION_PARTS, tuple(metrics), tuple(e.embedding_size for e in embedders.values()),
                         (w, round(1 - w, 4)), (sa[0], sb[0]), (sa[1], sb[1]))
    return stats, searches, pick, fusion


def lfw_variants(lfw: Path, pairs: list, fusion: ScoreFusion, emb: dict, detector, fp32: dict[str, Path] | None,
                 progress: bool) -> dict:
    """{"int8": lfw_reports of the bundle's embeddings `emb`, "fp32": the same for the fp32 forms (only
    with `fp32`; its detector when fp32 has one, else `detector`)}."""
    variants = {"int8": emb}
    if fp32:
        det = onnx_detector(fp32[DETECTOR.name]) if DETECTOR.name in fp32 else detector
        variants["fp32"] = embed_images(lfw, sorted({p.a for p in pairs} | {p.b for p in pairs}), det,
                                        {n: onnx_embedder(fp32[n]) for n in FUSION_PARTS}, progress)["embeddings"]
    return {v: lfw_reports(pairs, table, fusion) for v, table in variants.items()}


def openset_results(searches: dict, stats: dict, pick: dict, fusion: ScoreFusion) -> tuple[dict, dict[str, float]]:
    """({part or fusion name: evaluate_openset}, {part or fusion name: held-out FNIR at FPIR 1%, the mean
    over choose_weight's two folds})."""
    a, b = (searches[n] for n in FUSION_PARTS)
    sa, sb = (stats[n][:2] for n in FUSION_PARTS)
    openset = {n: evaluate_openset(s) for n, s in searches.items()}
    openset[fusion.name] = evaluate_openset(fuse(a, b, pick["w"], sa, sb))
    heldout = {n: float(np.mean([f[k]["at_fpir"]["0.01"]["fnir"] for f in pick["folds"].values()]))
               for n, k in ((FUSION_PARTS[0], "a"), (FUSION_PARTS[1], "b"), (fusion.name, "fused"))}
    return openset, heldout
