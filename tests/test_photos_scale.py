"""Scale of the photo clustering (issue 13): a library of 100,000 synthetic fused embeddings, of the shipped
bundle's size and metric, clusters into its identities without an all-pairs matrix, in bounded time.

100,000 faces by default; FACEGATE_SCALE_FACES=20000 runs a smaller, quicker case. The clustering runs in a
fresh subprocess so its peak RSS (VmHWM, reset just before clustering) is its own. The measured times and
memory, and the Pi 4 estimate: docs/photos.md, "Scale".
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
from facegate.edge_runtime.eval.clustering_metrics import clustering_scores
from facegate.edge_runtime.eval.speed import random_templates
from facegate.edge_runtime.fusion import ScoreFusion
from facegate.edge_runtime.photos.cluster import average_linkage, linkage_threshold, neighbour_edges

FACES = int(os.environ.get("FACEGATE_SCALE_FACES", "100000"))
FACES_PER_IDENTITY = 33          # mean; identities of 1 to 65 faces, a few thousand at 100,000
NOISE = 0.7                      # a face = its identity's centre + NOISE x a random vector of the part's scale
TIME_LIMIT_S = {20000: 120, 100000: 600}   # generous bounds for a 2-core x86 CI runner


def shipped_metric() -> tuple[ScoreFusion, float]:
    """(the shipped bundle's fusion, the clustering threshold at the default false-merge rate)."""
    m = read_manifest(default_bundle_dir())
    assert m.fusion is not None and m.default_embedder == m.fusion.name, "the shipped bundle is fused"
    return m.fusion.fusion, linkage_threshold(m.score_models[m.default_embedder])


def synthetic_library(n: int, metric: ScoreFusion, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n fused-like faces of a few thousand identities.

    Returns:
        (emb float32 (n, D), identity int64 (n,), photo int64 (n,)): each identity a random centre
        (speed.random_templates: unit rows for a cosine part, dlib's scale for a euclidean one) plus
        noise; every tenth photo holds two faces of different identities (the cannot-link rule).
    """
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(1, 2 * FACES_PER_IDENTITY)))
    sizes[-1] -= sum(sizes) - n
    identity = np.repeat(np.arange(len(sizes)), sizes)
    centres = random_templates(len(sizes), sum(metric.dims), metric, seed=seed + 1)
    noise = random_templates(n, sum(metric.dims), metric, seed=seed + 101)
    emb = centres[identity] + NOISE * noise
    order = rng.permutation(n)
    emb, identity = emb[order], identity[order]
    photo = np.arange(n)
    pair = np.flatnonzero((np.arange(n - 1) % 20 == 0) & (identity[:-1] != identity[1:]))
    photo[pair + 1] = photo[pair]
    return np.ascontiguousarray(emb, np.float32), identity.astype(np.int64), photo.astype(np.int64)


def _rss_mb(field: str = "VmHWM") -> float:
    """The process's peak (VmHWM) or current (VmRSS) resident memory in MiB, from /proc/self/status."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(n: int, phases: bool = False) -> dict:
    """Build the library, reset the peak RSS, cluster it; the numbers as a dict (run in a subprocess).
    phases: also time the neighbour search alone first (numpy: what a Pi 4's BLAS runs)."""
    metric, threshold = shipped_metric()
    emb, identity, photo = synthetic_library(n, metric)
    knn_s = None
    if phases:
        start = time.perf_counter()
        neighbour_edges(emb, np.arange(n), metric, threshold)
        knn_s = time.perf_counter() - start
    reset = _reset_peak()
    before = _rss_mb("VmRSS")
    start = time.perf_counter()
    labels = average_linkage(emb, photo, np.full(n, -1), metric, threshold)
    seconds = time.perf_counter() - start
    shared = np.flatnonzero(photo[1:] == photo[:-1])        # the two faces of a two-face photo
    return {"faces": n, "dim": int(emb.shape[1]), "identities": int(identity.max() + 1),
            "groups": int(len(np.unique(labels))), "pairwise_f1": clustering_scores(identity, labels)["pairwise_f1"],
            "seconds": seconds, "neighbour_search_s": knn_s, "peak_rss_mb": _rss_mb(), "rss_before_mb": before,
            "peak_reset": reset, "embeddings_mb": emb.nbytes / 2**20, "threshold": threshold,
            "cannot_link_broken": int((labels[shared] == labels[shared + 1]).sum())}


def test_large_library_clusters_without_an_all_pairs_matrix():
    code = f"import json, tests.test_photos_scale as t; print(json.dumps(t.measure({FACES})))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         timeout=TIME_LIMIT_S.get(FACES, 900) * 2)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(r)
    all_pairs_mb = FACES * FACES * 4 / 2**20
    assert r["pairwise_f1"] >= 0.999, r
    assert abs(r["groups"] - r["identities"]) <= r["identities"] // 1000, r
    assert r["cannot_link_broken"] == 0, r
    assert r["peak_rss_mb"] < 1500 and r["peak_rss_mb"] - r["rss_before_mb"] < all_pairs_mb / 4, r
    assert r["seconds"] < TIME_LIMIT_S.get(FACES, 900), r


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else FACES, phases=True), indent=1))
