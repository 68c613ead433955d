"""`facegate photos bench`: the photo organiser on LFW against the true identities, and the OpenCV Zoo peer.

The set: every LFW person with >= MIN_PHOTOS photos plus DISTRACTORS one-photo people (fixed seed). Each
photo's labelled face is the face nearest its centre (LFW's rule); other faces in the photo (people in
the background) are clustered like any other but not scored. A labelled face the quality gate sends to
"unsorted" counts as a person of its own (it costs recall), and the fraction sorted is reported.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from ..face import Face, nearest_to_center
from ..matching import l2_normalize

MIN_PHOTOS = 10
DISTRACTORS = 1000
SEED = 0


def bench_photos(lfw_dir: str | Path, min_photos: int = MIN_PHOTOS, distractors: int = DISTRACTORS,
                 seed: int = SEED) -> tuple[list[str], list[str], list[str]]:
    """(photo paths, their true person, distractor names): every photo of each person with >= min_photos
    photos, and one photo each of `distractors` people drawn (seeded) from the one-photo people."""
    lfw = Path(lfw_dir)
    people = {d.name: sorted(str(f) for f in d.iterdir() if f.suffix.lower() == ".jpg")
              for d in sorted(lfw.iterdir()) if d.is_dir()}
    many = [n for n, ps in people.items() if len(ps) >= min_photos]
    ones = [n for n, ps in people.items() if len(ps) == 1]
    chosen = sorted(random.Random(seed).sample(ones, min(distractors, len(ones))))
    paths, labels = [], []
    for n in many + chosen:
        paths += people[n]
        labels += [n] * len(people[n])
    return paths, labels, chosen


def labelled_faces(boxes: list[np.ndarray], shape: tuple[int, int]) -> int | None:
    """Index of the face nearest the photo's centre (boxes: float32 (4,) each; shape: (H, W)), or None."""
    faces = [Face(b, np.zeros((5, 2), np.float32), 1.0) for b in boxes]
    best = nearest_to_center(faces, shape[1], shape[0])
    return None if best is None else next(i for i, f in enumerate(faces) if f is best)


def pair_counts(truth: np.ndarray, found: np.ndarray) -> tuple[int, int, int]:
    """(same-person pairs put together, pairs put together, true same-person pairs) for int label arrays (N,)."""
    def pairs(x):
        return int((x * (x - 1) // 2).sum())
    _, t = np.unique(truth, return_inverse=True)
    _, f = np.unique(found, return_inverse=True)
    joint = np.unique(t.astype(np.int64) * (f.max() + 1) + f, return_counts=True)[1]
    return pairs(joint), pairs(np.bincount(f)), pairs(np.bincount(t))


def clustering_scores(truth: np.ndarray, found: np.ndarray) -> dict:
    """Pairwise precision/recall/F1 and BCubed precision/recall/F1 of `found` against `truth` (labels (N,))."""
    tp, predicted, actual = pair_counts(truth, found)
    p = tp / predicted if predicted else 1.0
    r = tp / actual if actual else 1.0
    _, t = np.unique(truth, return_inverse=True)
    _, f = np.unique(found, return_inverse=True)
    key = t.astype(np.int64) * (f.max() + 1) + f
    _, inv, joint = np.unique(key, return_inverse=True, return_counts=True)
    both = joint[inv].astype(float)
    bp = float(np.mean(both / np.bincount(f)[f]))
    br = float(np.mean(both / np.bincount(t)[t]))
    return {"pairwise_precision": p, "pairwise_recall": r, "pairwise_f1": _f1(p, r),
            "bcubed_precision": bp, "bcubed_recall": br, "bcubed_f1": _f1(bp, br),
            "people_found": int(len(np.unique(found))), "people_true": int(len(np.unique(truth)))}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def dbscan_cosine(emb: np.ndarray, eps: float = 0.5, min_samples: int = 3) -> np.ndarray:
    """DBSCAN on cosine distance (what Immich runs): float (N, D) -> int64 labels (N,), -1 = noise.

    Holds the (N, N) similarity matrix: for evaluation sets only.
    """
    x = l2_normalize(emb)
    near = (1.0 - x @ x.T) <= eps
    core = near.sum(1) >= min_samples
    labels = np.full(len(x), -1, np.int64)
    cluster = 0
    for i in np.flatnonzero(core):
        if labels[i] >= 0:
            continue
        labels[i], stack = cluster, [i]
        while stack:
            j = stack.pop()
            if not core[j]:
                continue
            for k in np.flatnonzero(near[j] & (labels < 0)):
                labels[k] = cluster
                stack.append(k)
        cluster += 1
    return labels


def noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    """DBSCAN labels with each noise point (-1) made a cluster of its own."""
    out = labels.copy()
    noise = np.flatnonzero(out < 0)
    out[noise] = out.max(initial=-1) + 1 + np.arange(len(noise))
    return out


def peer_embeddings(peer, paths: list[str], progress=None) -> tuple[np.ndarray, np.ndarray, float]:
    """The peer's embedding of each photo's central face: (float32 (N, 128), bool found (N,), photos/s)."""
    from ..imageio import load_image

    out, found = np.zeros((len(paths), 128), np.float32), np.zeros(len(paths), bool)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        img = load_image(p)
        f = nearest_to_center(peer.detect(img), img.shape[1], img.shape[0])
        if f is not None:
            out[i], found[i] = peer.embed(peer.align(img, f))[0], True
        if progress is not None:
            progress(i + 1, len(paths), p)
    return out, found, len(paths) / (time.perf_counter() - t0)
