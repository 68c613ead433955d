"""Open ONNX models with onnxruntime, check their input contract, wrap them as FaceDetector/FaceEmbedder."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from .contract import DETECTOR, EMBEDDERS, LIVENESS, check_contract, from_metadata
from .detection import FaceDetector
from .embedding import FaceEmbedder
from .errors import FacegateError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"


class ModelFileError(FacegateError):
    """An ONNX file is missing, truncated or not loadable."""


_SHARED_POOL: dict[str, int | None] = {"threads": None, "opened": 0}
_RUNTIME: dict = {"providers": (CPU,), "arena": False}


def resolve_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The execution providers to open sessions with: `requested` in its order, those this onnxruntime
    build lacks dropped with one warning naming them, CPUExecutionProvider always last.

    A name onnxruntime does not know at all (a typo) raises ConfigError (runtime.providers)."""
    from .config import ConfigError

    known = set(ort.get_all_providers())
    unknown = [p for p in requested if p not in known]
    if unknown:
        raise ConfigError(f"runtime.providers: unknown onnxruntime execution provider(s) {', '.join(unknown)}; "
                          f"known names: {', '.join(sorted(known))}", "runtime.providers")
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning("onnxruntime %s here lacks the execution provider(s) %s (it has %s); running without them "
                    "(docs/accelerators.md)", ort.__version__, ", ".join(missing), ", ".join(available))
    return [p for p in dict.fromkeys(requested) if p in available and p != CPU] + [CPU]


def use_providers(requested: Sequence[str]) -> list[str]:
    """Open every session of this process from now on with resolve_providers(requested) (the config's
    [runtime] providers); returns that list. Device commands call it at start."""
    chosen = resolve_providers(requested, ort.get_available_providers())
    _RUNTIME["providers"] = tuple(chosen)
    return chosen


def share_thread_pool(threads: int, arena: bool = True) -> None:
    """Run every onnxruntime session this process opens from now on on one pool of `threads` threads
    and, with `arena`, on one CPU memory arena that grows only by what a run asks for (instead of an
    arena per session that doubles its chunks), without memory patterns (which add a block per input
    shape, i.e. per number of faces, on top of the arena): the door's peak memory (docs/benchmarks.md).

    Each session otherwise owns a pool whose threads spin for a while after every run; on a 2-core
    device the detector's spinning pool then steals the embedder's cores and back, so detect + align +
    embed runs far slower on two pools than on one shared pool. onnxruntime allows this once per
    process, before its first session, and afterwards refuses sessions with pools of their own; so
    the device commands call it at start (facegate.main), never library code or tests.
    Raises FacegateError when called after a model was opened, or again with another size."""
    if _SHARED_POOL["threads"] == threads:
        return
    if _SHARED_POOL["threads"] is not None:
        raise FacegateError(f"this process already shares a pool of {_SHARED_POOL['threads']} threads")
    if _SHARED_POOL["opened"]:
        raise FacegateError("share_thread_pool must be called before the first model is opened")
    ort.set_global_thread_pool_sizes(threads, 1)
    _SHARED_POOL["threads"] = threads
    if arena:
        cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, 1, -1, -1))   # 1 = kSameAsRequested
        _RUNTIME["arena"] = True


def open_session(path: str | Path, threads: int = 2) -> ort.InferenceSession:
    """An onnxruntime session on the process's providers (use_providers; CPU alone by default) with
    `threads` intra-op threads: its own pool, or the process's shared one (and arena) after
    share_thread_pool(threads). Raises ModelFileError, or FacegateError when the shared pool has another size."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file {p} does not exist; rebuild the bundle (facegate build-bundle)")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    shared = _SHARED_POOL["threads"]
    if shared is not None:
        if shared != threads:
            raise FacegateError(f"cannot open {p.name} with {threads} threads: this process runs its models "
                                f"on a shared pool of {shared}")
        so.use_per_session_threads = False
        if _RUNTIME["arena"]:
            so.add_session_config_entry("session.use_env_allocators", "1")
            so.enable_mem_pattern = False   # a pattern block per input shape (1, 2... faces) on top of the arena
    else:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    _SHARED_POOL["opened"] += 1
    try:
        return ort.InferenceSession(str(p), so, providers=list(_RUNTIME["providers"]))
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
    s, found = _open_known(path, threads, EMBEDDERS, "embedder")
    return FaceEmbedder(session_run(s), found)


def onnx_liveness(path: str | Path, threads: int = 2):
    """(run, LivenessContract) of an exported liveness model; its contract must equal the runtime's for
    that name (edge_runtime/liveness.LivenessChecker takes a list of these)."""
    s, found = _open_known(path, threads, LIVENESS, "liveness model")
    return session_run(s), found


def _open_known(path: str | Path, threads: int, known: dict, what: str):
    """(session, contract) of a model whose contract must equal the runtime's contract of the same name in
    `known` (name -> contract). Raises ContractError for an unknown name or a differing contract."""
    s = open_session(path, threads)
    found = read_contract(s)
    expected = known.get(getattr(found, "name", None))
    if expected is None:
        from .errors import ContractError
        raise ContractError(f"unknown {what} {getattr(found, 'name', '?')!r}; this runtime knows "
                            f"{', '.join(known)}")
    check_contract(found, expected)
    return s, found


def onnx_quality(path: str | Path, threads: int = 2):
    """QualityModel over an exported face-image quality model (contract kind "quality")."""
    from .contract import QualityContract
    from .errors import ContractError
    from .quality_model import QualityModel

    s = open_session(path, threads)
    found = read_contract(s)
    if not isinstance(found, QualityContract):
        raise ContractError(f"{Path(path).name}: expected a quality model, got a {getattr(found, 'kind', '?')}")
    return QualityModel(session_run(s), found)
