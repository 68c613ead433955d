"""Which calibration settings to ship: every method (MinMax, Entropy, Percentile) x activation type
(U8 = U8S8, S8 = S8S8) for each embedder, scored by the same LFW code as the bundle report.

The LFW pair images are detected (fp32 detector) and aligned once; every int8 variant then embeds
the same chips, so the table differs only by the quantisation. Latency is per call at 2 threads,
measured interleaved with the fp32 model (calibration.benchmark.latency_ms), so each speed-up is a
ratio from one run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.edge_runtime.detection import central_face
from facegate.edge_runtime.eval.lfw import read_pairs
from facegate.edge_runtime.eval.lfw_eval import pair_scores, scores_report
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.sessions import onnx_detector, onnx_embedder

from .benchmark import embedding_drift, latency_ms
from .quantize import METHODS as QUANT_METHODS
from .quantize import quantize_model
from .reader import EmbedderCalibrationReader, calibration_images
from .report import DETECTOR, write_md_json

METHODS = tuple(QUANT_METHODS)          # every calibration method quantize_model knows
LFW_NOISE = 0.0005         # 0.05 LFW points = 3 of 6,000 pairs: accuracies this close count as tied
ACTIVATIONS = ("U8", "S8")


def pair_chips(lfw: Path, relpaths: list[str], detector_path: Path, embedders: dict) -> dict[str, dict]:
    """{embedder name: {relpath: uint8 RGB chip}} for the face nearest each image's centre (fp32 detector);
    images without a face are absent."""
    from tqdm import tqdm

    det = onnx_detector(detector_path)
    out = {n: {} for n in embedders}
    for rel in tqdm(relpaths, desc="lfw chips", unit="img"):
        img = load_image(Path(lfw) / rel)
        face = central_face(det, img)
        if face is not None:
            for n, e in embedders.items():
                out[n][rel] = e.align(img, face)
    return out


def _embed(embedder, chips: dict) -> dict:
    keys = list(chips)
    vecs = np.concatenate([embedder.embed(np.stack([chips[k] for k in keys[i:i + 64]]))
                           for i in range(0, len(keys), 64)]) if keys else np.zeros((0, 0), np.float32)
    return dict(zip(keys, vecs))


def calibration_grid(fp32: dict[str, Path], source: dict[str, Path], work: Path, data_dir: Path,
                     embedders: list[str], images: Path | None = None, limit: int | None = None,
                     lfw_limit: int | None = None, methods=METHODS, activations=ACTIVATIONS) -> dict:
    """Quantise every embedder with every (method, activation type) and score each variant.

    Args:
        fp32: {name: fp32 ONNX} including report.DETECTOR (the detector for chips and calibration).
        source: {embedder: graph to quantise} (SFace: its PRelu-rewritten graph).
        images/limit: calibration images (default: LFW people outside pairs.txt).
    Returns:
        {"rows": [{"embedder", "method", "activations", "lfw_accuracy", "tar_at_far_1e-3", "cos_mean",
                   "cos_min", "ms_2t", "fp32_ms_2t", "speedup_2t", "path"}],
         "fp32": {embedder: {"lfw_accuracy", "tar_at_far_1e-3"}}, "best": {embedder: row}, "pairs": n}
    """
    lfw = Path(data_dir) / "lfw"
    pairs = read_pairs(lfw / "pairs.txt")
    if lfw_limit:
        pairs = [p for i, p in enumerate(pairs) if i % 300 < lfw_limit]
    rels = sorted({p.a for p in pairs} | {p.b for p in pairs})
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    ref = {n: onnx_embedder(fp32[n]) for n in embedders}
    chips = pair_chips(lfw, rels, fp32[DETECTOR], ref)
    calib = calibration_images(images, limit=limit)
    for stale in (Path(work) / "grid").glob("*.ranges.json*"):    # ranges of an earlier run's images
        stale.unlink()
    report = {"pairs": len(pairs), "rows": [], "fp32": {}, "best": {}}
    for n in embedders:
        base = _embed(ref[n], chips[n])
        r = scores_report(pair_scores(pairs, base, ref[n].metric), same, folds, ref[n].metric)
        report["fp32"][n] = {"lfw_accuracy": r["accuracy"], "tar_at_far_1e-3": r["tar_at_far_0.001"]}
        keys = list(base)[:: max(1, len(base) // 500)]
        x = ref[n].prepare(next(iter(chips[n].values()))[None])
        for m in methods:
            for t in activations:
                out = Path(work) / "grid" / f"{n}.{m}.{t}.onnx"
                quantize_model(source[n], out, lambda p=fp32[n]: EmbedderCalibrationReader(
                    p, calib, fp32[DETECTOR]), method=m, activation_type=t,
                    ranges_cache=Path(work) / "grid" / f"{n}.{m}.ranges.json")     # one calibration per method
                e = onnx_embedder(out)
                table = _embed(e, chips[n])
                s = scores_report(pair_scores(pairs, table, e.metric), same, folds, e.metric)
                drift = embedding_drift(np.stack([base[k] for k in keys]), np.stack([table[k] for k in keys]))
                lat = latency_ms({"fp32": fp32[n], "int8": out}, x, threads=2)
                report["rows"].append({"embedder": n, "method": m, "activations": t, "lfw_accuracy": s["accuracy"],
                                       "tar_at_far_1e-3": s["tar_at_far_0.001"], "cos_mean": drift["cos_mean"],
                                       "cos_min": drift["cos_min"], "ms_2t": lat["int8"]["median"],
                                       "fp32_ms_2t": lat["fp32"]["median"],
                                       "speedup_2t": lat["fp32"]["median"] / lat["int8"]["median"], "path": str(out)})
        report["best"][n] = best_setting([r for r in report["rows"] if r["embedder"] == n])
    return report


def best_setting(rows: list[dict], noise: float = LFW_NOISE) -> dict:
    """The row to ship: LFW accuracy within `noise` of the best row's, then the highest TAR at FAR 1e-3,
    then the fastest."""
    top = max(r["lfw_accuracy"] for r in rows)
    close = [r for r in rows if r["lfw_accuracy"] >= top - noise - 1e-12]
    return max(close, key=lambda r: (r["tar_at_far_1e-3"], -r["ms_2t"]))


def grid_markdown(report: dict) -> str:
    """The grid as a Markdown table, with the best variant per embedder (`best_setting`)."""
    pct = lambda v: f"{v * 100:.2f}%"  # noqa: E731
    lines = ["# Calibration settings compared", "",
             f"LFW 10-fold on {report['pairs']} pairs (same chips for every variant); latency per call at 2 threads, "
             "interleaved with fp32.", "",
             "| embedder | method | activations | LFW acc | TAR@FAR1e-3 | cosine to fp32 mean / min | ms 2 thr | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for n, f in report["fp32"].items():
        lines.append(f"| {n} | fp32 | - | {pct(f['lfw_accuracy'])} | {pct(f['tar_at_far_1e-3'])} | 1 / 1 | "
                     f"{np.median([r['fp32_ms_2t'] for r in report['rows'] if r['embedder'] == n]):.2f} | 1.00x |")
        for r in (r for r in report["rows"] if r["embedder"] == n):
            best = "**" if r is report["best"][n] or r == report["best"][n] else ""
            lines.append(f"| {n} | {best}{r['method']}{best} | {best}{r['activations']}S8{best} | "
                         f"{pct(r['lfw_accuracy'])} | {pct(r['tar_at_far_1e-3'])} | {r['cos_mean']:.4f} / "
                         f"{r['cos_min']:.4f} | {r['ms_2t']:.2f} | {r['speedup_2t']:.2f}x |")
    lines += [""] + [f"- {n}: best {b['method']} {b['activations']}S8 (LFW {pct(b['lfw_accuracy'])}, "
                     f"{b['speedup_2t']:.2f}x)" for n, b in report["best"].items()]
    return "\n".join(lines) + "\n"


def write_grid(report: dict, folder: Path) -> tuple[Path, Path]:
    return write_md_json(folder, "calibration_grid", grid_markdown(report), report)
