"""Per-stage latency of one door frame: decode -> detect -> align -> embed -> 1:N match.

The test frame is 640x480 (what a kiosk camera delivers) holding one real face: a face photo
(e.g. a 250x250 LFW image) scaled x1.8 (face about 200 px high, as at arm's length from the
camera) pasted in the middle of a canvas filled with the same photo stretched and heavily blurred
(so the background has real texture but no second face). It is JPEG-encoded once (quality 90);
the decode stage times `imageio.decode_image` on those bytes (cv2.imdecode + BGR->RGB + the
runtime's safety checks), i.e. what the device does with a camera JPEG.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import cv2
import numpy as np

from ..detection import central_face
from ..fusion import ScoreFusion
from ..imageio import decode_image, encode_jpeg, load_image
from ..matching import TemplateGallery
from ..paths import data_dir

FRAME_SIZE = (640, 480)        # width, height
TEMPLATES_PER_PERSON = 5      # enrolled photos per person in the random template sets
STAGES = ("decode", "detect", "align", "embed", "match", "detect+align+embed", "total")
LIVENESS_STAGES = ("liveness", "detect+align+embed+liveness")    # with a liveness checker (its own row)


def door_frame(photo_rgb: np.ndarray, size: tuple[int, int] = FRAME_SIZE, zoom: float = 1.8) -> np.ndarray:
    """uint8 RGB (h, w, 3) frame (size = (w, h)) with `photo_rgb` scaled by `zoom` at its centre over a
    blurred, stretched copy of itself. The pasted photo is cropped if it does not fit."""
    w, h = size
    bg = cv2.GaussianBlur(cv2.resize(photo_rgb, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), 25)
    ph, pw = photo_rgb.shape[:2]
    big = cv2.resize(photo_rgb, (round(pw * zoom), round(ph * zoom)), interpolation=cv2.INTER_CUBIC)
    bh, bw = big.shape[:2]
    cy, cx = max((bh - h) // 2, 0), max((bw - w) // 2, 0)
    big = big[cy:cy + h, cx:cx + w]
    bh, bw = big.shape[:2]
    y0, x0 = (h - bh) // 2, (w - bw) // 2
    frame = bg.copy()
    frame[y0:y0 + bh, x0:x0 + bw] = big
    return frame


def random_templates(n: int, dim: int, metric, seed: int = 0) -> np.ndarray:
    """float32 (n, dim) random templates (unit rows for cosine; dlib-like scale for euclidean; for a
    ScoreFusion, each part's slice scaled for its part's metric)."""
    if isinstance(metric, ScoreFusion):
        return np.concatenate([random_templates(n, d, m, seed + i) for i, (d, m) in
                               enumerate(zip(metric.dims, metric.metrics))], axis=1)
    t = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return t if metric == "cosine" else t * 0.6


def face_photos(root: Path | None = None) -> list[Path]:
    """The three LFW face photos the speed frames are made from (root: the data folder, default $FACEGATE_DATA)."""
    lfw = Path(root if root is not None else data_dir()) / "lfw"
    photos = [lfw / "Colin_Powell/Colin_Powell_0001.jpg", lfw / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
              lfw / "George_W_Bush/George_W_Bush_0001.jpg"]
    missing = [p for p in photos if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} not found; set FACEGATE_DATA")
    return photos


def fresh_process(fn, *args):
    """fn(*args) in a new interpreter (spawned), so each measurement gets its own onnxruntime thread
    pool and its own peak RSS; returns fn's result."""
    import argparse
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    plain = [argparse.Namespace(**{k: v for k, v in vars(a).items() if not callable(v)})
             if isinstance(a, argparse.Namespace) else a for a in args]  # drop the CLI handler
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *plain).result()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_stages(detector, embedder, image_paths: list[str | Path], threads: int = 2,
                 repeats: int = 30, templates: int = 1000, warmup: int = 3, liveness=None) -> dict:
    """Median latency (ms) of each stage over `repeats` frames built from `image_paths` (cycled).

    Args:
        detector: .detect(image_rgb) -> list[Face]; embedder: .align_all(image, face), .embed_sets(chip sets),
            .metric and .embedding_size (a FaceEmbedder, a FusedEmbedder or the OpenCV Zoo peer: for a
            fused embedder "align" and "embed" cover every part). Their model thread counts are whatever they were built with;
            `threads` is applied to OpenCV (cv2.setNumThreads) for decode/align and is recorded.
        image_paths: face photos, one face each (see module doc for how frames are made).
        liveness: a LivenessChecker (edge_runtime/liveness.py) or None; given, its score of the face is timed
            after the embedding (stage "liveness"; "total" includes it) and LIVENESS_STAGES are reported too.
    Returns:
        {"ms": {stage: median ms}, "ms_p90": {stage: 90th percentile}, "repeats", "threads",
         "frame": [w, h], "templates": n, "peak_rss_mb": float (whole process so far)}
    """
    if not image_paths:
        raise ValueError("need at least one face photo")
    frames = [encode_jpeg(door_frame(load_image(p)), 90) for p in image_paths]
    people = np.arange(templates) // TEMPLATES_PER_PERSON
    enrolled = TemplateGallery(tuple(f"p{i}" for i in people), tuple(int(i) for i in people),
                               random_templates(templates, embedder.embedding_size, embedder.metric),
                               embedder.metric)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    stages = STAGES + (LIVENESS_STAGES if liveness is not None else ())
    times = {s: [] for s in stages}
    try:
        for k in range(warmup + repeats):
            data = frames[k % len(frames)]
            t0 = time.perf_counter()
            img = decode_image(data, "frame")
            t1 = time.perf_counter()
            face = central_face(detector, img)
            t2 = time.perf_counter()
            if face is None:
                raise ValueError(f"no face found in the frame made from {image_paths[k % len(frames)]}")
            chips = embedder.align_all(img, face)
            t3 = time.perf_counter()
            emb = embedder.embed_sets([chips])
            t4 = time.perf_counter()
            if liveness is not None:
                liveness.score(img, face)
            tl = time.perf_counter()
            enrolled.nearest(emb)
            t5 = time.perf_counter()
            if k >= warmup:
                dts = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - tl, t4 - t1, t5 - t0, tl - t4, tl - t1)
                for s, dt in zip(stages, dts):
                    times[s].append(dt * 1000)
    finally:
        cv2.setNumThreads(previous)
    return {"ms": {s: float(np.median(v)) for s, v in times.items()},
            "ms_p90": {s: float(np.percentile(v, 90)) for s, v in times.items()},
            "repeats": repeats, "threads": threads, "frame": list(FRAME_SIZE), "templates": templates,
            "peak_rss_mb": peak_rss_mb()}


def bench_search(sizes=(1000, 10000, 100000), dim: int = 128, metric: str | ScoreFusion = "cosine",
                 templates_per_person: int = TEMPLATES_PER_PERSON, repeats: int = 50, seed: int = 0) -> dict:
    """Time 1:N search of one probe against random enrolled templates (a ScoreFusion: fused templates of its
    embedding size; `dim` is then ignored).

    Returns:
        {"metric" (a fusion's name), "dim", "templates_per_person", "repeats",
         "rows": [{"templates": T, "people": P, "median_ms": float, "p90_ms": float}, ...]}
        where the times are per single-probe `nearest` call (template preparation excluded).
    """
    rng = np.random.default_rng(seed)
    rows = []
    if isinstance(metric, ScoreFusion):
        dim = metric.embedding_size
    for size in sizes:
        size = int(size)
        matrix = rng.standard_normal((size, dim), dtype=np.float32)
        pids = np.arange(size) // templates_per_person
        templates = TemplateGallery(tuple(f"p{i}" for i in pids), tuple(int(i) for i in pids), matrix, metric)
        probes = rng.standard_normal((repeats + 1, dim), dtype=np.float32)
        templates.nearest(probes[0])                       # warm-up
        times = []
        for probe in probes[1:]:
            t0 = time.perf_counter()
            templates.nearest(probe)
            times.append((time.perf_counter() - t0) * 1000.0)
        rows.append({"templates": size, "people": int(pids[-1]) + 1 if size else 0,
                     "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))})
    return {"metric": metric.name if isinstance(metric, ScoreFusion) else metric, "dim": dim,
            "templates_per_person": templates_per_person, "repeats": repeats, "rows": rows}
