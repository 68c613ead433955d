"""The bundle id covers everything that decides a match, and a bundle.json edited after its build is refused
(issue 12 item 2): thresholds, fusion, score models, contracts and model hashes cannot be changed in place."""
import json
import shutil

import numpy as np
import pytest

from facegate.edge_runtime.bundle import (
    BundleError,
    bundle_id,
    default_bundle_dir,
    load_bundle,
    read_manifest,
    sha256_file,
)

FUSED = "sface+dlib_resnet"


@pytest.fixture()
def shipped_copy(tmp_path):
    """A copy of the shipped bundle: (folder, its parsed bundle.json)."""
    root = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), root)
    return root, json.loads((root / "bundle.json").read_text())


def _write(root, raw):
    (root / "bundle.json").write_text(json.dumps(raw, indent=2))


def _set(raw: dict, path: str, value):
    *keys, last = path.split("/")
    for k in keys:
        raw = raw[k]
    raw[last] = value


def test_shipped_bundle_records_the_id_its_content_gives():
    raw = json.loads((default_bundle_dir() / "bundle.json").read_text())
    assert read_manifest(default_bundle_dir()).id == raw["id"] == bundle_id(raw)


@pytest.mark.parametrize("path, value", [
    ("fusion/threshold", -100.0),                                   # the stranger-opens-the-door edit
    ("embedders/sface/threshold", -100.0),
    ("fusion/weights", [0.3, 0.7]),
    ("fusion/means", [0.0, -0.8249719485153038]),
    (f"score_models/{FUSED}/tail/sigma", 5.0),                      # the door's threshold comes from here
    (f"score_models/{FUSED}/tail/xi", 0.5),
    ("contracts/retinaface_mnet025/mean", [0.0, 0.0, 0.0]),
    ("contracts/retinaface_mnet025/priors/variances", [0.2, 0.4]),
    ("default_embedder", "dlib_resnet"),
])
def test_editing_a_match_deciding_field_is_refused_on_load(shipped_copy, path, value):
    root, raw = shipped_copy
    shipped_id = raw["id"]
    _set(raw, path, value)
    _write(root, raw)
    message = (f"bundle.json was edited after it was built: its content gives id {bundle_id(raw)}, "
               f"it records {shipped_id}; rebuild or restore the bundle")
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_bundle(root)
    with pytest.raises(BundleError, match="edited after it was built"):
        read_manifest(root)


@pytest.mark.parametrize("path, value", [
    ("created", "2030-01-01T00:00:00Z"),
    ("notes/decisions/sface", "rewritten"),
    ("licences/sface", "someone else's"),
    ("provenance/sface/upstream", "elsewhere"),
    ("quantization/sface/percentile", 99.0),
    ("embedders/sface/report", {}),
    ("fusion/report", {"decision": "none"}),
])
def test_descriptive_fields_do_not_change_the_id(shipped_copy, path, value):
    root, raw = shipped_copy
    shipped_id = raw["id"]
    _set(raw, path, value)
    (root / "bundle.json").write_text(json.dumps(raw))             # layout does not matter either
    assert read_manifest(root).id == shipped_id


def _swap_model(root, name="sface.int8.onnx"):
    """Replace a model of the bundle with another valid one (same graph, one more metadata entry)."""
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(root / name))
    m.metadata_props.add(key="facegate.swapped", value="another model")
    onnx.save(m, str(root / name))
    return sha256_file(root / name)


def test_rewritten_model_hash_without_a_rebuild_is_refused(shipped_copy):
    root, raw = shipped_copy
    raw["embedders"]["sface"]["sha256"] = _swap_model(root)
    _write(root, raw)
    with pytest.raises(BundleError, match="edited after it was built"):
        load_bundle(root, embedder="sface")


def test_a_bundle_with_an_id_of_the_older_kind_is_refused_with_its_own_message(shipped_copy):
    import hashlib

    root, raw = shipped_copy
    hashes = [raw["detector"]["sha256"], *(e["sha256"] for e in raw["embedders"].values())]
    raw["id"] = hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:16]
    _write(root, raw)
    with pytest.raises(BundleError, match="id of the older kind .*rebuild the bundle"):
        read_manifest(root)


def test_swapped_model_gets_a_new_id_so_old_templates_are_stale(shipped_copy, tmp_path):
    """A model swapped through the build tools (hash and id rewritten) is another bundle: templates made
    with the old one are stale, never compared with the new model's embeddings."""
    from facegate.edge_runtime.store import Store
    from facegate.export.bundle_write import update_manifest

    root, raw = shipped_copy
    old = load_bundle(root)
    raw["embedders"]["sface"]["sha256"] = _swap_model(root)
    update_manifest(root, {"embedders": raw["embedders"]})
    if raw.get("quality"):               # the quality model reads the old embedder's values: refused until dropped
        with pytest.raises(BundleError, match="other embedder files"):
            load_bundle(root)
        update_manifest(root, {"quality": None})
    new = load_bundle(root)
    assert new.manifest.id != old.manifest.id and new.id != old.id

    with Store(tmp_path / "store.db") as s:
        emb = np.random.default_rng(0).normal(size=(2, old.embedder.embedding_size)).astype(np.float32)
        s.enroll("George W Bush", emb, old.id, old.embedder_entry.name)
        assert len(s.templates(old.id, old.metric).names) == 2
        assert len(s.templates(new.id, new.metric).names) == 0
        assert s.stale_templates(new.id) == {"George W Bush": 2}


def test_update_manifest_does_not_reseal_an_edited_bundle(shipped_copy):
    from facegate.export.bundle_write import update_manifest

    root, raw = shipped_copy
    raw["fusion"]["threshold"] = -100.0
    _write(root, raw)
    with pytest.raises(BundleError, match="edited after it was built"):
        update_manifest(root, {"notes": {}})
    with pytest.raises(BundleError, match="edited after it was built"):
        read_manifest(root)


def test_bundle_written_by_write_bundle_loads_and_every_step_records_its_id(tmp_path):
    """write_bundle, set_fusion and update_manifest each record the id of what they wrote."""
    pytest.importorskip("onnx")
    from facegate.export.bundle_write import ModelFile, set_fusion, update_manifest, write_bundle

    src, shipped = default_bundle_dir(), json.loads((default_bundle_dir() / "bundle.json").read_text())
    emb = {n: shipped["embedders"][n] for n in ("sface", "dlib_resnet")}
    out = write_bundle(tmp_path / "b", ModelFile("retinaface_mnet025", src / "retinaface_mnet025.fp32.onnx", "fp32"),
                       [ModelFile(n, src / e["file"], "int8", e["threshold"], e["target_far"], e["achieved_far"])
                        for n, e in emb.items()], "sface")
    ids = [load_bundle(out).manifest.id]
    set_fusion(out, {k: v for k, v in shipped["fusion"].items() if k != "report"}, FUSED)
    ids.append(load_bundle(out).manifest.id)
    update_manifest(out, {"score_models": shipped["score_models"]})
    b = load_bundle(out)
    ids.append(b.manifest.id)
    assert len(set(ids)) == 3 and b.id == f"{ids[-1]}:{FUSED}" and b.score_model is not None
    # the same models, thresholds, fusion, score models and quality model as the shipped bundle: the same id
    from facegate.export.bundle_write import add_quality
    q = shipped["quality"]
    add_quality(out, out, src / q["file"], q["threshold"], q["meaning"])
    assert read_manifest(out).id == shipped["id"]


def test_decision_content_drops_only_descriptive_fields():
    from facegate.edge_runtime.bundle import decision_content

    raw = json.loads((default_bundle_dir() / "bundle.json").read_text())
    kept = decision_content(raw)
    assert set(kept) == {"format", "detector", "embedders", "default_embedder", "contracts", "fusion",
                         "score_models", "quality"}
    assert "report" not in kept["detector"] and "report" not in kept["fusion"] and "report" not in kept["quality"]
    assert all("report" not in e and "threshold" in e for e in kept["embedders"].values())
    assert kept["score_models"] == raw["score_models"] and kept["contracts"] == raw["contracts"]
