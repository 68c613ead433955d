"""`facegate train liveness`: fine-tune both MiniFASNets (models/minifasnet.py) on synthetic print and screen
re-captures (edge_runtime/eval/attacks.py) of TRAINING people only, so that `facegate bench liveness` can
report before/after on held-out people (docs/liveness_benchmark.md).

Data rule (the training issue's): bona fide = LFW photos of the training people (everyone except the people
who appear only in folds 6-10 of pairs.txt), the frames of ONE video (`train_video`; the bench holds the other
one out, and a second run with the other video covers it: docs/liveness_benchmark.md) and, optionally, faces
of unlabeled photo folders (`--extra DIR`, e.g. WIDER FACE: camera photos of people in no other set); attacks =
seeded print and screen re-captures of exactly those frames and photos (seeds disjoint from the bench's). The
evaluation people (folds 6-10) and the other video are never read. Validation (the curves and the choice of
epoch): a seeded share of the training people (identity-disjoint) and the last `val_video_fraction` of the
training video's frames (a time block), with their attacks.

Each network is trained on its own crop (the runtime's crop: minifasnet.crops) with the pretrained weights as
the start, towards p(real) (the softmax's class 1) = 1 for bona fide and 0 for attacks (binary cross-entropy
on log p(real) and log(1 - p(real)); the two attack classes are not told apart), plus `anchor` x the KL
divergence from the pretrained network's 3-class softmax on the bona fide samples (the pretrained model has
seen many real cameras; the anchor keeps what it says of real faces where the few bona fide samples here do
not contradict it: without it, faces of another camera drift towards "attack"). Only the head learns (TRUNK
frozen: its features of every crop and its mirror image are computed once; depthwise-convolution backward
passes are slow on CPUs), BatchNorm statistics frozen. The weights written are those of the epoch with the
lowest validation APCER (the worse species, at BPCER 5% on the validation video frames; ties: lower
validation loss).

Writes under the output folder: liveness_finetune.pt (checkpoint, atomic, every epoch; --resume continues it),
liveness_finetune_curves.csv/png, liveness_finetune.json (the config: people, data hashes, git commit) and
weights/ with both checkpoints under upstream's file names plus the upstream LICENSE, ready for
`facegate bundle add-liveness --weights OUT/weights` or `facegate bench liveness --finetuned OUT/weights`.
These are models converted from the MiniFASNet weights: never commit them.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facegate.edge_runtime.bundle import load_bundle
from facegate.edge_runtime.detection import central_face
from facegate.edge_runtime.door.liveness_fit import threshold_at_bpcer
from facegate.edge_runtime.eval.attacks import ATTACKS, make_attack
from facegate.edge_runtime.eval.liveness_eval import (
    attack_face,
    attack_seed,
    door_face,
    lfw_halves,
    sample_photos,
    video_frames,
)
from facegate.edge_runtime.files import atomic_write_bytes
from facegate.edge_runtime.imageio import load_image
from facegate.models import minifasnet as mf

from .common import (
    CheckpointError,
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

RESUMABLE_CHANGES = ("epochs", "device", "git_commit")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
RECORDED = ("train_list_sha256", "val_list_sha256", "train_people", "val_people", "extra_used")   # set by collect
TRUNK = ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4")      # frozen: 80x80 -> (128, 10, 10)
HEAD = ("conv_45", "conv_5", "conv_6_sep", "conv_6_dw")                     # learns, with linear, bn, prob
SEED_SALT = 7919          # attack seeds = attack_seed(seed + SEED_SALT, ...): never the bench's (seed 0) seeds


@dataclass
class LivenessTrainConfig:
    """Everything that decides a fine-tuned liveness model; saved in each checkpoint and the JSON record."""

    data_dir: str = ""                    # $FACEGATE_DATA: lfw/, videos/
    weights_dir: str = ""                 # the pretrained MiniFASNet checkpoints (and their LICENSE)
    train_video: str = "face_recognition/short_hamilton_clip.mp4"
    frame_step: int = 3                   # every Nth frame of the training video
    val_video_fraction: float = 0.25      # the last share of the training video's frames: validation
    lfw_photos: int = 600                 # LFW photos of training people (seeded, at most 2 per person)
    extra_dirs: list = field(default_factory=list)   # unlabeled photo folders: more bona fide (and attacks)
    extra_photos: int = 250               # photos drawn (seeded) from the extra folders, the largest face each
    copies: int = 2                       # attacks of each species per bona fide frame or photo
    min_face: float = 40.0                # faces smaller than this (px) are not used
    val_fraction: float = 0.15            # share of the LFW training people held out for validation
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-4                      # Adam, the head's parameters
    anchor: float = 1.0                   # weight of KL(pretrained || model) on bona fide samples
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    train_people: int = 0                 # recorded: LFW people trained on / validated on
    val_people: int = 0
    extra_used: int = 0                   # recorded: extra photos with a usable face
    train_list_sha256: str = ""           # list_hash of the sources (LFW relpaths, video#frame) per side
    val_list_sha256: str = ""
    weights_sha256: str = ""              # list_hash of the pretrained files' names and sizes
    git_commit: str = ""


def sources(cfg: LivenessTrainConfig) -> tuple[list[str], list[str], dict]:
    """(training LFW relpaths, validation LFW relpaths, {"train": names, "val": names}): the training people's
    photos (sample_photos, seeded), split by person (identity-disjoint). Raises DataFolderError without LFW."""
    lfw = Path(cfg.data_dir) / "lfw"
    if not (lfw / "pairs.txt").is_file():
        raise DataFolderError(f"no LFW with pairs.txt at {lfw}; pass --data DIR or set FACEGATE_DATA")
    train_people, _ = lfw_halves(lfw)
    rels = sample_photos(train_people, cfg.lfw_photos, cfg.seed)
    names = sorted({r.split("/")[0] for r in rels})
    val = set(random.Random(cfg.seed).sample(names, int(round(cfg.val_fraction * len(names)))))
    return ([r for r in rels if r.split("/")[0] not in val], [r for r in rels if r.split("/")[0] in val],
            {"train": sorted(set(names) - val), "val": sorted(val)})


def _crops_of(image: np.ndarray, face, out: list, label: int, labels: list) -> None:
    out.append(np.clip(mf.crops(image, face.box), 0, 255).astype(np.uint8))
    labels.append(label)


def build_samples(cfg: LivenessTrainConfig, items: list[tuple[str, np.ndarray, object]], detector,
                  progress: bool) -> dict:
    """Crops of every bona fide (name, image, face) and of its attacks: {"x": uint8 (N, 2, 3, 80, 80) (V2 and
    V1SE crops, BGR), "y": float32 (N,) 1 = bona fide, 0 = attack, "species": (N,) str, "source": (N,) str
    ("lfw", "video" or "extra": what the bona fide sample, or the one the attack was made from, is),
    "names": list}."""
    from tqdm import tqdm

    x, y, species, names, src = [], [], [], [], []
    for name, image, face in tqdm(items, desc="samples", unit="src", disable=not progress, leave=False):
        kind = source_kind(name)
        _crops_of(image, face, x, 1, y)
        species.append("bona fide")
        names.append(name)
        src.append(kind)
        for sp in ATTACKS:
            for k in range(cfg.copies):
                att = make_attack(sp, image, attack_seed(cfg.seed + SEED_SALT, name, sp, k), face.box)
                f = attack_face(detector, att.image, att.map_box(face.box), cfg.min_face)
                if f is not None:
                    _crops_of(att.image, f, x, 0, y)
                    species.append(sp)
                    names.append(f"{name}#{sp}{k}")
                    src.append(kind)
    if not x:
        raise DataFolderError("no usable face in the training data (no face of at least --min-face px found)")
    return {"x": np.stack(x), "y": np.asarray(y, np.float32), "species": np.asarray(species),
            "source": np.asarray(src), "names": names}


def source_kind(name: str) -> str:
    """"video" for 'clip.mp4#12', "extra" for 'extra:...', else "lfw" (an LFW relpath)."""
    return "extra" if name.startswith("extra:") else "video" if ".mp4#" in name else "lfw"


def extra_photos(cfg: LivenessTrainConfig) -> list[tuple[str, Path]]:
    """(name 'extra:<folder index>/<relpath>', path) of `extra_photos` images drawn (seeded) from the extra
    folders. Raises DataFolderError for a folder that is missing or has no image."""
    found = []
    for i, d in enumerate(cfg.extra_dirs):
        d = Path(d)
        if not d.is_dir():
            raise DataFolderError(f"--extra {d}: not a folder")
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DataFolderError(f"--extra {d}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
        found += [(f"extra:{i}/{p.relative_to(d).as_posix()}", p) for p in files]
    rng = random.Random(cfg.seed)
    return sorted(rng.sample(found, min(cfg.extra_photos, len(found))))


def collect(cfg: LivenessTrainConfig, progress: bool) -> tuple[dict, dict, dict]:
    """(train samples, validation samples, people) from the training people, the training video (its last
    frames: validation) and the extra folders."""
    from facegate.edge_runtime.errors import ImageError

    detector = load_bundle().detector
    train_rel, val_rel, people = sources(cfg)
    data = Path(cfg.data_dir)

    def lfw_items(rels):
        out = []
        for r in rels:
            img = load_image(data / "lfw" / r)
            f = central_face(detector, img)
            if f is not None and min(f.width, f.height) >= cfg.min_face:
                out.append((r, img, f))
        return out

    video = data / "videos" / cfg.train_video
    if not video.is_file():
        raise DataFolderError(f"training video {video} not found")
    frames = []
    for i, frame in video_frames(video, cfg.frame_step):
        f = door_face(detector, frame, cfg.min_face)
        if f is not None:
            frames.append((f"{cfg.train_video}#{i}", frame, f))
    n_val = int(round(cfg.val_video_fraction * len(frames)))
    train_frames, val_frames = frames[:len(frames) - n_val], frames[len(frames) - n_val:]
    extras = []
    for name, path in extra_photos(cfg):
        try:
            img = load_image(path)
        except ImageError as e:
            raise DataFolderError(f"--extra: {e}") from e
        f = door_face(detector, img, cfg.min_face)
        if f is not None:
            extras.append((name, img, f))
    train_items, val_items = lfw_items(train_rel) + train_frames + extras, lfw_items(val_rel) + val_frames
    cfg.train_list_sha256 = list_hash([n for n, _, _ in train_items])
    cfg.val_list_sha256 = list_hash([n for n, _, _ in val_items])
    cfg.train_people, cfg.val_people, cfg.extra_used = len(people["train"]), len(people["val"]), len(extras)
    return build_samples(cfg, train_items, detector, progress), build_samples(cfg, val_items, detector,
                                                                               progress), people


def cached_samples(cfg: LivenessTrainConfig, cache: Path, progress: bool) -> tuple[dict, dict, dict]:
    """collect(), cached as .npz keyed by the settings that decide the samples."""
    key = list_hash([f"{k}={getattr(cfg, k)}" for k in ("data_dir", "train_video", "frame_step", "lfw_photos",
                                                        "copies", "min_face", "val_fraction", "seed",
                                                        "val_video_fraction", "extra_dirs", "extra_photos")])
    path = Path(cache) / f"liveness_samples_{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            train = {k[6:]: z[k] for k in z.files if k.startswith("train_")}
            val = {k[4:]: z[k] for k in z.files if k.startswith("val_")}
            meta = json.loads(str(z["meta"]))
        for k in RECORDED:
            setattr(cfg, k, meta["cfg"][k])
        return train, val, meta["people"]
    train, val, people = collect(cfg, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"people": people, "cfg": {k: getattr(cfg, k) for k in RECORDED}}
    tmp = path.with_suffix(".partial.npz")
    np.savez(tmp, meta=json.dumps(meta), **{f"train_{k}": np.asarray(v) for k, v in train.items()},
             **{f"val_{k}": np.asarray(v) for k, v in val.items()})
    tmp.replace(path)
    return train, val, people


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Keep the pretrained BatchNorm statistics: BN layers in eval mode (their affine weights still learn)."""
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.eval()


def trunk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The frozen part of a MiniFASNet: float32 (N, 3, 80, 80) -> (N, 128, 10, 10)."""
    for name in TRUNK:
        x = getattr(model, name)(x)
    return x


def head(model: torch.nn.Module, f: torch.Tensor) -> torch.Tensor:
    """The part that learns: trunk features (N, 128, 10, 10) -> logits (N, 3); head(trunk(x)) == model(x)."""
    for name in HEAD:
        f = getattr(model, name)(f)
    return model.prob(model.bn(model.linear(f.flatten(1))))


def head_parameters(model: torch.nn.Module) -> list:
    """The head's parameters (the trunk's get requires_grad False)."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for n in (*HEAD, "linear", "bn", "prob") for p in getattr(model, n).parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def features(model: torch.nn.Module, x: np.ndarray, index: int, flip: bool, device, batch: int = 256) -> torch.Tensor:
    """Trunk features float32 (N, 128, 10, 10) of crops x[:, index] (uint8 (N, 2, 3, 80, 80)), mirrored if flip."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), batch):
            xb = torch.from_numpy(x[s:s + batch, index].astype(np.float32))
            out.append(trunk(model, (xb.flip(-1) if flip else xb).to(device)))
    return torch.cat(out)


def real_logprob(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(real), log(1 - p(real))) of logits (N, 3), from the 3-class softmax."""
    lp = torch.log_softmax(logits, dim=1)
    real = lp[:, mf.REAL_CLASS]
    fake = torch.logsumexp(torch.cat([lp[:, :mf.REAL_CLASS], lp[:, mf.REAL_CLASS + 1:]], dim=1), dim=1)
    return real, fake


def scores(models: list, feats: list[torch.Tensor]) -> np.ndarray:
    """float32 (N,) liveness score (p(real) averaged over the networks) from each network's trunk features."""
    out = 0.0
    with torch.inference_mode():
        for m, f in zip(models, feats):
            m.eval()
            out = out + torch.softmax(head(m, f), dim=1)[:, mf.REAL_CLASS].double().cpu().numpy()
    return (out / len(models)).astype(np.float32)


def evaluate(models: list, side: dict, feats: list[torch.Tensor]) -> dict:
    """Validation figures: BCE loss, and APCER per species (and the worse one, "val_apcer_max") at the threshold
    giving BPCER 5% on the side's bona fide video frames (all its bona fide samples when it has no frame)."""
    s = scores(models, feats)
    y = side["y"]
    eps = 1e-6
    loss = float(-np.mean(y * np.log(s + eps) + (1 - y) * np.log(1 - s + eps)))
    if not (y == 1).any():
        raise DataFolderError("no bona fide validation sample (no face found in the validation people's photos); "
                              "use more --lfw-photos")
    frames = (y == 1) & (side["source"] == "video") if "source" in side else np.zeros_like(y, bool)
    t = threshold_at_bpcer(s[frames] if frames.any() else s[y == 1])
    row = {"val_loss": loss, "val_threshold": t}
    for sp in ATTACKS:
        a = s[side["species"] == sp]
        row[f"val_apcer_{sp}"] = float((a >= t).mean()) if a.size else float("nan")
    row["val_apcer_max"] = max(row[f"val_apcer_{sp}"] for sp in ATTACKS)
    return row


def better(row: dict, best: dict | None) -> bool:
    """Whether a validation row beats the best so far: lower val_apcer_max, then lower val_loss."""
    return best is None or (row["val_apcer_max"], row["val_loss"]) < (best["val_apcer_max"], best["val_loss"])


def snapshot(models: list) -> list[dict]:
    """CPU copies of the networks' state dicts (the best epoch's weights, kept while training goes on)."""
    return [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in models]


def anchor_targets(models: list, feats: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, ...]]:
    """The pretrained networks' log-softmax (N, 3) of every training crop and of its mirror image (the anchor's
    reference), computed once before any step."""
    out = []
    with torch.inference_mode():
        for m, (plain, mirrored) in zip(models, feats):
            m.eval()
            out.append(tuple(torch.cat([torch.log_softmax(head(m, f[s:s + 512]), dim=1)
                                        for s in range(0, len(f), 512)]) for f in (plain, mirrored)))
    return out


def run_epoch(models: list, opts: list, side: dict, feats: list[tuple[torch.Tensor, torch.Tensor]],
              refs: list[tuple[torch.Tensor, torch.Tensor]], cfg: LivenessTrainConfig, gen: torch.Generator, device,
              progress: bool, epoch: int) -> float:
    """One pass over the training samples (seeded order, random mirror images). feats: per network the trunk
    features of the crops and of their mirror images; refs: the pretrained log-softmax of the same (the anchor).
    Loss per network: binary cross-entropy on p(real) + cfg.anchor x KL(pretrained || network) averaged over the
    batch's bona fide samples. Returns the mean loss."""
    from tqdm import tqdm

    y = torch.from_numpy(side["y"])
    perm = torch.randperm(len(y), generator=gen)
    losses = []
    for m in models:
        m.train()
        freeze_batchnorm(m)
    for s in tqdm(range(0, len(y), cfg.batch_size), desc=f"epoch {epoch}", unit="batch", disable=not progress,
                  leave=False):
        idx = perm[s:s + cfg.batch_size]
        flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
        yb = y[idx].to(device)
        total = 0.0
        for (plain, mirrored), (ref_plain, ref_mirrored), m, opt in zip(feats, refs, models, opts):
            fb = torch.where(flip[:, None, None, None], mirrored[idx], plain[idx])
            logits = head(m, fb)
            real, fake = real_logprob(logits)
            loss = -(yb * real + (1 - yb) * fake).mean()
            if cfg.anchor > 0 and bool((yb == 1).any()):
                ref = torch.where(flip[:, None], ref_mirrored[idx], ref_plain[idx])
                kl = (ref.exp() * (ref - torch.log_softmax(logits, dim=1))).sum(dim=1)
                loss = loss + cfg.anchor * kl[yb == 1].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(models))
    return float(np.mean(losses)) if losses else float("nan")


def write_weights(models: list, weights_dir: Path, out: Path) -> Path:
    """Both fine-tuned state dicts under upstream's file names, atomically, plus the upstream LICENSE (the
    weights are a derivative of Apache-2.0 ones). Returns the folder."""
    import io

    out.mkdir(parents=True, exist_ok=True)
    for m in models:
        buf = io.BytesIO()
        torch.save({k: v.cpu() for k, v in m.state_dict().items()}, buf)
        atomic_write_bytes(out / m.variant.file, buf.getvalue())
    for folder in (weights_dir, weights_dir.parent, weights_dir.parent.parent):
        if (folder / "LICENSE").is_file():
            shutil.copyfile(folder / "LICENSE", out / "LICENSE")
            break
    return out


def train_liveness(cfg: LivenessTrainConfig, out_dir: Path, cache: Path, resume: bool = False,
                   progress: bool = True) -> dict:
    """Fine-tune (or resume) both MiniFASNets; write checkpoint, curves, record and weights/. Returns a summary."""
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    weights = Path(cfg.weights_dir)
    if not all((weights / v.file).is_file() for v in mf.VARIANTS):
        raise DataFolderError(f"MiniFASNet weights not found in {weights} (user-supplied; docs/liveness.md)")
    cfg.weights_sha256 = list_hash([f"{v.file}:{(weights / v.file).stat().st_size}" for v in mf.VARIANTS])
    train, val, people = cached_samples(cfg, cache, progress)
    gen = seed_everything(cfg.seed, cfg.deterministic)
    cfg.git_commit = git_commit()
    models = [mf.load(weights, v).to(device) for v in mf.VARIANTS]
    opts = [torch.optim.Adam(head_parameters(m), lr=cfg.lr) for m in models]
    train_feats = [(features(m, train["x"], i, False, device), features(m, train["x"], i, True, device))
                   for i, m in enumerate(models)]
    val_feats = [features(m, val["x"], i, False, device) for i, m in enumerate(models)]
    refs = anchor_targets(models, train_feats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / "liveness_finetune"
    ckpt = stem.with_suffix(".pt")
    start, history, best = 0, [], None
    if resume:
        state = load_checkpoint(ckpt)
        check_resume(state["config"], asdict(cfg), RESUMABLE_CHANGES)
        for m, o, sd, osd in zip(models, opts, state["models"], state["optimizers"]):
            m.load_state_dict(sd)
            o.load_state_dict(osd)
        gen.set_state(state["generator"])
        start, history, best = state["epoch"], state["history"], state["best"]
        if start > cfg.epochs:
            raise CheckpointError(f"--resume: the checkpoint has {start} epochs, more than --epochs {cfg.epochs}; "
                                  f"pass --epochs {start} or more")
    else:
        row = {"epoch": 0, "train_loss": float("nan"), **evaluate(models, val, val_feats)}
        history.append(row)
        best = {**row, "models": snapshot(models)}
    for epoch in range(start + 1, cfg.epochs + 1):
        loss = run_epoch(models, opts, train, train_feats, refs, cfg, gen, device, progress, epoch)
        row = {"epoch": epoch, "train_loss": loss, **evaluate(models, val, val_feats)}
        history.append(row)
        if better(row, best):
            best = {**row, "models": snapshot(models)}
        save_checkpoint(ckpt, {"config": asdict(cfg), "models": [m.state_dict() for m in models],
                               "optimizers": [o.state_dict() for o in opts], "generator": gen.get_state(),
                               "epoch": epoch, "history": history, "best": best,
                               "trained_by": "facegate train liveness"})
        write_curves(history, stem)
    for m, sd in zip(models, best["models"]):
        m.load_state_dict(sd)
    wdir = write_weights(models, weights, out_dir / "weights")
    record = {"trained_by": "facegate train liveness", "config": asdict(cfg), "people": people,
              "bona_fide_rule": "LFW photos of the training people (all but those only in folds 6-10 of "
                                f"pairs.txt), the frames of {cfg.train_video} (the last "
                                f"{cfg.val_video_fraction:g} of them: validation)"
                                + (f" and {cfg.extra_used} photos of {', '.join(cfg.extra_dirs)}" if cfg.extra_dirs
                                   else ""),
              "best_epoch": best["epoch"],
              "samples": {"train": int(len(train["y"])), "val": int(len(val["y"])),
                          "train_attacks": int((train["y"] == 0).sum()), "val_attacks": int((val["y"] == 0).sum()),
                          "train_by_source": {k: int((train["source"] == k).sum()) for k in ("lfw", "video", "extra")}},
              "history": history}
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(record, indent=1).encode())
    return {"checkpoint": str(ckpt), "weights": str(wdir), "record": record,
            "seconds": round(time.perf_counter() - t0, 1)}
