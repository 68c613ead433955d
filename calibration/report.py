"""fp32 vs int8 with one evaluation harness: LFW 10-fold, TAR at FAR 1e-3, embedding drift,
WIDER AP, latency at 1 and 2 threads, file sizes. Markdown + JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegate.edge_runtime.contract import DETECTOR as DETECTOR_CONTRACT
from facegate.edge_runtime.detection import central_face
from facegate.edge_runtime.embedding import FaceEmbedder
from facegate.edge_runtime.eval.lfw import read_pairs
from facegate.edge_runtime.eval.lfw_eval import evaluate_lfw
from facegate.edge_runtime.eval.wider_eval import evaluate_wider
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.sessions import onnx_detector, onnx_embedder

from .benchmark import embedding_drift, file_mb, latency_ms

DETECTOR = DETECTOR_CONTRACT.name     # the detector's key in compare's fp32/int8 dicts


def drift_chips(data_dir: Path, detector_path: Path, embedder: FaceEmbedder, n: int = 200) -> np.ndarray:
    """uint8 RGB (n', S, S, 3) chips of `embedder` (its align) from up to `n` LFW pair images spread over
    the sorted list, one per image where the fp32 detector finds a face (central_face), for drift checks."""
    lfw = Path(data_dir) / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    rels = sorted({p.a for p in pairs})[:: max(1, len({p.a for p in pairs}) // n)][:n]
    det = onnx_detector(detector_path)
    chips = []
    for r in rels:
        img = load_image(lfw / r)
        face = central_face(det, img)
        if face is not None:
            chips.append(embedder.align(img, face))
    return np.stack(chips)


def frame_input(data_dir: Path, detector_path: Path) -> np.ndarray:
    """The detector input for one 640x480 frame of a real face (the first clip frame, resized)."""
    import cv2

    cap = cv2.VideoCapture(str(Path(data_dir) / "videos/face_recognition/short_hamilton_clip.mp4"))
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise FileNotFoundError("cannot read the Hamilton clip for the latency frame; set FACEGATE_DATA")
    rgb = cv2.cvtColor(cv2.resize(bgr, (640, 480)), cv2.COLOR_BGR2RGB)
    x, _ = onnx_detector(detector_path).prepare(rgb)
    return x


def compare(fp32: dict[str, Path], int8: dict[str, Path], data_dir: Path, lfw_limit: int | None = None,
            wider_limit: int | None = None, progress: bool = True) -> dict:
    """Evaluate both variants of every model with the same code.

    Args:
        fp32, int8: {DETECTOR: path, "<embedder>": path, ...} (same keys).
    Returns:
        {"models": {name: {"fp32": {...}, "int8": {...}, "drift": {...}, "speedup_1t", "speedup_2t"}},
         "settings": {...}}
    """
    data_dir = Path(data_dir)
    embedders = [n for n in fp32 if n != DETECTOR]
    out = {"settings": {"lfw_limit": lfw_limit, "wider_limit": wider_limit}, "models": {}}
    # the embedders are compared behind the same (fp32) detector, so a difference is theirs alone;
    # the detector's own int8 cost is measured on WIDER
    lfw = {variant: evaluate_lfw(data_dir / "lfw", onnx_detector(fp32[DETECTOR]),
                                 {n: onnx_embedder(paths[n]) for n in embedders}, progress=progress, limit=lfw_limit)
           for variant, paths in (("fp32", fp32), ("int8", int8))}
    out["models"][DETECTOR] = detector_entry(fp32[DETECTOR], int8[DETECTOR], data_dir, wider_limit)
    for n in embedders:
        out["models"][n] = embedder_entry(fp32[n], int8[n], fp32[DETECTOR], data_dir,
                                          {v: lfw[v]["results"][n] for v in lfw})
    for e in out["models"].values():
        e["speedup_1t"] = e["fp32"]["latency_ms_1t"] / e["int8"]["latency_ms_1t"]
        e["speedup_2t"] = e["fp32"]["latency_ms_2t"] / e["int8"]["latency_ms_2t"]
    return out


def add_latency(entry: dict, fp32: Path, int8: Path, x: np.ndarray) -> None:
    """Set entry[variant]["latency_ms_<t>t"] (median ms per call on input `x`) for 1 and 2 threads,
    both variants measured interleaved (latency_ms)."""
    for threads in (1, 2):
        lat = latency_ms({"fp32": fp32, "int8": int8}, x, threads=threads)
        for v in ("fp32", "int8"):
            entry.setdefault(v, {})[f"latency_ms_{threads}t"] = lat[v]["median"]


def detector_entry(fp32: Path, int8: Path, data_dir: Path, wider_limit: int | None) -> dict:
    """{"fp32": {...}, "int8": {...}}: latency on one real frame, WIDER AP and file size of each."""
    m = {}
    add_latency(m, fp32, int8, frame_input(data_dir, fp32))
    for v, path in (("fp32", fp32), ("int8", int8)):
        w = evaluate_wider(data_dir / "widerface_val_subset", onnx_detector(path), limit=wider_limit)
        m[v].update({"wider_ap": w["ap"], "size_mb": file_mb(path)})
    return m


def embedder_entry(fp32: Path, int8: Path, detector: Path, data_dir: Path, lfw: dict[str, dict]) -> dict:
    """{"drift": {...}, "fp32": {...}, "int8": {...}} of one embedder: embedding drift on LFW chips,
    latency, and the LFW numbers of each variant (lfw: {variant: evaluate_lfw result of this embedder});
    the drift chips come from the fp32 `detector`."""
    ref = onnx_embedder(fp32)
    chips = drift_chips(data_dir, detector, ref)
    a, b = ref.embed(chips), onnx_embedder(int8).embed(chips)
    e = {"drift": {**embedding_drift(a, b), "l2_mean": float(np.linalg.norm(a - b, axis=1).mean()),
                   "chips": len(chips)}}
    add_latency(e, fp32, int8, ref.prepare(chips[:1]))
    for v, path in (("fp32", fp32), ("int8", int8)):
        r = lfw[v]
        e[v]["far_at_threshold"] = r["far_at_threshold_1e-3"]
        e[v].update({"lfw_accuracy": r["accuracy"], "lfw_std": r["std"],
                     "tar_at_far_1e-3": r["tar_at_far_0.001"], "threshold_at_far_1e-3": r["threshold_at_far_0.001"],
                     "size_mb": file_mb(path)})
    return e


def markdown(report: dict) -> str:
    """The fp32-vs-int8 table."""
    rows = ["| model | variant | LFW acc | TAR@FAR1e-3 | WIDER AP | ms 1 thr | ms 2 thr | MB |",
            "|---|---|---|---|---|---|---|---|"]
    pct = lambda v: f"{v * 100:.2f}%" if v is not None else "-"  # noqa: E731
    for name, e in report["models"].items():
        for v in ("fp32", "int8"):
            r = e[v]
            rows.append(f"| {name} | {v} | {pct(r.get('lfw_accuracy'))} | {pct(r.get('tar_at_far_1e-3'))} | "
                        f"{pct(r.get('wider_ap'))} | {r['latency_ms_1t']:.2f} | {r['latency_ms_2t']:.2f} | "
                        f"{r['size_mb']:.1f} |")
    lines = ["# fp32 vs int8", "", *rows, ""]
    for name, e in report["models"].items():
        d = e.get("drift")
        drift = (f"; embedding drift on {d['chips']} chips: cosine mean {d['cos_mean']:.5f}, min "
                 f"{d['cos_min']:.5f}, mean L2 {d['l2_mean']:.4f}") if d else ""
        lines.append(f"- {name}: int8 speed-up {e['speedup_1t']:.2f}x (1 thread), {e['speedup_2t']:.2f}x "
                     f"(2 threads){drift}")
    s = report.get("settings", {})
    lines += ["", f"LFW pairs per fold and class: {s.get('lfw_limit') or 'all (6,000 pairs)'}; "
              f"WIDER images: {s.get('wider_limit') or 'all (236)'}."]
    if report.get("fusion"):
        lines += ["", *fusion_markdown(report["fusion"])]
    if report.get("decisions"):
        lines += ["", "## What the bundle ships", ""] + [f"- {k}: {v}" for k, v in report["decisions"].items()]
    return "\n".join(lines) + "\n"


def fusion_markdown(f: dict) -> list[str]:
    """The score-fusion section: LFW (int8 and fp32), open-set FNIR at FPIR 1% and latency per candidate."""
    names = list(f["latency_ms_2t"])
    fused = names[-1]
    w = f["weight_choice"]
    lfw = lambda v, n: f["lfw"].get(v, {}).get("fused" if n == fused else n, {}).get("accuracy")  # noqa: E731
    pct = lambda v: f"{v * 100:.2f}%" if v is not None else "-"  # noqa: E731
    rows = [f"## Score fusion ({fused})", "",
            f"Weight {w['w']:.2f} on {names[0]} (two-fold picks: "
            + ", ".join(f"{k} {v['w']:.2f}" for k, v in w["folds"].items()) + "); z-statistics from "
            + ", ".join(f"{n} mean {s['mean']:.4f} std {s['std']:.4f}" for n, s in f["impostor_stats"].items())
            + f" ({f['calibration_images']} calibration images, pairs of different people).", "",
            "| embedder | LFW int8 | LFW fp32 | FNIR@FPIR1% all | FNIR@FPIR1% held-out | FNIR@FPIR0.1% all "
            "| det+align+embed 2 thr |", "|---|---|---|---|---|---|---|"]
    for n in names:
        o = f["openset"][n]["at_fpir"]
        rows.append(f"| {n} | {pct(lfw('int8', n))} | {pct(lfw('fp32', n))} | {pct(o['0.01']['fnir'])} | "
                    f"{pct(f['openset_heldout_fnir_at_fpir_0.01'][n])} | {pct(o['0.001']['fnir'])} | "
                    f"{f['latency_ms_2t'][n]:.1f} ms |")
    return rows + ["", f"Default embedder: {f['decision']}."]


def write_md_json(folder: Path, stem: str, text: str, report: dict) -> tuple[Path, Path]:
    """Write `<folder>/<stem>.md` (text) and `<stem>.json` (report); returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"{stem}.md", folder / f"{stem}.json"
    md.write_text(text)
    js.write_text(json.dumps(report, indent=1))
    return md, js


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    return write_md_json(folder, "calibration_report", markdown(report), report)
