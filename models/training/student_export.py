"""The trained student through the converted networks' path: ONNX export with its contract and provenance
("trained by facegate" + its config), int8 calibration on real chips (calibration/quantize.py), the
held-out evaluation against the teacher and the shipped SFace int8 in one run, and the `small` bundle
(the teacher bundle's detector + the student int8; export/bundle_write.py)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from facegate.calibration.benchmark import file_mb, latency_ms
from facegate.calibration.quantize import quantize_model
from facegate.calibration.reader import ListReader
from facegate.edge_runtime.contract import STUDENT_MFN, to_metadata
from facegate.edge_runtime.eval import student_eval
from facegate.edge_runtime.eval.lfw import tar_at_far
from facegate.edge_runtime.eval.lfw_eval import pair_scores
from facegate.edge_runtime.preprocess import contract_input
from facegate.edge_runtime.sessions import onnx_embedder
from facegate.export.bundle_write import ModelFile, write_bundle
from facegate.export.metadata import add_metadata
from facegate.export.onnx_export import FP32_TOLERANCE, OPSET, ExportMismatchError

from .student_train import embed_torch, provenance

TARGET_SPEEDUP = 2.0        # issue 14: int8 student >= 2x faster than the shipped SFace int8 ...
TARGET_LOSS = 0.005         # ... losing <= 0.5 points of pair accuracy on folds 6-10


def export_student(model, path: Path, config: dict, sample_chips: np.ndarray) -> float:
    """Export the student to ONNX (opset OPSET, dynamic batch), check it, write its contract and provenance,
    and compare onnxruntime with PyTorch on `sample_chips` (uint8 RGB (N, 112, 112, 3) real chips).
    Returns the largest absolute difference; raises ExportMismatchError above FP32_TOLERANCE."""
    model = model.cpu().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = STUDENT_MFN.input_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, s, s),), str(path), input_names=["input"],
                          output_names=["embedding"], dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    meta = to_metadata(STUDENT_MFN)
    meta["facegate.provenance"] = json.dumps(provenance(config), sort_keys=True)
    add_metadata(path, meta)
    onnx.checker.check_model(str(path), full_check=True)
    ref = embed_torch(model, sample_chips, torch.device("cpu"))
    got = onnx_embedder(path, threads=2).embed(np.asarray(sample_chips))
    diff = float(np.max(np.abs(ref - got)))
    if diff > FP32_TOLERANCE:
        raise ExportMismatchError(f"student: onnxruntime differs from PyTorch by {diff:.2e} (> {FP32_TOLERANCE:g})")
    return diff


def quantize_student(fp32: Path, int8: Path, chips: np.ndarray) -> Path:
    """Static int8 (calibration/quantize.py defaults: Percentile, QDQ, per-channel) calibrated on uint8 RGB
    (N, 112, 112, 3) real chips, each fed through the contract's preprocessing as a batch of one."""
    feeds = [{"input": contract_input(np.asarray(c), STUDENT_MFN)} for c in chips]

    def reader():
        r = ListReader(feeds)
        r.source = f"{len(feeds)} aligned student_mfn chips of LFW people in no pair"
        return r
    return quantize_model(fp32, int8, reader)


def onnx_table(path: Path, chips: np.ndarray, relpaths, batch: int = 64) -> dict:
    """{relpath: float32 (D,)} embeddings of chips by an exported embedder (runtime FaceEmbedder)."""
    emb = onnx_embedder(path, threads=2)
    out = [emb.embed(np.asarray(chips[s:s + batch])) for s in range(0, len(chips), batch)]
    return dict(zip([str(r) for r in relpaths], np.concatenate(out)))


def evaluate_final(data: dict, files: dict[str, Path], teacher_file: Path, params: int, pairs,
                   latency_rounds: int = 30) -> dict:
    """Student (fp32 and int8 ONNX) and the teacher (its bundle file; its embeddings of the same chips are
    the cached ones) on folds 6-10: pair accuracy, open-set FNIR at FPIR 1% / 0.1%, agreement with the
    teacher; embedder latency (batch 1, 2 threads, round-robin in one run) of the student int8 and the
    teacher; parameters and file sizes. files: {"fp32": path, "int8": path} of the student."""
    lfw, rows = data["lfw"], data["test_rows"]
    rels, chips = lfw["relpaths"][rows], lfw["chips"][rows]
    teacher = dict(zip([str(r) for r in rels], lfw["teacher"][rows]))
    tables = {f"student_mfn {p}": onnx_table(f, chips, rels) for p, f in files.items()}
    report = {"pairs": len(pairs), "held_out_images": int(len(rows)), "models": {}}
    x = contract_input(np.asarray(chips[:1]), STUDENT_MFN)
    lat = latency_ms({"student": files["int8"], "teacher": teacher_file}, x, threads=2, rounds=latency_rounds)
    for name, table, path, prec in [("teacher (shipped sface)", teacher, teacher_file, "int8"),
                                    *[(n, t, files[n.split()[1]], n.split()[1]) for n, t in tables.items()]]:
        emb = np.stack([table[str(r)] for r in rels])
        report["models"][name] = {
            "precision": prec, "file_mb": file_mb(path), "params": None if name.startswith("teacher") else params,
            "pairs": student_eval.pair_accuracy(table, pairs),
            "openset": student_eval.openset_heldout(table, data["test_people"]),
            "teacher_cosine": student_eval.agreement(emb, lfw["teacher"][rows])}
    report["models"]["teacher (shipped sface)"]["latency_ms"] = lat["teacher"]["median"]
    report["models"]["student_mfn int8"]["latency_ms"] = lat["student"]["median"]
    report["latency"] = lat
    report["speedup"] = lat["teacher"]["median"] / lat["student"]["median"]
    loss = (report["models"]["teacher (shipped sface)"]["pairs"]["accuracy"]
            - report["models"]["student_mfn int8"]["pairs"]["accuracy"])
    report["accuracy_loss"] = loss
    report["target_met"] = bool(report["speedup"] >= TARGET_SPEEDUP and loss <= TARGET_LOSS)
    return report


def threshold_at_far(table: dict, pairs, far: float = 1e-3) -> tuple[float, float]:
    """(threshold, achieved FAR) at `far` on `pairs` (the held-out ones; what the bundle records)."""
    scores = pair_scores(pairs, table, "cosine")
    same = np.array([p.same for p in pairs])
    _, t = tar_at_far(scores, same, far)
    neg = np.where(np.isfinite(scores), scores, -np.inf)[~same]
    return float(t), float(np.mean(neg >= t))


def write_small_bundle(out: Path, teacher_bundle, int8: Path, table: dict, pairs, report: dict) -> Path:
    """A bundle with the teacher bundle's detector and the int8 student as its only (default) embedder;
    the threshold is the one at FAR 1e-3 on the held-out pairs."""
    m = teacher_bundle.manifest
    det = ModelFile("retinaface_mnet025", Path(teacher_bundle.path) / m.detector_file, m.detector_precision,
                    report=m.raw["detector"].get("report", {}))
    t, far = threshold_at_far(table, pairs)
    emb = ModelFile(STUDENT_MFN.name, Path(int8), "int8", t, 1e-3, far, report=report)
    return write_bundle(out, det, [emb], STUDENT_MFN.name,
                        notes={"student": "distilled by `facegate train student` from the teacher bundle "
                                          f"{teacher_bundle.id}; threshold chosen at FAR 1e-3 on LFW folds 6-10"})
