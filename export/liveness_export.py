"""`facegate bundle add-liveness`: MiniFASNet checkpoints -> ONNX with their contract -> a copy of a bundle
that carries them (docs/liveness.md).

    DIR/2.7_80x80_MiniFASNetV2.pth, DIR/4_0_0_80x80_MiniFASNetV1SE.pth (user-supplied, Apache-2.0)
      --models/minifasnet.load (strict)--> torch.onnx (opset 17, dynamic batch) + contract metadata
      --parity: onnxruntime vs PyTorch on real face crops (sample images, the bundle's own detector)-->
    DST = copy of SRC + minifasnet_v2.fp32.onnx, minifasnet_v1se.fp32.onnx, LICENSE-minifasnet, NOTICE,
          bundle.json "liveness" (+ contracts, provenance, licences, notes) and a new bundle id.

Quick (seconds): nothing else of the bundle is re-exported or re-calibrated. The models ship as fp32: int8
did not earn its place (docs/liveness.md, "int8"). The weights, and any model converted from them, are
never part of this repository: the shipped bundle stays without liveness.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from facegate.edge_runtime.bundle import default_bundle_dir, load_bundle, read_manifest, sha256_file
from facegate.edge_runtime.contract import to_metadata
from facegate.edge_runtime.detection import central_face
from facegate.edge_runtime.errors import FacegateError
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.liveness import contract_crop, prepare
from facegate.edge_runtime.paths import data_dir
from facegate.edge_runtime.sessions import open_session, session_run
from facegate.models import minifasnet as mf

from .bundle_write import update_manifest
from .metadata import add_metadata
from .onnx_export import FP32_TOLERANCE, ExportMismatchError, _export, _max_diff

UPSTREAM = "minivision-ai/Silent-Face-Anti-Spoofing"
UPSTREAM_URL = "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing"
LICENCE = "Apache-2.0"
LICENSE_FILE = "LICENSE-minifasnet"
NOTICE_FILE = "NOTICE"
DEFAULT_THRESHOLD = 0.72      # BPCER 5% on camera frames (docs/liveness_benchmark.md), as [liveness] threshold
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class LivenessBuildError(FacegateError):
    """The liveness models could not be added (weights, licence or sample images missing, bad target)."""


@dataclass(frozen=True)
class LivenessModel:
    """One exported liveness model: its variant, ONNX file and the checkpoint it came from."""

    variant: mf.Variant
    path: Path
    weights: Path
    parity: float             # max difference onnxruntime vs PyTorch on the comparison crops (_max_diff)


def weight_files(weights_dir: str | Path) -> dict[mf.Variant, Path]:
    """Both checkpoints in `weights_dir`. Raises LivenessBuildError naming what is missing and where to get it."""
    d = Path(weights_dir)
    files = {v: d / v.file for v in mf.VARIANTS}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise LivenessBuildError(f"{d} lacks {', '.join(missing)}: clone {UPSTREAM_URL} and pass its "
                                 "resources/anti_spoof_models folder as --weights (docs/liveness.md)")
    return files


def licence_file(weights_dir: str | Path) -> Path:
    """The upstream LICENSE (Apache-2.0) beside the weights, or at the root of a clone of the upstream repository
    (two folders up from resources/anti_spoof_models). Raises LivenessBuildError when there is none."""
    d = Path(weights_dir).resolve()
    for folder in (d, d.parent, d.parent.parent):
        if (folder / "LICENSE").is_file():
            return folder / "LICENSE"
    raise LivenessBuildError(f"no LICENSE found in {d} or the two folders above it: the MiniFASNet weights are "
                             f"{LICENCE} and a bundle carrying them must carry its licence; pass the folder of a "
                             f"clone of {UPSTREAM_URL} (resources/anti_spoof_models)")


def sample_images(weights_dir: str | Path, images: list[Path] | None = None) -> list[Path]:
    """Face images for the parity check: `images` if given, else upstream's samples (images/sample of the clone
    the weights come from), else $FACEGATE_DATA/antispoof_samples. Raises LivenessBuildError when none is found."""
    if images:
        return [Path(p) for p in images]
    d = Path(weights_dir).resolve()
    for folder in (d.parent.parent / "images" / "sample", data_dir() / "antispoof_samples"):
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if found:
            return found
    raise LivenessBuildError("no sample face images for the ONNX-vs-PyTorch check: pass --images, or use a clone "
                             f"of {UPSTREAM_URL} (its images/sample), or set FACEGATE_DATA")


def face_crops(detector, images: list[Path], variant: mf.Variant) -> np.ndarray:
    """float32 (n, 3, 80, 80): the variant's model input for the face nearest each image's centre (images
    without a face are left out). Raises LivenessBuildError when no image has a face."""
    c = mf.contract_of(variant)
    out = []
    for p in images:
        img = load_image(p)
        face = central_face(detector, img)
        if face is not None:
            out.append(prepare(contract_crop(img, face, c)[None], c)[0])
    if not out:
        raise LivenessBuildError("no face found in the sample images; pass --images with face photos")
    return np.stack(out)


def provenance(variant: mf.Variant, weights: Path) -> dict:
    """The provenance record of one converted checkpoint (as models/sources.py writes for the others)."""
    return {"model": variant.contract, "package": None, "version": None, "file": variant.file,
            "sha256": sha256_file(weights), "licence": LICENCE,
            "upstream": f"{UPSTREAM} resources/anti_spoof_models ({variant.name}, crop x{variant.scale}), "
                        "converted by facegate bundle add-liveness"}


def export_variant(variant: mf.Variant, weights: Path, out: Path, crops: np.ndarray) -> LivenessModel:
    """Export one checkpoint to fp32 ONNX at `out` (contract + provenance metadata, full onnx.checker) and prove
    it matches PyTorch on `crops` (float32 (n, 3, 80, 80)). Raises ExportMismatchError above FP32_TOLERANCE."""
    module = mf.load(weights, variant)
    _export(module, torch.zeros(2, 3, mf.INPUT_SIZE, mf.INPUT_SIZE), out, ["logits"],
            {"input": {0: "batch"}, "logits": {0: "batch"}})
    meta = to_metadata(mf.contract_of(variant))
    meta["facegate.provenance"] = json.dumps(provenance(variant, weights))
    add_metadata(out, meta)
    onnx.checker.check_model(str(out), full_check=True)
    with torch.inference_mode():
        ref = module(torch.from_numpy(crops)).numpy()
    got = session_run(open_session(out, threads=2))(crops)[0]
    diff = _max_diff([ref], [got])
    if diff > FP32_TOLERANCE:
        raise ExportMismatchError(f"{variant.contract}: onnxruntime differs from PyTorch by {diff:.2e} "
                                  f"(> {FP32_TOLERANCE:g})")
    return LivenessModel(variant, out, weights, diff)


def notice(models: list[LivenessModel]) -> str:
    """The NOTICE text of a bundle carrying converted MiniFASNet models (Apache-2.0 section 4: state changes)."""
    lines = [f"This bundle contains liveness models converted from MiniFASNet ({UPSTREAM}, {UPSTREAM_URL}),",
             f"licensed under the Apache License, Version 2.0 (see {LICENSE_FILE}).", "",
             "Changes: the PyTorch checkpoints were loaded into facegate's own module (models/minifasnet.py),",
             "the training-only FTGenerator branch was dropped, and each network was exported to ONNX:"]
    lines += [f"  {m.path.name} <- {m.variant.file} (sha256 {sha256_file(m.weights)})" for m in models]
    return "\n".join(lines) + "\n"


def add_liveness(weights_dir: str | Path, out: str | Path, bundle: str | Path | None = None,
                 images: list[Path] | None = None, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Write a copy of `bundle` (default: the shipped one) to `out` with the MiniFASNet liveness models from
    `weights_dir`, their contracts, provenance, licence and NOTICE, and a new bundle id. The source bundle is
    only read. Returns `out`. Raises LivenessBuildError, BundleError, ExportMismatchError."""
    src = Path(bundle) if bundle is not None else default_bundle_dir()
    out = Path(out)
    files = weight_files(weights_dir)
    licence = licence_file(weights_dir)
    pictures = sample_images(weights_dir, images)
    if out.exists():
        raise LivenessBuildError(f"{out} already exists; give a new folder as --out")
    raw = read_manifest(src).raw
    if raw.get("liveness") is not None:
        raise LivenessBuildError(f"bundle {src} already has liveness models")
    detector = load_bundle(src).detector            # verifies every file of the source bundle
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__", "*.partial", "*.old"))
    try:
        models = [export_variant(v, files[v], tmp / f"{v.contract}.fp32.onnx", face_crops(detector, pictures, v))
                  for v in mf.VARIANTS]
        shutil.copyfile(licence, tmp / LICENSE_FILE)
        (tmp / NOTICE_FILE).write_text(notice(models))
        contracts = {m.variant.contract: json.loads(to_metadata(mf.contract_of(m.variant))["facegate.contract"])
                     for m in models}
        update_manifest(tmp, {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "liveness": {"models": [{"name": m.variant.contract, "file": m.path.name, "sha256": sha256_file(m.path),
                                     "precision": "fp32", "scale": m.variant.scale} for m in models],
                         "threshold": threshold,
                         "report": {"parity_max_diff": {m.variant.contract: m.parity for m in models},
                                    "parity_images": len(pictures)}},
            "contracts": {**raw.get("contracts", {}), **contracts},
            "provenance": {**raw.get("provenance", {}),
                           **{m.variant.contract: provenance(m.variant, m.weights) for m in models}},
            "licences": {**raw.get("licences", {}), **{m.variant.contract: LICENCE for m in models}},
            "notes": {**raw.get("notes", {}),
                      "liveness": {"source_bundle": raw.get("id"), "licence_file": LICENSE_FILE,
                                   "notice_file": NOTICE_FILE, "precision": "fp32 (int8 did not earn its place: "
                                   "docs/liveness.md)", "threshold": "p(real) >= 0.72: a 5% bona fide rejection "
                                   "rate on the camera frames of facegate bench liveness (synthetic attacks only; "
                                   "docs/liveness_benchmark.md)"}},
        })
        load_bundle(tmp)                             # the new bundle opens, liveness included
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(out)
    return out
