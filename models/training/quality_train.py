"""`facegate train quality`: fit the quality head (quality_model.QualityHead) on the shipped bundle's
fused raw embeddings of LFW images and their degraded copies, towards margin targets (quality_data).

Writes, under the output folder, for split S: quality_S.pt (checkpoint, config included, written
atomically after every epoch), quality_S_curves.csv/png and quality_S.onnx (exported at the end).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facegate.edge_runtime.bundle import load_bundle
from facegate.edge_runtime.eval.quality_eval import cached_description

from .common import (
    CheckpointError,
    check_resume,
    git_commit,
    list_hash,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
    write_curves,
)
from .quality_data import cached_degraded, margin_targets, pair_targets, split_people
from .quality_model import QualityHead, export_quality, quality_contract

# config fields a resumed run may change (they do not change what is learned)
RESUMABLE_CHANGES = ("epochs", "device", "git_commit", "max_steps")


@dataclass
class QualityTrainConfig:
    """Everything that decides a quality model; saved in each checkpoint and the ONNX provenance."""

    split: str = "first"                 # first: train folds 1-5 + no-fold people, test 6-10; second: reverse; all
    lfw_dir: str = ""                    # LFW folder with pairs.txt
    epochs: int = 30                     # passes over the training samples
    batch_size: int = 256
    lr: float = 1e-3                     # AdamW learning rate
    weight_decay: float = 1e-4
    hidden: int = 64                     # width of the head's two hidden layers
    degradations_per_image: int = 3      # degraded copies of each training image (targets measured alike)
    impostor_quantile: float = 0.99      # target = genuine statistic - this quantile of impostor scores
    genuine: str = "mean"                # the genuine statistic: mean | min (worst genuine score) | max
    loss: str = "margin"                 # margin: MSE to each photo's target; pairwise: soft-min of a genuine
    #                                      pair's two qualities regressed on its score minus the FMR 1e-3 score
    pairs_per_photo: int = 5             # pairwise: genuine partners drawn per photo or degraded copy
    softmin_tau: float = 0.1             # pairwise: temperature of the soft minimum (standard units)
    seed: int = 0
    deterministic: bool = True           # torch.use_deterministic_algorithms
    device: str = "auto"                 # auto | cpu | cuda
    limit_people: int | None = None      # first N people of each side (quick runs, tests); None = all
    max_steps: int | None = None         # stop after this many optimiser steps; None = all epochs
    bundle_id: str = ""                  # the bundle whose fused embedder gives features and targets
    train_people: str = ""               # the rule, in words
    test_people: str = ""
    train_images: int = 0                # photos of the training people / of the test people
    test_images: int = 0
    train_list_sha256: str = ""          # list_hash of the training / test photos' relpaths
    test_list_sha256: str = ""
    git_commit: str = ""
    extra: dict = field(default_factory=dict)


def side_samples(desc: dict, deg: dict, person: np.ndarray, names: set, metric, quantile: float,
                 genuine: str = "mean") -> dict:
    """Samples of one side (training or test people): clean images and their degraded copies.

    Targets compare each sample with the side's clean images only. Returns {"x": float32 (M, D),
    "y": float32 (M,), "degraded": bool (M,)}; samples without a genuine partner are left out."""
    gal = np.flatnonzero(desc["found"] & np.isin(person, list(names)))
    dsel = np.isin(deg["source"], gal)
    probe_src = np.concatenate([gal, deg["source"][dsel]])
    x = np.concatenate([desc["embedding"][gal], deg["embedding"][dsel]]).astype(np.float32)
    y = margin_targets(x, person[probe_src], probe_src, desc["embedding"][gal], person[gal], gal, metric, quantile,
                       genuine=genuine)
    ok = np.isfinite(y)
    degraded = np.arange(len(x)) >= len(gal)
    return {"x": x[ok], "y": y[ok], "degraded": degraded[ok]}


def side_pairs(desc: dict, deg: dict, person: np.ndarray, names: set, metric, per_probe: int, seed: int) -> dict:
    """Pairwise samples of one side: {"x": float32 (M, D) clean photos then degraded copies, "a", "b": int (P,)
    rows of x forming genuine pairs, "y": float32 (P,) pair score minus the side's FMR 1e-3 score}."""
    gal = np.flatnonzero(desc["found"] & np.isin(person, list(names)))
    dsel = np.isin(deg["source"], gal)
    src = np.concatenate([gal, deg["source"][dsel]])
    x = np.concatenate([desc["embedding"][gal], deg["embedding"][dsel]]).astype(np.float32)
    p = pair_targets(x, src, person, gal, metric, per_probe, seed)
    return {"x": x, "a": p["a"], "b": p["b"], "y": p["t"]}


def prepare_data(cfg: QualityTrainConfig, bundle, cache: Path, progress: bool) -> dict:
    """Describe the photos, embed the degraded copies (both cached) and build the training and test
    samples; fills cfg's data fields. Returns {"train": side_samples, "test": side_samples or None}."""
    train, test, rule = split_people(Path(cfg.lfw_dir), cfg.split, cfg.limit_people)
    relpaths = sorted(r for side in (train, test) for rs in side.values() for r in rs)
    desc = cached_description(cache, Path(cfg.lfw_dir), relpaths, bundle, progress)
    person = np.array([r.split("/")[0] for r in desc["relpaths"]])
    found_per = {n: c for n, c in zip(*np.unique(person[desc["found"]], return_counts=True))}
    multi = np.flatnonzero(desc["found"] & np.array([found_per.get(p, 0) >= 2 for p in person]))
    deg = cached_degraded(cache, Path(cfg.lfw_dir), desc, multi, bundle, cfg.degradations_per_image, cfg.seed,
                          progress)
    train_rel = sorted(r for rs in train.values() for r in rs)
    test_rel = sorted(r for rs in test.values() for r in rs)
    cfg.train_people, cfg.test_people = rule["train"], rule["test"]
    cfg.train_images, cfg.test_images = len(train_rel), len(test_rel)
    cfg.train_list_sha256, cfg.test_list_sha256 = list_hash(train_rel), list_hash(test_rel)
    cfg.bundle_id = bundle.id
    metric, q = bundle.metric, cfg.impostor_quantile
    g = cfg.genuine
    if cfg.loss == "pairwise":
        out = {"train": side_pairs(desc, deg, person, set(train), metric, cfg.pairs_per_photo, cfg.seed),
               "test": side_pairs(desc, deg, person, set(test), metric, cfg.pairs_per_photo, cfg.seed) if test else None}
    elif cfg.loss == "margin":
        out = {"train": side_samples(desc, deg, person, set(train), metric, q, g),
               "test": side_samples(desc, deg, person, set(test), metric, q, g) if test else None}
    else:
        raise ValueError(f"unknown loss {cfg.loss!r}; expected margin or pairwise")
    if len(out["train"]["y"]) < 2:
        from .common import DataFolderError
        raise DataFolderError(f"{cfg.lfw_dir}: fewer than 2 usable training faces (people need >= 2 photos "
                              "with a detected face)")
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two float (N,) arrays (ties broken by order)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else float("nan")


def soft_min(za: torch.Tensor, zb: torch.Tensor, tau: float) -> torch.Tensor:
    """Smooth minimum of two (N,) tensors (-> min as tau -> 0)."""
    return -tau * torch.logsumexp(torch.stack([-za, -zb]) / tau, 0)


def evaluate(model: QualityHead, side: dict, device, tau: float = 0.1) -> dict:
    """{"loss": MSE in standard units, "spearman": rank correlation with the targets} over one side (per pair,
    of the pair's soft-min quality, for pairwise samples)."""
    model.eval()
    with torch.inference_mode():
        x = torch.from_numpy(side["x"]).to(device)
        z = model.standardised(x)
        if "a" in side:
            z = soft_min(z[torch.from_numpy(side["a"])], z[torch.from_numpy(side["b"])], tau)
        z = z.cpu().numpy()
    zt = (side["y"] - float(model.target_mean)) / float(model.target_std)
    return {"loss": float(np.mean((z - zt) ** 2)), "spearman": spearman(z, side["y"])}


def run_epoch(model, opt, side: dict, cfg: QualityTrainConfig, gen: torch.Generator, device, step: int,
              progress: bool, epoch: int) -> tuple[float, int]:
    """One pass over the training samples in a seeded order. Returns (mean batch loss, steps so far)."""
    from tqdm import tqdm

    model.train()
    x, y = torch.from_numpy(side["x"]), torch.from_numpy(side["y"])
    pairwise = "a" in side
    n = len(y)
    perm = torch.randperm(n, generator=gen)
    losses = []
    batches = range(0, n, cfg.batch_size)
    for s in tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        idx = perm[s:s + cfg.batch_size]
        yb = y[idx].to(device)
        zt = (yb - model.target_mean) / model.target_std
        if pairwise:
            a, b = torch.from_numpy(side["a"])[idx], torch.from_numpy(side["b"])[idx]
            zmin = soft_min(model.standardised(x[a].to(device)), model.standardised(x[b].to(device)), cfg.softmin_tau)
            loss = torch.nn.functional.smooth_l1_loss(zmin, zt)
        else:
            loss = torch.nn.functional.mse_loss(model.standardised(x[idx].to(device)), zt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    return (float(np.mean(losses)) if losses else float("nan")), step


def _record(model, data, device, epoch: int, train_loss: float, tau: float = 0.1) -> dict:
    row = {"epoch": epoch, "train_loss": train_loss, "train_mse": evaluate(model, data["train"], device, tau)["loss"]}
    if data["test"] is not None:
        ev = evaluate(model, data["test"], device, tau)
        row.update(test_mse=ev["loss"], test_spearman=ev["spearman"])
    return row


def train_quality(cfg: QualityTrainConfig, out_dir: Path, cache: Path, resume: bool = False,
                  progress: bool = True, bundle_dir: Path | None = None) -> dict:
    """Train (or resume) one quality model and export it. Returns a summary (paths, config, last row)."""
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    gen = seed_everything(cfg.seed, cfg.deterministic)
    bundle = load_bundle(bundle_dir)
    if bundle.manifest.fusion is None or bundle.embedder_entry.name != bundle.manifest.fusion.name:
        raise CheckpointError(f"bundle {bundle.path}: the quality model needs a bundle whose default is the fusion")
    data = prepare_data(cfg, bundle, cache, progress)
    cfg.git_commit = git_commit()
    dims = bundle.manifest.fusion.fusion.dims
    y = data["train"]["y"]
    contract = quality_contract(bundle.manifest, dims, cfg.impostor_quantile, cfg.genuine, cfg.loss)
    model = QualityHead(dims, cfg.hidden, float(y.mean()), float(y.std()) or 1.0).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"quality_{cfg.split}"
    ckpt = stem.with_suffix(".pt")
    start, step, history = 0, 0, []
    if resume:
        state = load_checkpoint(ckpt)
        check_resume(state["config"], asdict(cfg), RESUMABLE_CHANGES)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start, step, history = state["epoch"], state["step"], state["history"]
    else:
        history.append(_record(model, data, device, 0, float("nan"), cfg.softmin_tau))
    for epoch in range(start + 1, cfg.epochs + 1):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        loss, step = run_epoch(model, opt, data["train"], cfg, gen, device, step, progress, epoch)
        history.append(_record(model, data, device, epoch, loss, cfg.softmin_tau))
        save_checkpoint(ckpt, {"config": asdict(cfg), "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "generator": gen.get_state(), "epoch": epoch, "step": step, "history": history,
                               "trained_by": "facegate train quality", "contract": contract})
        write_curves(history, stem)
    onnx_path = stem.with_suffix(".onnx")
    provenance = {"trained_by": "facegate train quality", "config": asdict(cfg)}
    diff = export_quality(model, onnx_path, contract, provenance, data["train"]["x"][:256])
    return {"checkpoint": str(ckpt), "onnx": str(onnx_path), "export_max_abs_diff": diff, "config": asdict(cfg),
            "history": history, "train_samples": int(len(y)),
            "test_samples": int(len(data["test"]["y"])) if data["test"] is not None else 0,
            "seconds": round(time.perf_counter() - t0, 1)}


def export_checkpoint(ckpt: Path, out: Path) -> Path:
    """Export a `facegate train quality` checkpoint to ONNX at `out` (contract and provenance "trained by
    facegate" + its config in the metadata), compared with PyTorch on seeded random embeddings.
    Raises CheckpointError for a checkpoint that is not a quality model's."""
    state = load_checkpoint(ckpt)
    if state.get("trained_by") != "facegate train quality" or "contract" not in state:
        raise CheckpointError(f"{ckpt} is not a `facegate train quality` checkpoint with its contract; retrain it")
    cfg, contract = state["config"], state["contract"]
    model = QualityHead(tuple(contract["dims"]), cfg["hidden"])
    model.load_state_dict(state["model"])
    sample = np.random.default_rng(0).normal(size=(64, sum(contract["dims"]))).astype(np.float32)
    export_quality(model, out, contract, {"trained_by": "facegate train quality", "config": cfg}, sample)
    return Path(out)
