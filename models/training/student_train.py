"""`facegate train student`: distil a teacher embedder (default: the shipped bundle's SFace int8) into the
small MobileFaceNet-style student (models/student.py) on aligned chips, then export, calibrate to int8
and optionally write a `small` bundle (detector + student).

Data rule (issue 14): the training people are those of folds 1-5 of pairs.txt plus everyone in no fold
(quality_data.split_people "first"), plus any unlabeled --extra folders (distillation needs no
labels); folds 6-10 and their people are held out for the evaluation (edge_runtime/eval/student_eval).

Loss per chip: ||s/|s| - t||^2 + (1 - cos(s, t)) (MSE on normalised embeddings + a cosine term), s the
student's raw output, t the teacher's L2-normalised embedding of the same augmented chip (the teacher runs on every augmented batch, so the student learns
the teacher's function, not one target per photo).

Writes under the output folder: student.pt (checkpoint with its config, atomically after every epoch),
student_curves.csv/png, student.fp32.onnx, student.int8.onnx, report.json / report.md.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facegate.edge_runtime.bundle import load_bundle
from facegate.edge_runtime.contract import STUDENT_MFN
from facegate.edge_runtime.eval import student_eval
from facegate.edge_runtime.eval.lfw import people_outside_pairs, read_pairs
from facegate.edge_runtime.preprocess import contract_input
from facegate.models.student import StudentMFN, parameter_count

from .common import (
    DataFolderError,
    check_resume,
    git_commit,
    list_hash,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
    write_curves,
)
from .quality_data import split_people
from .student_data import augmented_batch, chip_set, folder_relpaths, teacher_part

RESUMABLE_CHANGES = ("epochs", "device", "git_commit", "max_steps")
TRAINED_BY = "trained by facegate (facegate train student)"


@dataclass
class StudentTrainConfig:
    """Everything that decides a student; saved in each checkpoint and the ONNX provenance."""

    lfw_dir: str = ""                    # LFW folder with pairs.txt
    extra: list = field(default_factory=list)   # unlabeled image folders added to the training chips
    teacher: str = "sface"               # the bundle embedder distilled
    width: float = 0.5                   # channel width multiplier of the student
    epochs: int = 10
    epoch_samples: int | None = None     # augmented chips per epoch (None = every training chip once)
    batch_size: int = 64
    lr: float = 2e-3                     # AdamW peak learning rate (linear warm-up, cosine decay to 0)
    warmup_steps: int = 100
    weight_decay: float = 5e-5
    cos_weight: float = 1.0              # weight of the (1 - cosine) term next to the squared distance
    eval_pairs_per_fold: int | None = None   # held-out pairs per fold and class scored per epoch (None = 300)
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    threads: int = 2                     # torch and onnxruntime threads
    limit_images: int | None = None      # first N training chips (spread evenly; quick runs, tests)
    limit_people: int | None = None      # first N training people (quality_data.split_people) and only the
                                         # photos of the first pair of each class per held-out fold (tests)
    max_steps: int | None = None
    bundle_id: str = ""                  # the teacher's bundle
    train_people: str = ""
    test_people: str = ""
    train_images: int = 0                # training chips (faces found), LFW + extra
    extra_images: int = 0
    test_images: int = 0
    train_list_sha256: str = ""
    test_list_sha256: str = ""
    git_commit: str = ""


def steps_per_epoch(cfg: StudentTrainConfig) -> int:
    n = cfg.epoch_samples or cfg.train_images
    return max(1, math.ceil(n / cfg.batch_size))


def learning_rate(cfg: StudentTrainConfig, step: int) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to 0 at the end of the last epoch."""
    total = cfg.epochs * steps_per_epoch(cfg)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, cos_weight: float) -> torch.Tensor:
    """mean over the batch of ||s/|s| - t||^2 (the MSE on normalised embeddings, summed over the D
    dimensions) + cos_weight * (1 - cos(s, t)); student float (B, D) raw, teacher float (B, D)
    L2-normalised. Only directions count: the runtime compares embeddings by cosine."""
    s = torch.nn.functional.normalize(student, dim=1)
    dist = (s - teacher).pow(2).sum(1)
    return (dist + cos_weight * (1 - (s * teacher).sum(1))).mean()


def prepare_data(cfg: StudentTrainConfig, bundle, cache: Path, describe_cache: Path | None,
                 progress: bool) -> dict:
    """Training and held-out chips (fills cfg's data fields).

    Returns {"train": {"chips", "teacher"} (index arrays into LFW's chip set and the extras concatenated
    lazily: "sets" list of (chip_set, row indices)), "test": chip_set rows of the held-out people,
    "test_people": {person: relpaths}, "pairs": held-out pairs, "calibration": row indices (people in no
    fold) into the LFW chip set}."""
    lfw = Path(cfg.lfw_dir)
    train, test, rule = split_people(lfw, "first", cfg.limit_people)
    if cfg.limit_people:          # held out: the photos of the first same and different pair of each fold
        _, test, _ = split_people(lfw, "first")
        keep = {r for p in student_eval.heldout_pairs(lfw, 1) for r in (p.a, p.b)}
        test = {n: [r for r in rs if r in keep] for n, rs in test.items() if keep.intersection(rs)}
    relpaths = sorted(r for side in (train, test) for rs in side.values() for r in rs)   # everyone: all_relpaths
    lfw_set = chip_set(lfw, relpaths, bundle, cfg.teacher, cache, describe_cache, progress)
    person = np.array([r.split("/")[0] for r in lfw_set["relpaths"]])
    train_rows = np.flatnonzero(np.isin(person, list(train)))
    test_rows = np.flatnonzero(np.isin(person, list(test)))
    sets = [(lfw_set, train_rows)]
    for d in cfg.extra:
        s = chip_set(Path(d), folder_relpaths(Path(d)), bundle, cfg.teacher, cache, None, progress)
        sets.append((s, np.arange(len(s["relpaths"]))))
    if cfg.limit_images:
        sets = [(s, rows[np.linspace(0, len(rows) - 1, min(cfg.limit_images, len(rows))).round().astype(int)])
                for s, rows in sets if len(rows)]
    n_train = sum(len(r) for _, r in sets)
    if n_train < 2:
        raise DataFolderError(f"{lfw}: fewer than 2 training photos with a detected face")
    cfg.train_people, cfg.test_people = rule["train"] + "".join(f" + unlabeled {d}" for d in cfg.extra), rule["test"]
    cfg.train_images, cfg.extra_images = n_train, n_train - len(sets[0][1])
    cfg.test_images = len(test_rows)
    cfg.train_list_sha256 = list_hash([str(r) for s, rows in sets for r in s["relpaths"][rows]])
    cfg.test_list_sha256 = list_hash([str(r) for r in lfw_set["relpaths"][test_rows]])
    cfg.bundle_id = bundle.id
    calib_people = set(people_outside_pairs(lfw, read_pairs(lfw / "pairs.txt")))
    return {"sets": sets, "lfw": lfw_set, "test_rows": test_rows,
            "test_people": {n: rs for n, rs in test.items()},
            "pairs": student_eval.heldout_pairs(lfw, cfg.eval_pairs_per_fold),
            "calibration_rows": np.flatnonzero(np.isin(person, list(calib_people)))}


def embed_torch(model, chips: np.ndarray, device, batch: int = 128) -> np.ndarray:
    """float32 (N, D) student embeddings of uint8 RGB (N, 112, 112, 3) chips (eval mode)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(chips), batch):
            x = torch.from_numpy(contract_input(np.asarray(chips[s:s + batch]), STUDENT_MFN)).to(device)
            out.append(model(x).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.embedding_size), np.float32)


def heldout_metrics(model, data: dict, device) -> dict:
    """Per-epoch held-out numbers: pair accuracy on the folds 6-10 pairs whose photos both have a face
    (NaN when none has) and the mean cosine to the teacher on their photos."""
    lfw = data["lfw"]
    have = {str(lfw["relpaths"][i]): i for i in data["test_rows"]}
    pairs = [p for p in data["pairs"] if p.a in have and p.b in have]
    rows = sorted({have[r] for p in pairs for r in (p.a, p.b)})
    if not pairs:
        return {"heldout_pair_accuracy": float("nan"), "heldout_teacher_cosine": float("nan")}
    emb = embed_torch(model, lfw["chips"][rows], device)
    table = dict(zip([str(r) for r in lfw["relpaths"][rows]], emb))
    return {"heldout_pair_accuracy": student_eval.pair_accuracy(table, pairs)["accuracy"],
            "heldout_teacher_cosine": student_eval.agreement(emb, lfw["teacher"][rows])}


def training_batches(data: dict, cfg: StudentTrainConfig, gen: torch.Generator):
    """(set index, row) pairs of one epoch in a seeded order (epoch_samples of them, drawn with
    replacement across epochs only through the seeded permutation)."""
    flat = [(k, int(r)) for k, (_, rows) in enumerate(data["sets"]) for r in rows]
    perm = torch.randperm(len(flat), generator=gen).numpy()
    n = cfg.epoch_samples or len(flat)
    order = np.concatenate([perm] * math.ceil(n / len(flat)))[:n]
    return [flat[i] for i in order]


def run_epoch(model, opt, data: dict, teacher, cfg: StudentTrainConfig, gen: torch.Generator, device,
              step: int, epoch: int, progress: bool) -> tuple[float, int]:
    """One epoch: augment (seeded per step), teacher on the augmented chips, student step. Returns
    (mean loss, steps so far)."""
    from tqdm import tqdm

    model.train()
    items = training_batches(data, cfg, gen)
    losses = []
    for s in tqdm(range(0, len(items), cfg.batch_size), desc=f"epoch {epoch}", unit="batch",
                  disable=not progress, leave=False):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        rng = np.random.default_rng([cfg.seed, step])
        chips = np.concatenate([augmented_batch(data["sets"][k][0]["chips"], np.array([r]), rng)
                                for k, r in items[s:s + cfg.batch_size]])
        t = teacher.embed(chips)
        t = torch.from_numpy(t / np.linalg.norm(t, axis=1, keepdims=True)).to(device)
        x = torch.from_numpy(contract_input(chips, STUDENT_MFN)).to(device)
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        loss = distill_loss(model(x), t, cfg.cos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    return (float(np.mean(losses)) if losses else float("nan")), step


def train_student(cfg: StudentTrainConfig, out_dir: Path, cache: Path, describe_cache: Path | None = None,
                  resume: bool = False, progress: bool = True, bundle_dir: Path | None = None) -> dict:
    """Train (or resume) the student. Returns {"checkpoint", "model", "data", "history", "seconds", ...}."""
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    gen = seed_everything(cfg.seed, cfg.deterministic)
    bundle = load_bundle(bundle_dir, threads=cfg.threads)
    teacher, _ = teacher_part(bundle, cfg.teacher)
    data = prepare_data(cfg, bundle, cache, describe_cache, progress)
    cfg.git_commit = git_commit()
    model = StudentMFN(cfg.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / "student"
    ckpt = stem.with_suffix(".pt")
    start, step, history = 0, 0, []
    if resume:
        state = load_checkpoint(ckpt)
        check_resume(state["config"], asdict(cfg), RESUMABLE_CHANGES)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start, step, history = state["epoch"], state["step"], state["history"]
    for epoch in range(start + 1, cfg.epochs + 1):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        e0 = time.perf_counter()
        loss, step = run_epoch(model, opt, data, teacher, cfg, gen, device, step, epoch, progress)
        row = {"epoch": epoch, "train_loss": loss, **heldout_metrics(model, data, device),
               "seconds": round(time.perf_counter() - e0, 1)}
        history.append(row)
        save_checkpoint(ckpt, {"config": asdict(cfg), "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "generator": gen.get_state(), "epoch": epoch, "step": step, "history": history,
                               "trained_by": TRAINED_BY})
        write_curves(history, stem)
        if progress:
            print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"), flush=True)
    return {"checkpoint": str(ckpt), "model": model.cpu().eval(), "data": data, "history": history, "step": step,
            "config": cfg, "bundle": bundle, "seconds": round(time.perf_counter() - t0, 1),
            "params": parameter_count(model)}


def load_student(checkpoint: Path) -> tuple[StudentMFN, dict]:
    """(model in eval mode, saved config dict) from a `train student` checkpoint."""
    state = load_checkpoint(Path(checkpoint))
    model = StudentMFN(float(state["config"]["width"]))
    model.load_state_dict(state["model"])
    return model.eval(), state["config"]


def provenance(cfg: dict) -> dict:
    return {"trained_by": TRAINED_BY, "licence": "weights trained by facegate on LFW photos (research use; see "
            "docs/student.md): not for redistribution", "config": cfg}


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=1, default=float))
