"""The shape of the house, read from the imports of every module (ast, nothing imported):

- device code (edge_runtime/ outside eval/) imports only the device install (numpy, OpenCV,
  onnxruntime, Flask, waitress and their own dependencies, the optional door libraries) and the
  standard library: never torch, tqdm, matplotlib, never eval/, never a command handler;
- edge_runtime/ (eval/ included) never imports models/, export/ or calibration/;
- nothing imports cli/ (the command handlers) except cli/ itself.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("models", "export", "calibration", "edge_runtime", "cli")
# the device install (setup.py install_requires) and the import names it brings; optional door libraries
DEVICE_THIRD_PARTY = {"numpy", "cv2", "onnxruntime", "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous",
                      "waitress", "gpiozero", "paho",
                      "pillow_heif", "PIL",  # HEIC photos (facegate[heic]), imported only when a .heic file is read
                      "watchdog",  # `photos watch` file events (facegate[watch]), imported only when following
                      "cryptography"}  # [privacy] key_file (facegate[crypto]), imported only when a key is used
NEVER_ON_DEVICE = {"torch", "torchvision", "tqdm", "matplotlib", "onnx", "dlib"}


def module_name(path: Path) -> str:
    """facegate.* dotted name of a source file (cli/ is the `facegate` package itself)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "cli":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["facegate", *parts])


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute dotted names a module imports (relative imports resolved; `from X import y` gives both
    X and X.y, since y may be a module)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
    return out


def cli_modules() -> set[str]:
    return {module_name(p) for p in (ROOT / "cli").glob("*.py")} - {"facegate"}


def violations(module: str, path_parts: tuple[str, ...], imported: set[str], cli: set[str]) -> list[str]:
    """What breaks the house in one module's imports. path_parts: its path relative to the repository."""
    out = []
    top, in_eval = path_parts[0], path_parts[:2] == ("edge_runtime", "eval")
    device = top == "edge_runtime" and not in_eval
    for name in sorted(imported):
        first = name.split(".")[0]
        if top != "cli" and any(name == c or name.startswith(c + ".") for c in cli):
            out.append(f"{module} imports the command handler {name}")
        if top == "edge_runtime" and name.startswith(("facegate.models", "facegate.export", "facegate.calibration")):
            out.append(f"{module} (edge_runtime) imports {name}")
        if device and name.startswith("facegate.edge_runtime.eval"):
            out.append(f"{module} (device code) imports the evaluation room {name}")
        if device and first in NEVER_ON_DEVICE:
            out.append(f"{module} (device code) imports {first}")
        elif device and first not in ("facegate", "__future__") and first not in sys.stdlib_module_names \
                and first not in DEVICE_THIRD_PARTY:
            out.append(f"{module} (device code) imports {first}, which the device install does not have")
    return out


def all_sources():
    for part in PARTS:
        for p in sorted((ROOT / part).rglob("*.py")):
            yield p


def test_every_part_has_modules():
    names = {module_name(p) for p in all_sources()}
    assert {"facegate.main", "facegate.edge_runtime.recognizer", "facegate.edge_runtime.door.runner",
            "facegate.edge_runtime.eval.openset", "facegate.edge_runtime.admin"} <= names


def test_the_house_holds():
    cli = cli_modules()
    found = []
    for p in all_sources():
        mod = module_name(p)
        found += violations(mod, p.relative_to(ROOT).parts, imports_of(p.read_text(), mod, p.name == "__init__.py"),
                            cli)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path,source,expected", [
    (("edge_runtime", "recognizer.py"), "import torch", "imports torch"),
    (("edge_runtime", "door", "runner.py"), "from tqdm import tqdm", "imports tqdm"),
    (("edge_runtime", "door", "runner.py"), "from ..eval.speed import peak_rss_mb", "evaluation room"),
    (("edge_runtime", "admin", "people.py"), "import matplotlib.pyplot as plt", "imports matplotlib"),
    (("edge_runtime", "store.py"), "import requests", "device install does not have"),
    (("edge_runtime", "eval", "lfw_eval.py"), "from facegate.models.backend import torch_run", "(edge_runtime)"),
    (("export", "fusion_fit.py"), "from facegate.bench import face_photos", "command handler facegate.bench"),
    (("edge_runtime", "paths.py"), "from facegate.main import main", "command handler facegate.main"),
])
def test_the_checker_catches_each_kind(path, source, expected):
    module = module_name(ROOT.joinpath(*path))
    found = violations(module, path, imports_of(source, module, False), cli_modules())
    assert any(expected in v for v in found), found


@pytest.mark.parametrize("path,source", [
    (("edge_runtime", "eval", "lfw_eval.py"), "import matplotlib.pyplot as plt\nfrom tqdm import tqdm"),
    (("export", "fusion_fit.py"), "import torch\nfrom facegate.edge_runtime.eval.openset import fuse"),
    (("cli", "bench.py"), "from facegate.edge_runtime.eval.speed import face_photos\nfrom facegate.main import main"),
    (("edge_runtime", "door", "runner.py"), "import cv2, numpy, sqlite3\nfrom ..recognizer import Recognizer"),
])
def test_the_checker_allows_what_the_house_allows(path, source):
    module = module_name(ROOT.joinpath(*path))
    assert violations(module, path, imports_of(source, module, False), cli_modules()) == []
