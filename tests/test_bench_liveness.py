"""`facegate bench liveness` (edge_runtime/eval/liveness_eval.py): the ISO/IEC 30107-3 error rates on known
scores, and the bench end to end on a handful of frames and photos through the runtime path (the shipped
bundle with the MiniFASNet liveness models added in a temp folder), with a tiny `facegate train liveness`
run (resumed once) compared before/after. The weights are user-supplied data in
$FACEGATE_DATA/weights/minifasnet; the end-to-end test skips without them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facegate.edge_runtime.eval import liveness_eval as L


def test_threshold_at_bpcer_and_rates():
    bona_fide = np.arange(1, 101) / 100.0                 # 0.01 .. 1.00
    t = L.threshold_at_bpcer(bona_fide, 0.05)
    assert t == pytest.approx(0.06)                       # 5 of 100 below it
    assert L.bpcer(bona_fide, t) == {"rate": 0.05, "errors": 5, "of": 100}
    assert L.apcer([0.01, 0.059, 0.06, 0.5], t) == {"rate": 0.5, "errors": 2, "of": 4}
    assert L.apcer([], t)["rate"] is None
    with pytest.raises(ValueError):
        L.threshold_at_bpcer([], 0.05)


def test_attack_seeds_differ_and_repeat():
    a = L.attack_seed(0, "v.mp4#10", "print", 0)
    assert a == L.attack_seed(0, "v.mp4#10", "print", 0)
    assert len({a, L.attack_seed(0, "v.mp4#10", "screen", 0), L.attack_seed(0, "v.mp4#10", "print", 1),
                L.attack_seed(1, "v.mp4#10", "print", 0), L.attack_seed(0, "v.mp4#12", "print", 0)}) == 5


def _collector(scores: dict, bona: list[str], attacks: dict) -> L._Collector:
    """A collector with given names and, per scorer, scores: scores[name] = (bona fide list, {species: list})."""
    c = L._Collector(("print", "screen"), tuple(scores))
    c.bona_fide_names = list(bona)
    c.attack_names = {sp: list(v) for sp, v in attacks.items()}
    for n, (b, a) in scores.items():
        c.bona_fide[n] = list(b)
        c.attacks[n] = {sp: list(v) for sp, v in a.items()}
    return c


def test_union_scores_every_presentation_once_by_a_model_that_never_saw_it():
    # two videos; model 0 trained on "a.mp4" (scores b.mp4's presentations), model 1 on "b.mp4"
    bona = [f"a.mp4#{i}" for i in range(20)] + [f"b.mp4#{i}" for i in range(20)]
    att = {"print": [f"a.mp4#{i}#0" for i in range(20)] + [f"b.mp4#{i}#0" for i in range(20)],
           "screen": [f"a.mp4#{i}#0" for i in range(20)] + [f"b.mp4#{i}#0" for i in range(20)]}
    ramp = list(np.linspace(0.5, 1.0, 20))
    # ft0 is good on b.mp4 (attacks 0.1) and bad on a.mp4 (attacks 0.99); ft1 the other way round
    ft0 = (ramp + ramp, {sp: [0.99] * 20 + [0.1] * 20 for sp in att})
    ft1 = (ramp + ramp, {sp: [0.1] * 20 + [0.99] * 20 for sp in att})
    main = (ramp + ramp, {"print": [0.1] * 40, "screen": [0.1] * 39 + [0.99]})
    video = _collector({"main": main, "ft0": ft0, "ft1": ft1}, bona, att)
    lfw_bona = ["P/P_0001.jpg", "Q/Q_0001.jpg"]
    lfw = _collector({n: ([0.9, 0.9], {"print": [0.0, 0.0], "screen": [0.0, 0.0]}) for n in ("main", "ft0", "ft1")},
                     lfw_bona, {sp: [f"{r}#0" for r in lfw_bona] for sp in ("print", "screen")})
    masks = L.union_masks(video, lfw, ["a.mp4", "b.mp4"])
    assert masks[0]["video_bona_fide"].tolist() == [False] * 20 + [True] * 20
    assert masks[1]["video_attacks"]["screen"].tolist() == [True] * 20 + [False] * 20
    for key in ("video_bona_fide", "lfw_bona_fide"):                   # a partition: each presentation once
        assert (masks[0][key] ^ masks[1][key]).all()
    u = L.union_figures(video, lfw, ["ft0", "ft1"], masks)
    assert u["APCER_all_sources"]["print"] == {"rate": 0.0, "errors": 0, "of": 42}
    assert u["video"]["BPCER"] == {"rate": 0.05, "errors": 2, "of": 40}    # one frame below each threshold
    assert u["target_met"]
    p = L.union_figures(video, lfw, ["main", "main"], masks)
    assert p["APCER_all_sources"]["screen"]["errors"] == 1 and not p["target_met"]    # 1/42 > 1%
    # the models the wrong way round: every video attack accepted
    w = L.union_figures(video, lfw, ["ft1", "ft0"], masks)
    assert w["APCER_all_sources"]["screen"]["errors"] == 40


def test_lfw_halves_follow_the_data_rule(data_dir):
    train, ev = L.lfw_halves(data_dir / "lfw")
    assert not set(train) & set(ev) and len(train) + len(ev) == 5749
    from facegate.edge_runtime.eval.lfw import read_pairs
    folds = {}
    for p in read_pairs(data_dir / "lfw" / "pairs.txt"):
        for r in (p.a, p.b):
            folds.setdefault(r.split("/")[0], set()).add(p.fold)
    assert all(min(folds[n]) >= 5 for n in ev)
    assert all(n not in folds or min(folds[n]) < 5 for n in train)


def test_bench_end_to_end(data_dir, tmp_path):
    weights = data_dir / "weights" / "minifasnet"
    if not (weights / "2.7_80x80_MiniFASNetV2.pth").is_file():
        pytest.skip(f"MiniFASNet weights not found in {weights} (user-supplied; docs/liveness.md)")
    pytest.importorskip("torch")                            # add-liveness converts the checkpoints
    from facegate.main import main

    # a tiny fine-tune (the training people, the Hamilton clip, 2 WIDER photos), one epoch, then resumed to a
    # second; and one with the other video, for the union
    ft, ft2 = tmp_path / "ft", tmp_path / "ft2"
    train = ["train", "liveness", "--data", str(data_dir), "--lfw-photos", "4", "--frame-step", "90", "--out", str(ft),
             "--cache", str(ft / "cache"), "--extra", str(data_dir / "widerface_val_subset" / "images"),
             "--extra-photos", "2", "--copies", "1", "--quiet"]
    assert main([*train, "--epochs", "1"]) == 0
    assert main([*train, "--epochs", "2", "--resume"]) == 0
    record = json.loads((ft / "liveness_finetune.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]
    assert record["history"][2]["train_loss"] < record["history"][1]["train_loss"]      # it learns, across --resume
    assert record["best_epoch"] in (0, 1, 2) and "val_apcer_max" in record["history"][0]
    assert record["config"]["git_commit"] and record["config"]["train_list_sha256"]
    assert record["samples"]["train_by_source"]["video"] > 0 and record["config"]["extra_used"] >= 1
    assert not set(record["people"]["train"] + record["people"]["val"]) & set(L.lfw_halves(data_dir / "lfw")[1])
    assert (ft / "liveness_finetune_curves.csv").is_file() and (ft / "weights" / "LICENSE").is_file()
    assert main(["train", "liveness", "--data", str(data_dir), "--lfw-photos", "4", "--frame-step", "50",
                 "--train-video", "facenet_pytorch/video.mp4", "--out", str(ft2), "--cache", str(ft2 / "cache"),
                 "--copies", "1", "--epochs", "1", "--quiet"]) == 0

    out = tmp_path / "report" / "liveness.json"
    rc = main(["bench", "liveness", "--frame-step", "60", "--video-attacks", "1", "--lfw-photos", "4",
               "--finetuned", str(ft / "weights"), "--finetuned", str(ft2 / "weights"), "--json", str(out), "--quiet"])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert len(rep["before_after"]) == 2
    ba = rep["before_after"][0]
    assert ba["held_out_counts"]["video_bona_fide"] < rep["counts"]["video"]["bona_fide_presentations"]
    for label in ("pretrained", "fine-tuned"):
        assert set(ba[label]["at_bpcer_5pct_held_out_video"]["APCER_all_sources"]) == {"print", "screen"}
    u = rep["before_after_union"]
    assert u["train_videos"] == ["face_recognition/short_hamilton_clip.mp4", "facenet_pytorch/video.mp4"]
    assert u["pretrained"]["video"]["BPCER"]["of"] == rep["counts"]["video"]["bona_fide_presentations"]
    assert u["fine-tuned"]["lfw"]["BPCER"]["of"] == rep["counts"]["lfw"]["bona_fide_presentations"]
    for key in ("scorer", "iso_iec_30107_3", "target", "at_bpcer_5pct_video", "at_config_threshold",
                "recommended_threshold", "counts", "upstream_samples", "settings", "people", "scores"):
        assert key in rep, key
    assert rep["scorer"].startswith("bundle ")             # the runtime path, not the PyTorch module
    assert set(rep["iso_iec_30107_3"]) >= {"APCER", "BPCER", "bona fide presentation", "attack presentation",
                                           "PAI species"}
    at = rep["at_bpcer_5pct_video"]
    assert set(at["APCER_all_sources"]) == {"print", "screen"}
    assert at["video"]["BPCER"]["rate"] <= 0.05
    assert at["threshold"] == pytest.approx(L.threshold_at_bpcer(rep["scores"]["video_bona_fide"]))
    assert rep["at_config_threshold"]["threshold"] == 0.72
    assert rep["counts"]["video"]["bona_fide_presentations"] > 0
    assert rep["counts"]["lfw"]["bona_fide_presentations"] + rep["counts"]["lfw"]["bona_fide_non_responses"] == 4
    samples = {s["file"]: s for s in rep["upstream_samples"]}
    assert samples["live/image_T1.jpg"]["score"] > 0.5 and samples["spoof/image_F2.jpg"]["score"] < 0.5
    assert all(p in L.lfw_halves(data_dir / "lfw")[1] for p in rep["people"]["lfw_evaluation_people_used"])
    md = out.with_suffix(".md").read_text()
    assert "APCER" in md and "BPCER" in md and "PAI species" in md and "Before / after" in md
    # examples beside the JSON (outside the repository): bona fide sources and both species
    ex = out.parent / "liveness_examples"
    assert {d.name for d in ex.iterdir()} == {"bona_fide", "print", "screen"}
    assert all(len(list((ex / k).glob("*.jpg"))) >= 1 for k in ("bona_fide", "print", "screen"))
