"""Does int8 earn its place for the liveness models? The embedders' rule, measured on real face crops.

    bundle with liveness (fp32) --PRelu rewrite + static QDQ int8 (calibration/quantize.py), calibrated on
    crops made by the runtime's own liveness_crop--> int8 models (in a work folder, never the bundle)
    --> real-probability difference int8 vs fp32 (averaged over the models, as the runtime scores) on
        held-out video frames, LFW photos and the upstream samples + latency per model, 1 and 2 threads

int8 is chosen only when it is at least MIN_SPEEDUP times faster at 2 threads (the embedders' rule,
export/bundle_build.py) *and* no held-out face's real-probability moves by more than MAX_DRIFT and none
crosses the bundle's threshold. `facegate bundle liveness-int8` writes the report (docs/liveness_int8.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facegate.calibration.benchmark import latency_ms
from facegate.calibration.prelu import prelu_to_conv_pair
from facegate.calibration.quantize import DEFAULT_METHOD, quantize_model
from facegate.calibration.reader import ListReader, calibration_images
from facegate.edge_runtime.bundle import load_bundle
from facegate.edge_runtime.detection import central_face
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.liveness import contract_crop, prepare, softmax
from facegate.edge_runtime.paths import data_dir as research_data_dir
from facegate.edge_runtime.sessions import open_session, read_contract, session_run

from .bundle_build import MIN_SPEEDUP
from .liveness_export import LivenessBuildError

MAX_DRIFT = 0.05               # largest change of a face's real-probability int8 may cause
VIDEO_EVERY, VIDEO_LIMIT = 5, 60   # every 5th frame, at most 60 frames per clip
LFW_PHOTOS = 150               # LFW calibration people's photos: first half calibrates, second half evaluates


def video_frames(path: Path, every: int = VIDEO_EVERY, limit: int = VIDEO_LIMIT) -> list[np.ndarray]:
    """uint8 RGB frames: every `every`-th frame of a video, at most `limit`."""
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    try:
        while len(out) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                out.append(np.ascontiguousarray(frame[..., ::-1]))
            i += 1
    finally:
        cap.release()
    return out


def trial_faces(detector, data: Path) -> dict[str, list]:
    """(image, face) pairs: "calibration" (even video faces + the first LFW half), "video" (odd video faces),
    "lfw" (the second LFW half), "samples" (upstream's three). Raises LivenessBuildError without the data."""
    clips = sorted((data / "videos").rglob("*.mp4"))
    samples = sorted((data / "antispoof_samples").rglob("*.jpg"))
    if not clips or not samples:
        raise LivenessBuildError(f"no videos/*.mp4 or antispoof_samples/*.jpg under {data}; set FACEGATE_DATA")
    video = [(img, f) for c in clips for img in video_frames(c) for f in detector.detect(img)]
    lfw = []
    for p in calibration_images(data_dir=data, limit=LFW_PHOTOS):
        img = load_image(p)
        face = central_face(detector, img)
        if face is not None:
            lfw.append((img, face))
    half = len(lfw) // 2
    sample_faces = [(img, central_face(detector, img)) for img in map(load_image, samples)]
    return {"calibration": video[0::2] + lfw[:half], "video": video[1::2], "lfw": lfw[half:],
            "samples": [(i, f) for i, f in sample_faces if f is not None]}


def _inputs(pairs: list, contract) -> np.ndarray:
    return prepare(np.stack([contract_crop(img, f, contract) for img, f in pairs]), contract)


def _p_real(path: Path, x: np.ndarray, real_index: int) -> np.ndarray:
    run = session_run(open_session(path, threads=2))
    return np.concatenate([softmax(run(x[i:i + 32])[0]) for i in range(0, len(x), 32)])[:, real_index]


def int8_trial(bundle: Path, work: Path, data: Path | None = None, method: str = DEFAULT_METHOD) -> dict:
    """Quantise the bundle's liveness models into `work` and measure them against fp32 (module doc).
    Returns the report (JSON-able) with its "decision". Raises LivenessBuildError."""
    b = load_bundle(bundle)
    if b.manifest.liveness is None:
        raise LivenessBuildError(f"bundle {bundle} has no liveness models (facegate bundle add-liveness)")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    faces = trial_faces(b.detector, Path(data) if data is not None else research_data_dir())
    sets = ("video", "lfw", "samples")
    fp32, int8, p32, p8, models = {}, {}, {s: [] for s in sets}, {s: [] for s in sets}, {}
    for e in b.manifest.liveness.models:
        fp32[e.name] = Path(bundle) / e.file
        contract = read_contract(open_session(fp32[e.name], threads=1))
        cal = _inputs(faces["calibration"], contract)
        rewritten = work / f"{e.name}.prelu-rewritten.onnx"
        prelu_to_conv_pair(fp32[e.name], rewritten)
        int8[e.name] = quantize_model(rewritten, work / f"{e.name}.int8.onnx",
                                      lambda c=cal: ListReader([{"input": c[i:i + 1]} for i in range(len(c))]),
                                      method=method)
        per = {}
        for s in sets:
            x = _inputs(faces[s], contract)
            a, q = _p_real(fp32[e.name], x, contract.real_index), _p_real(int8[e.name], x, contract.real_index)
            p32[s].append(a)
            p8[s].append(q)
            per[s] = float(np.abs(a - q).max())
        models[e.name] = {"max_abs_diff": per}
        x1 = _inputs(faces["samples"][:1], contract)
        models[e.name]["latency_ms"] = {
            f"{t}t": latency_ms({"fp32": fp32[e.name], "int8": int8[e.name]}, x1, threads=t) for t in (1, 2)}
    threshold = b.manifest.liveness.threshold
    drift = {}
    for s in sets:
        a, q = np.mean(p32[s], axis=0), np.mean(p8[s], axis=0)
        drift[s] = {"faces": int(len(a)), "max_abs_diff": float(np.abs(a - q).max()),
                    "mean_abs_diff": float(np.abs(a - q).mean()),
                    "crossings": int(((a >= threshold) != (q >= threshold)).sum())}
    speed = {t: sum(m["latency_ms"][t]["fp32"]["median"] for m in models.values()) /
             sum(m["latency_ms"][t]["int8"]["median"] for m in models.values()) for t in ("1t", "2t")}
    close = all(d["max_abs_diff"] <= MAX_DRIFT and d["crossings"] == 0 for d in drift.values())
    if close and speed["2t"] >= MIN_SPEEDUP:
        decision = f"int8: {speed['2t']:.2f}x faster at 2 threads, real-probability within {MAX_DRIFT}"
    elif not close:
        worst, crossed = max(d["max_abs_diff"] for d in drift.values()), sum(d["crossings"] for d in drift.values())
        decision = (f"fp32: int8 moves the real-probability by up to {worst:.3f} (> {MAX_DRIFT}) or across the "
                    f"threshold ({crossed} faces)")
    else:
        decision = f"fp32: int8 is only {speed['2t']:.2f}x faster at 2 threads (< {MIN_SPEEDUP}x)"
    return {"bundle": b.manifest.id, "method": method, "graph": "PRelu rewritten as two convs (calibration/prelu.py)",
            "calibration_faces": len(faces["calibration"]), "threshold": threshold, "drift": drift,
            "models": models, "speedup": speed, "rule": {"min_speedup_2t": MIN_SPEEDUP, "max_drift": MAX_DRIFT},
            "decision": decision}


def markdown(r: dict) -> str:
    """The report as Markdown (docs/liveness_int8.md)."""
    lines = ["# Liveness models: int8 against fp32", "",
             f"Generated by `facegate bundle liveness-int8` on bundle {r['bundle']}: {r['graph']}, static QDQ int8 "
             f"({r['method']}), calibrated on {r['calibration_faces']} face crops (even video faces, first LFW half).",
             "", "| held-out set | faces | max abs diff p(real) | mean abs diff | crossings of "
             f"{r['threshold']} |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {d['faces']} | {d['max_abs_diff']:.3f} | {d['mean_abs_diff']:.4f} | {d['crossings']} |"
              for s, d in r["drift"].items()]
    lines += ["", "| model | fp32 ms 1t / 2t (median, p10) | int8 ms 1t / 2t (median, p10) |", "|---|---|---|"]
    for n, m in r["models"].items():
        cell = [" / ".join(f"{m['latency_ms'][t][p]['median']:.2f} ({m['latency_ms'][t][p]['p10']:.2f})"
                           for t in ("1t", "2t")) for p in ("fp32", "int8")]
        lines.append(f"| {n} | {cell[0]} | {cell[1]} |")
    lines += ["", f"Speed-up (sum of medians): {r['speedup']['1t']:.2f}x at 1 thread, {r['speedup']['2t']:.2f}x at 2.",
              f"Rule: int8 when >= {r['rule']['min_speedup_2t']}x faster at 2 threads and every held-out face within "
              f"{r['rule']['max_drift']} with no crossing.", "", f"**Decision: {r['decision']}**", ""]
    return "\n".join(lines)


def write_report(r: dict, json_path: Path | None, md_path: Path | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(r, indent=1))
    if md_path:
        Path(md_path).write_text(markdown(r))
