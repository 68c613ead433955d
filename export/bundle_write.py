"""Write a model bundle folder: model files + bundle.json (hashes, provenance, licences, contracts,
thresholds). The folder is assembled next to the target and renamed into place, so a killed build
never leaves a half-written bundle.

Every write records the id derived from the manifest's content (edge_runtime.bundle.bundle_id), so a
bundle written here loads, and one whose bundle.json is edited by hand afterwards is refused."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from facegate.edge_runtime.bundle import BUNDLE_FORMAT, MANIFEST, bundle_id, check_id, sha256_file
from facegate.edge_runtime.files import atomic_write_bytes


@dataclass(frozen=True)
class ModelFile:
    """One model going into a bundle."""

    name: str                     # registry name, e.g. "sface"
    path: Path                    # ONNX file to copy
    precision: str                # "fp32" or "int8"
    threshold: float | None = None    # embedders: similarity threshold chosen on LFW
    target_far: float | None = None
    achieved_far: float | None = None
    report: dict = field(default_factory=dict)   # accuracy numbers to record


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def write_bundle(out: Path, detector: ModelFile, embedders: list[ModelFile], default_embedder: str,
                 notes: dict | None = None) -> Path:
    """Assemble a bundle at `out` (replaced atomically if it exists). Returns `out`."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files, contracts, provenance, quant = {}, {}, {}, {}
    for m in [detector, *embedders]:
        fname = f"{m.name}.{m.precision}.onnx"
        shutil.copyfile(m.path, tmp / fname)
        files[m.name] = (fname, sha256_file(tmp / fname))
        meta = _meta(tmp / fname)
        contracts[m.name] = json.loads(meta["facegate.contract"])
        provenance[m.name] = json.loads(meta.get("facegate.provenance", "{}"))
        if "facegate.quantization" in meta:
            quant[m.name] = json.loads(meta["facegate.quantization"])
    manifest = {
        "format": BUNDLE_FORMAT,
        "id": None,                          # derived below, from the finished manifest
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "detector": {"name": detector.name, "file": files[detector.name][0],
                     "sha256": files[detector.name][1], "precision": detector.precision,
                     "report": detector.report},
        "embedders": {m.name: {"file": files[m.name][0], "sha256": files[m.name][1],
                               "precision": m.precision, "threshold": m.threshold,
                               "target_far": m.target_far, "achieved_far": m.achieved_far,
                               "report": m.report} for m in embedders},
        "default_embedder": default_embedder,
        "contracts": contracts,
        "provenance": provenance,
        "licences": {n: p.get("licence") for n, p in provenance.items()},
        "quantization": quant,
        "notes": notes or {},
    }
    manifest["id"] = bundle_id(manifest)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return replace_dir(tmp, out)


def replace_dir(tmp: Path, out: Path) -> Path:
    """Put the finished folder `tmp` in place of `out` (moved aside first, removed once `tmp` is in place)."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def update_manifest(out: Path, changes: dict) -> Path:
    """Set top-level entries of an assembled bundle's bundle.json and record the id its new content
    gives, replacing the file atomically (written beside it, fsynced, renamed).

    Raises BundleError when the current bundle.json does not give the id it records (edited by hand
    since it was written): such a file is never re-sealed with a fresh id."""
    f = Path(out) / MANIFEST
    manifest = json.loads(f.read_text())
    check_id(manifest, Path(out))
    manifest.update(changes)
    manifest["id"] = bundle_id(manifest)
    return atomic_write_bytes(f, json.dumps(manifest, indent=2).encode())


def set_fusion(out: Path, fusion: dict, default_embedder: str) -> Path:
    """Record a fusion entry (see export/fusion_fit.py) and the default embedder in an assembled bundle."""
    return update_manifest(out, {"fusion": fusion, "default_embedder": default_embedder})


QUALITY_FILE = "face_quality.{precision}.onnx"
# what can be said of a quality model trained by `facegate train quality` (docs/weights.md)
QUALITY_LICENCE = ("trained by facegate on LFW photos (distributed for research, no formal licence; the photos' "
                   "copyright stays with their owners): research use")


def quality_onnx(source: Path, work: Path) -> Path:
    """The quality model's ONNX: `source` itself when it is one, else exported from a `facegate train
    quality` checkpoint (.pt) into `work` (needs facegate[train]). Raises ValueError for another file."""
    source = Path(source)
    if source.suffix == ".onnx":
        return source
    if source.suffix != ".pt":
        raise ValueError(f"--quality {source}: expected a quality model (.onnx) or a `facegate train quality` "
                         "checkpoint (.pt)")
    from facegate.models.training.quality_train import export_checkpoint

    return export_checkpoint(source, Path(work) / (source.stem + ".onnx"))


def add_quality(src: Path, out: Path, quality: Path, threshold: float, meaning: str,
                report: dict | None = None) -> Path:
    """Write at `out` the bundle at `src` with the quality model `quality` (ONNX, contract kind "quality")
    and its threshold added as bundle.json "quality". Every other file is copied byte for byte (no
    re-export, no re-quantisation); the id follows the new content. `out` may be `src`: it is replaced
    atomically. Raises BundleError when src's bundle.json does not give its id, ValueError when the
    model is not a quality model or was trained on other embedder files."""
    from facegate.edge_runtime.bundle import read_manifest

    src, out = Path(src), Path(out)
    manifest = read_manifest(src)                      # checks the id
    meta = _meta(quality)
    contract = json.loads(meta.get("facegate.contract", "{}"))
    if contract.get("kind") != "quality":
        raise ValueError(f"{quality} is not a quality model (contract kind {contract.get('kind')!r})")
    if manifest.fusion is None or contract.get("features_of") != manifest.fusion.name:
        raise ValueError(f"{quality} reads {contract.get('features_of')!r} embeddings; the bundle at {src} "
                         f"has fusion {manifest.fusion.name if manifest.fusion else None!r}")
    wrong = [p for p in manifest.fusion.fusion.parts
             if contract.get("part_sha256", {}).get(p) != manifest.embedders[p].sha256]
    if wrong:
        raise ValueError(f"{quality} was trained on other {', '.join(wrong)} files than the bundle at {src}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old_entry = manifest.raw.get("quality")
    if old_entry:
        (tmp / old_entry["file"]).unlink(missing_ok=True)
    precision = "int8" if "facegate.quantization" in meta else "fp32"
    fname = QUALITY_FILE.format(precision=precision)
    shutil.copyfile(quality, tmp / fname)
    provenance = dict(manifest.raw.get("provenance", {}))
    provenance["face_quality"] = json.loads(meta.get("facegate.provenance", "{}"))
    entry = {"file": fname, "sha256": sha256_file(tmp / fname), "precision": precision,
             "threshold": float(threshold), "meaning": meaning, "contract": contract, "report": report or {}}
    licences = {**manifest.raw.get("licences", {}), "face_quality": QUALITY_LICENCE}
    update_manifest(tmp, {"quality": entry, "provenance": provenance, "licences": licences})
    return replace_dir(tmp, out)
