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
