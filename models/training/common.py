"""What every training script shares: seeds and deterministic mode, the device, the git commit and
data-list hashes recorded with a checkpoint, atomic checkpoint writes, training curves (CSV + PNG)."""
from __future__ import annotations

import csv
import hashlib
import io
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from facegate.edge_runtime.errors import FacegateError
from facegate.edge_runtime.files import atomic_write_bytes

REPO = Path(__file__).resolve().parents[2]


class DataFolderError(FacegateError):
    """A training data folder is missing, empty or unreadable."""


class CheckpointError(FacegateError):
    """A checkpoint cannot be resumed (missing, corrupt, or from another configuration)."""


def git_commit(root: Path = REPO) -> str:
    """The repository's HEAD commit, with "+dirty" when tracked files differ; "unknown" outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--"], capture_output=True,
                               timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def list_hash(items) -> str:
    """sha256 (first 16 hex digits) of a list of strings, one a line, in the given order."""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def seed_everything(seed: int, deterministic: bool) -> torch.Generator:
    """Seed Python, numpy and torch; with `deterministic`, make torch refuse non-deterministic kernels.
    Returns a torch.Generator (CPU) seeded with `seed` for shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """"auto" (cuda when present, else cpu), "cpu" or "cuda". Raises FacegateError for cuda without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FacegateError("--device cuda: no CUDA device is visible to torch; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise FacegateError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def save_checkpoint(path: Path, state: dict) -> Path:
    """torch.save `state` to `path` atomically (a crash leaves the previous checkpoint)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def check_resume(saved: dict, now: dict, resumable) -> None:
    """Raise CheckpointError when a checkpoint's saved config differs from `now` (both asdict of a script's
    config dataclass) in any field outside `resumable` (e.g. epochs, device, git_commit)."""
    diffs = [k for k in now if k not in resumable and saved.get(k) != now[k]]
    if diffs:
        raise CheckpointError("--resume: the checkpoint was made with other settings: " + ", ".join(
            f"{k} ({saved.get(k)!r} there, {now[k]!r} now)" for k in diffs) + "; start afresh without --resume")


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by save_checkpoint. Raises CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"--resume: no checkpoint at {path}; run without --resume to start") from None
    except Exception as e:  # truncated or not a torch file
        raise CheckpointError(f"checkpoint {path} cannot be read ({e}); delete it or run without --resume") from None


def write_curves(history: list[dict], stem: Path) -> tuple[Path, Path]:
    """Training curves beside a checkpoint: `<stem>_curves.csv` (one row per epoch) and `<stem>_curves.png`
    (one panel per column other than "epoch"). history: [{"epoch": int, name: float, ...}, ...]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path, png_path = Path(f"{stem}_curves.csv"), Path(f"{stem}_curves.png")
    keys = list(history[0]) if history else ["epoch"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    atomic_write_bytes(csv_path, buf.getvalue().encode())
    cols = [k for k in keys if k != "epoch"]
    fig, axes = plt.subplots(1, max(1, len(cols)), figsize=(4 * max(1, len(cols)), 3), dpi=100, squeeze=False)
    for ax, k in zip(axes[0], cols):
        ax.plot([h["epoch"] for h in history], [h[k] for h in history], marker=".")
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    atomic_write_bytes(png_path, png.getvalue())
    return csv_path, png_path
