"""Open ONNX models with onnxruntime, check their input contract, wrap them as FaceDetector/FaceEmbedder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .contract import DETECTOR, EMBEDDERS, check_contract, from_metadata
from .errors import FacegateError
from .pipeline import FaceDetector, FaceEmbedder


class ModelFileError(FacegateError):
    """An ONNX file is missing, truncated or not loadable."""


def open_session(path: str | Path, threads: int = 2) -> ort.InferenceSession:
    """An onnxruntime CPU session with `threads` intra-op threads. Raises ModelFileError."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file {p} does not exist; rebuild the bundle (facegate build-bundle)")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelFileError(f"cannot load model {p}: {str(e).splitlines()[0][:200]} "
                             "(file truncated or corrupt? rebuild or reinstall the bundle)") from None


def read_contract(session: ort.InferenceSession):
    """The DetectorContract/EmbedderContract stored in the model's metadata (ContractError if absent)."""
    return from_metadata(session.get_modelmeta().custom_metadata_map)


def session_run(session: ort.InferenceSession):
    """run(x) -> list of outputs, feeding the model's single input."""
    name = session.get_inputs()[0].name

    def run(x: np.ndarray):
        return session.run(None, {name: x})
    return run


def onnx_detector(path: str | Path, threads: int = 2, **kwargs) -> FaceDetector:
    """FaceDetector over an exported detector; its contract must equal the runtime's."""
    s = open_session(path, threads)
    found = read_contract(s)
    check_contract(found, DETECTOR)
    return FaceDetector(session_run(s), found, **kwargs)


def onnx_embedder(path: str | Path, threads: int = 2) -> FaceEmbedder:
    """FaceEmbedder over an exported embedder; its contract must equal the runtime's for that name."""
    s = open_session(path, threads)
    found = read_contract(s)
    expected = EMBEDDERS.get(getattr(found, "name", None))
    if expected is None:
        from .errors import ContractError
        raise ContractError(f"unknown embedder {getattr(found, 'name', '?')!r}; this runtime knows "
                            f"{', '.join(EMBEDDERS)}")
    check_contract(found, expected)
    return FaceEmbedder(session_run(s), found)
