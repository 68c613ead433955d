"""The student's data: aligned 112x112 chips of every photo with a face, the teacher's embeddings of them,
and the on-the-fly augmentation.

Chips are cut once with the shipped detector's landmarks (the cached description of
edge_runtime/eval/quality_eval.cached_description, shared with the quality model) on the teacher's
template, and kept as one uint8 .npy per image list under the cache folder (build/student/ by default;
never committed: it is research data). The teacher is one embedder of a bundle (default: SFace of
the shipped bundle); its embeddings of the clean chips come from the same description (no second run).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from facegate.edge_runtime.eval.quality_eval import cached_description
from facegate.edge_runtime.face import Face
from facegate.edge_runtime.imageio import load_image

from .common import DataFolderError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def folder_relpaths(folder: Path) -> list[str]:
    """Sorted relpaths of every image below `folder` (an unlabeled --extra folder). Raises DataFolderError
    when the folder is missing, unreadable or holds no image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFolderError(f"image folder {folder} does not exist")
    try:
        rels = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as e:
        raise DataFolderError(f"cannot read {folder}: {e}") from None
    if not rels:
        raise DataFolderError(f"{folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return rels


def teacher_part(bundle, name: str):
    """(FaceEmbedder, slice of the bundle embedder's raw embedding) of the embedder `name` of a loaded
    bundle (a part of its fusion or the embedder itself). Raises DataFolderError when it has none."""
    emb = bundle.embedder
    parts = getattr(emb, "parts", None) or [emb]
    start = 0
    for p in parts:
        if p.name == name:
            return p, slice(start, start + p.embedding_size)
        start += p.embedding_size
    raise DataFolderError(f"bundle {bundle.path} has no embedder {name!r} in use (it runs {emb.name}); "
                          f"pass a bundle whose default embedder is or contains {name}")


def chip_set(root: Path, relpaths: list[str], bundle, teacher: str, cache: Path, describe_cache: Path | None = None,
             progress: bool = True) -> dict:
    """Aligned chips and teacher embeddings of the photos in `relpaths` (under `root`) where the bundle's
    detector finds a face (the one nearest the centre).

    Returns {"relpaths": str (N,), "chips": uint8 (N, S, S, 3) RGB (memory-mapped), "teacher": float32 (N, D)
    L2-normalised}; N counts the photos with a face. Read from / written to `cache`; the detections come
    from the description cache `describe_cache` (default: `cache`; the quality model's build/quality/cache
    holds LFW's)."""
    from tqdm import tqdm

    root, cache = Path(root), Path(cache)
    part, sl = teacher_part(bundle, teacher)
    key = hashlib.sha256(("\n".join(relpaths) + f"|{bundle.id}|{teacher}").encode()).hexdigest()[:16]
    chips_path, meta_path = cache / f"chips_{key}.npy", cache / f"chips_{key}.npz"
    if chips_path.is_file() and meta_path.is_file():
        with np.load(meta_path) as z:
            return {"relpaths": z["relpaths"], "teacher": z["teacher"],
                    "chips": np.load(chips_path, mmap_mode="r")}
    desc = cached_description(Path(describe_cache or cache), root, relpaths, bundle, progress)
    found = np.flatnonzero(desc["found"])
    s = part.contract.input_size
    cache.mkdir(parents=True, exist_ok=True)
    tmp = chips_path.with_name(chips_path.name + ".partial.npy")
    chips = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(found), s, s, 3))
    for k, i in enumerate(tqdm(found, desc="chips", unit="img", disable=not progress)):
        face = Face(desc["box"][i], desc["landmarks"][i], float(desc["det_score"][i]))
        chips[k] = part.align(load_image(root / desc["relpaths"][i]), face)
    chips.flush()
    del chips
    t = desc["embedding"][found][:, sl].astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    rels = np.asarray([desc["relpaths"][i] for i in found])
    np.savez(meta_path, relpaths=rels, teacher=t)
    tmp.rename(chips_path)
    return {"relpaths": rels, "teacher": t, "chips": np.load(chips_path, mmap_mode="r")}


def augment(chip: np.ndarray, rng: np.random.Generator, shift: float = 4.0, degrees: float = 8.0,
            blur_p: float = 0.2) -> np.ndarray:
    """One random variant of a uint8 RGB (S, S, 3) chip: horizontal flip (p 0.5), one affine warp with a
    shift of up to +-`shift` px, a rotation of up to +-`degrees` and a scale in [0.95, 1.05] (black
    outside, as the runtime's alignment), brightness/contrast/saturation jitter, Gaussian blur (p blur_p,
    sigma 0.5-1.5). Returns uint8 (S, S, 3)."""
    s = chip.shape[0]
    img = chip[:, ::-1] if rng.random() < 0.5 else chip
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.uniform(-degrees, degrees), rng.uniform(0.95, 1.05))
    m[:, 2] += rng.uniform(-shift, shift, 2)
    img = cv2.warpAffine(np.ascontiguousarray(img), m, (s, s), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.7, 1.3)                       # saturation
    img = (img - img.mean()) * rng.uniform(0.75, 1.25) + img.mean()         # contrast
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-12, 12)              # brightness
    if rng.random() < blur_p:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(img, 0, 255).astype(np.uint8)


def augmented_batch(chips: np.ndarray, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (B, S, S, 3): `augment` of chips[indices], in order, from one seeded stream."""
    return np.stack([augment(np.asarray(chips[i]), rng) for i in indices])
