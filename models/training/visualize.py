"""Seeing what an embedder learned (issue 14 part 3).

- `tsne_map` / `plot_maps`: a 2-D t-SNE (scikit-learn, cosine distances) of held-out people's embeddings,
  one panel per model, dots coloured by person (no face pixels: the plot may go to docs/).
- `pair_saliency`: the gradient of the cosine match score of two aligned chips with respect to each
  chip's input pixels (a PyTorch embedder: the student, or SFace converted by `facegate models import`),
  as a per-pixel magnitude; `overlay` draws it over the chip. Overlays show faces: they are written
  with a run's outputs and never committed.
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch

from facegate.edge_runtime.files import atomic_write_bytes
from facegate.edge_runtime.preprocess import contract_input


def pick_people(people: np.ndarray, n_people: int, per_person: int) -> np.ndarray:
    """Row indices of the `n_people` people with the most rows (ties by name), at most `per_person` rows
    each (their first ones). people: str (N,) labels. Returns int64 (M,) sorted."""
    names, counts = np.unique(people, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))[:n_people]
    keep = [np.flatnonzero(people == names[i])[:per_person] for i in order]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def tsne_map(embeddings: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """float32 (N, 2) t-SNE coordinates of float (N, D) embeddings under the cosine distance
    (scikit-learn; PCA initialisation, seeded). Raises ValueError for fewer than 5 rows."""
    try:
        from sklearn.manifold import TSNE
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("the embedding map needs scikit-learn: pip install 'facegate[train]'",
                                  name="sklearn") from e
    x = np.asarray(embeddings, np.float64)
    if len(x) < 5:
        raise ValueError(f"a t-SNE map needs at least 5 embeddings, got {len(x)}")
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    p = min(perplexity, (len(x) - 1) / 3)
    return TSNE(2, perplexity=p, metric="cosine", init="pca", random_state=seed).fit_transform(x).astype(np.float32)


def plot_maps(maps: dict[str, np.ndarray], people: np.ndarray, path: Path, title: str = "") -> Path:
    """One panel per {label: (N, 2) coordinates}, dots coloured by person (str (N,)); PNG written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(people))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    colour = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(maps), figsize=(5 * len(maps), 5), dpi=100, squeeze=False)
    for ax, (label, xy) in zip(axes[0], maps.items()):
        ax.scatter(xy[:, 0], xy[:, 1], c=[colour[p] for p in people], s=14, linewidths=0)
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def pair_saliency(model: torch.nn.Module, chip_a: np.ndarray, chip_b: np.ndarray, contract,
                  smooth: float = 2.0) -> tuple[float, np.ndarray]:
    """(cosine match score, float32 (2, S, S) saliency in [0, 1]) of two uint8 RGB (S, S, 3) chips.

    Saliency = |d score / d input| (max over colour channels) for each chip, Gaussian-smoothed by
    `smooth` px and divided by the largest value of the two maps (so both share one scale)."""
    model = model.eval()
    x = torch.from_numpy(contract_input(np.stack([chip_a, chip_b]), contract)).requires_grad_(True)
    e = model(x)
    score = torch.nn.functional.cosine_similarity(e[0:1], e[1:2]).sum()
    score.backward()
    g = x.grad.abs().amax(dim=1).numpy().astype(np.float32)
    if smooth > 0:
        g = np.stack([cv2.GaussianBlur(m, (0, 0), smooth) for m in g])
    return float(score.item()), g / max(float(g.max()), 1e-12)


def overlay(chip: np.ndarray, saliency: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB (S, S, 3): the chip blended with the saliency ([0, 1], (S, S)) in the JET colour map."""
    heat = cv2.applyColorMap(np.uint8(np.clip(saliency, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    return np.uint8(np.clip((1 - alpha) * chip.astype(np.float32) + alpha * heat, 0, 255))


def write_png(path: Path, image_rgb: np.ndarray) -> Path:
    """Write a uint8 RGB image as PNG, atomically."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    return atomic_write_bytes(path, data.tobytes())
