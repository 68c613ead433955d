"""The quality model's data: which LFW people train and which test, synthetic degradations, and the
targets (how far an image's genuine scores under the shipped fused matcher sit from its impostor ones).

Data rule (issue 14): "first" trains on the people of folds 1-5 of pairs.txt plus everyone in no fold
and tests on folds 6-10; "second" the other way round; "all" trains on everyone (nothing held out).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from facegate.edge_runtime.eval.lfw import fold_halves, read_pairs
from facegate.edge_runtime.face import Face
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.matching import similarity

from .common import DataFolderError

SPLITS = ("first", "second", "all")
GENUINE_STATS = ("mean", "min", "max")
KINDS = ("blur", "noise", "dark", "occlusion", "offcentre", "lowres")


def lfw_folders(lfw_dir: Path) -> dict[str, list[str]]:
    """{person: sorted relpaths of their .jpg photos} of an LFW folder. Raises DataFolderError when the
    folder or its pairs.txt is missing or it holds no photo."""
    lfw = Path(lfw_dir)
    if not lfw.is_dir():
        raise DataFolderError(f"LFW folder {lfw} does not exist; pass --lfw DIR or set FACEGATE_DATA")
    if not (lfw / "pairs.txt").is_file():
        raise DataFolderError(f"{lfw} has no pairs.txt: the split into training and test people needs it")
    try:
        people = {d.name: sorted(f"{d.name}/{f.name}" for f in d.iterdir() if f.suffix.lower() == ".jpg")
                  for d in sorted(lfw.iterdir()) if d.is_dir()}
    except OSError as e:
        raise DataFolderError(f"cannot read {lfw}: {e}") from None
    people = {n: r for n, r in people.items() if r}
    if not people:
        raise DataFolderError(f"{lfw} holds no person folder with a .jpg photo")
    return people


def split_people(lfw_dir: Path, split: str, limit_people: int | None = None) -> tuple[dict, dict, dict]:
    """(train, test, rule): {person: relpaths} for each side, and the rule in words.

    limit_people: keep only the first N people (name order) with >= 2 photos on each side, plus as many
    one-photo people (quick runs and tests)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    people = lfw_folders(lfw_dir)
    first, second = fold_halves(read_pairs(Path(lfw_dir) / "pairs.txt"))
    test_names = {"first": second, "second": first, "all": set()}[split]
    train = {n: r for n, r in people.items() if n not in test_names}
    test = {n: r for n, r in people.items() if n in test_names}
    if limit_people:
        train, test = _limit(train, limit_people), _limit(test, limit_people)
    rule = {"first": ("folds 1-5 of pairs.txt + people in no fold", "folds 6-10 of pairs.txt"),
            "second": ("folds 6-10 of pairs.txt + people in no fold", "folds 1-5 of pairs.txt"),
            "all": ("every LFW person", "nobody (nothing held out)")}[split]
    return train, test, {"train": rule[0], "test": rule[1]}


def _limit(people: dict, n: int) -> dict:
    multi = [k for k, v in people.items() if len(v) >= 2][:n]
    single = [k for k, v in people.items() if len(v) == 1][:n]
    return {k: people[k] for k in sorted(multi + single)}


def degrade(image: np.ndarray, face: Face, rng: np.random.Generator) -> tuple[np.ndarray, Face, list[str]]:
    """One or two random degradations of random strength: uint8 RGB (H, W, 3) image and its face ->
    (degraded image, the face to align it with (landmarks moved for "offcentre"), the kinds applied)."""
    kinds = list(rng.choice(KINDS, size=int(rng.choice([1, 1, 2])), replace=False))
    img, lm = image.astype(np.float32), face.landmarks.astype(np.float32).copy()
    side = max(8.0, min(face.width, face.height))
    for k in kinds:
        if k == "blur":
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.01, 0.05) * side)
        elif k == "noise":
            img = img + rng.normal(0, rng.uniform(5, 45), img.shape).astype(np.float32)
        elif k == "dark":
            img = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(1, 2.2) * rng.uniform(0.06, 0.5)
        elif k == "occlusion":
            img = _occlude(img, face, rng)
        elif k == "offcentre":
            lm = _jitter(lm, rng)
        elif k == "lowres":
            img = _low_resolution(img, side, rng)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return out, Face(face.box, lm, face.score), kinds


def _occlude(img: np.ndarray, face: Face, rng) -> np.ndarray:
    x1, y1, x2, y2 = face.box
    w, h = (x2 - x1) * rng.uniform(0.3, 0.7), (y2 - y1) * rng.uniform(0.3, 0.7)
    x, y = rng.uniform(x1, max(x1 + 1, x2 - w)), rng.uniform(y1, max(y1 + 1, y2 - h))
    img = img.copy()
    img[int(max(0, y)):int(max(0, y + h)), int(max(0, x)):int(max(0, x + w))] = rng.uniform(0, 255, 3)
    return img


def _jitter(lm: np.ndarray, rng) -> np.ndarray:
    eye = float(np.hypot(*(lm[1] - lm[0]))) or 1.0
    c = lm.mean(0)
    a = np.deg2rad(rng.uniform(-25, 25))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32) * rng.uniform(0.75, 1.3)
    return ((lm - c) @ rot.T + c + rng.normal(0, 0.15, 2) * eye).astype(np.float32)


def _low_resolution(img: np.ndarray, side: float, rng) -> np.ndarray:
    f = rng.uniform(10, 40) / side
    if f >= 1:
        return img
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _image_seed(relpath: str, seed: int) -> list[int]:
    """Per-image random stream: the same degradations whatever subset of images is processed."""
    return [seed, int(hashlib.sha256(relpath.encode()).hexdigest()[:8], 16)]


def degraded_embeddings(lfw_dir: Path, desc: dict, indices: np.ndarray, embedder, per_image: int, seed: int,
                        progress: bool = True, batch: int = 32) -> dict:
    """Embed `per_image` degraded copies of each image in `indices` (faces found only), aligned with the
    clean detection's landmarks (moved for "offcentre").

    Returns {"source": int64 (M,) image index, "embedding": float32 (M, D) raw fused, "kinds": str (M,)}."""
    from tqdm import tqdm

    src, kinds, chips, embs = [], [], [], []

    def flush():
        if chips:
            embs.append(embedder.embed_sets(chips))
            chips.clear()

    for i in tqdm(indices, desc="degrade", unit="img", disable=not progress):
        rel = desc["relpaths"][i]
        rng = np.random.default_rng(_image_seed(rel, seed))
        img = load_image(Path(lfw_dir) / rel)
        face = Face(desc["box"][i], desc["landmarks"][i], float(desc["det_score"][i]))
        for _ in range(per_image):
            im2, f2, k = degrade(img, face, rng)
            chips.append(embedder.align_all(im2, f2))
            src.append(int(i))
            kinds.append("+".join(k))
            if len(chips) >= batch:
                flush()
    flush()
    dim = desc["embedding"].shape[1]
    return {"source": np.asarray(src, np.int64), "kinds": np.asarray(kinds, str),
            "embedding": np.concatenate(embs) if embs else np.zeros((0, dim), np.float32)}


def cached_degraded(cache: Path, lfw_dir: Path, desc: dict, indices: np.ndarray, bundle, per_image: int,
                    seed: int, progress: bool) -> dict:
    """degraded_embeddings, read from / written to `cache` (keyed on the images, the model files
    (quality_eval.features_key), copies, seed)."""
    rels = [desc["relpaths"][i] for i in indices]
    from facegate.edge_runtime.eval.quality_eval import features_key

    key = hashlib.sha256(("\n".join(rels) + f"{features_key(bundle)}|{per_image}|{seed}").encode()).hexdigest()[:16]
    path = Path(cache) / f"degraded_{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        return d
    d = degraded_embeddings(lfw_dir, desc, indices, bundle.embedder, per_image, seed, progress)
    Path(cache).mkdir(parents=True, exist_ok=True)
    np.savez(path, **d)
    return d


def margin_targets(probe_emb: np.ndarray, probe_person: np.ndarray, probe_source: np.ndarray,
                   gallery_emb: np.ndarray, gallery_person: np.ndarray, gallery_index: np.ndarray, metric,
                   quantile: float = 0.99, block: int = 512, genuine: str = "mean") -> np.ndarray:
    """Per probe: the `genuine` statistic of its genuine scores ("mean", "min" = its worst genuine score,
    "max" = its best one) minus the `quantile` of its impostor scores.

    probe_emb: float32 (M, D) raw embeddings; probe_person: (M,) labels; probe_source: int (M,) index of
    the clean image each probe comes from (left out of its own genuine scores). gallery_*: the clean
    images compared with, (G, D), (G,), (G,). metric: the matcher (a ScoreFusion for the shipped one).
    Returns float32 (M,); NaN where a probe has no genuine partner."""
    out = np.full(len(probe_emb), np.nan, np.float32)
    g = len(gallery_emb)
    for s in range(0, len(probe_emb), block):
        sl = slice(s, s + block)
        sim = similarity(probe_emb[sl], gallery_emb, metric)
        same = probe_person[sl][:, None] == gallery_person[None, :]
        gen = same & (probe_source[sl][:, None] != gallery_index[None, :])
        n_gen = gen.sum(1)
        if genuine == "mean":
            mean_gen = np.where(n_gen > 0, (sim * gen).sum(1) / np.maximum(n_gen, 1), np.nan)
        elif genuine in ("min", "max"):
            pick = np.min if genuine == "min" else np.max
            fill = np.inf if genuine == "min" else -np.inf
            mean_gen = np.where(n_gen > 0, pick(np.where(gen, sim, fill), axis=1), np.nan)
        else:
            raise ValueError(f"unknown genuine statistic {genuine!r}; expected one of {GENUINE_STATS}")
        ranked = np.sort(np.where(same, -np.inf, sim), axis=1)      # impostors last, ascending
        n_imp = g - same.sum(1)
        pos = (g - n_imp) + np.floor(quantile * np.maximum(n_imp - 1, 0)).astype(int)
        q = ranked[np.arange(len(ranked)), np.minimum(pos, g - 1)]
        out[sl] = np.where(n_imp > 0, mean_gen - q, np.nan)
    return out


QUALITY_BINS = (-np.inf, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, np.inf)


def miss_by_quality(quality: np.ndarray, emb: np.ndarray, source: np.ndarray, person: np.ndarray,
                    gallery: np.ndarray, gallery_emb: np.ndarray, metric, threshold: float,
                    bins=QUALITY_BINS, block: int = 2048) -> list[dict]:
    """How often faces of each predicted quality fail their genuine comparisons: per quality bin, the number
    of faces and the share of their comparisons with the other clean photos of the same person that score
    below `threshold` (the matcher's FMR 1e-3 score).

    quality: float (M,) of the probes; emb: float32 (M, D) their raw embeddings; source: int (M,) the clean
    photo each comes from; person: labels of every photo (indexed by source and gallery); gallery: int (G,)
    clean photos compared with, gallery_emb float32 (G, D). Probes without a partner are left out.
    Returns [{"from", "to" (None = unbounded), "faces", "missed_share"}] per bin."""
    miss = np.full(len(emb), np.nan)
    for s in range(0, len(emb), block):
        sl = slice(s, s + block)
        sim = similarity(emb[sl], gallery_emb, metric)
        gen = (person[source[sl]][:, None] == person[gallery][None, :]) & (source[sl][:, None] != gallery[None, :])
        n = gen.sum(1)
        miss[sl] = np.where(n > 0, ((sim < threshold) & gen).sum(1) / np.maximum(n, 1), np.nan)
    ok = np.isfinite(miss)
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        b = ok & (quality >= lo) & (quality < hi)
        rows.append({"from": float(lo) if np.isfinite(lo) else None, "to": float(hi) if np.isfinite(hi) else None,
                     "faces": int(b.sum()),
                     "missed_share": float(miss[b].mean()) if b.any() else float("nan")})
    return rows


def pair_targets(x: np.ndarray, source: np.ndarray, person: np.ndarray, gallery: np.ndarray, metric,
                 per_probe: int, seed: int, fmr: float = 1e-3) -> dict:
    """Genuine pairs for the pairwise loss: each probe (a clean photo or a degraded copy, x float32 (M, D),
    `source` int (M,) its clean photo) with up to `per_probe` other clean photos of the same person (drawn
    with a seeded generator); the gallery's clean photos come first in x, in `gallery` order.

    Returns {"a": int (P,) probe rows of x, "b": int (P,) partner rows of x, "t": float32 (P,) the pair's
    fused score minus the score at which `fmr` of the gallery's impostor comparisons match}."""
    from facegate.edge_runtime.eval.quality_eval import impostor_threshold
    from facegate.edge_runtime.matching import pair_similarity

    rng = np.random.default_rng(seed)
    row = {int(g): i for i, g in enumerate(gallery)}
    by_person: dict[str, list[int]] = {}
    for g in gallery:
        by_person.setdefault(person[g], []).append(int(g))
    a, b = [], []
    for j, s in enumerate(source):
        partners = [g for g in by_person.get(person[s], []) if g != s]
        for g in rng.choice(partners, size=min(per_probe, len(partners)), replace=False) if partners else []:
            a.append(j)
            b.append(row[int(g)])
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    thr, _ = impostor_threshold(x[:len(gallery)], person[gallery], metric, fmr)
    scores = [pair_similarity(x[a[i:i + 4096]], x[b[i:i + 4096]], metric) for i in range(0, len(a), 4096)]
    t = (np.concatenate(scores) - thr).astype(np.float32) if scores else np.zeros(0, np.float32)
    return {"a": a, "b": b, "t": t}
