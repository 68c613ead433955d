"""[runtime] providers: the order asked for is kept, what this onnxruntime lacks is dropped with one warning
naming it, CPU always comes last, a name onnxruntime does not know is a config error."""
import logging

import numpy as np
import onnxruntime as ort
import pytest
from facegate.edge_runtime import sessions
from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
from facegate.edge_runtime.config import Config, ConfigError
from facegate.edge_runtime.enrollment import open_bundle
from facegate.edge_runtime.sessions import open_session, resolve_providers, use_providers

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def test_a_jetson_keeps_the_order_asked_for_and_cpu_comes_last(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_providers([TRT, CUDA], [TRT, CUDA, CPU]) == [TRT, CUDA, CPU]
        assert resolve_providers([CUDA, TRT, CPU], [TRT, CUDA, CPU]) == [CUDA, TRT, CPU]
        assert resolve_providers([CPU, CUDA], [CUDA, CPU]) == [CUDA, CPU]            # CPU is always the last resort
    assert caplog.records == []


def test_missing_providers_are_dropped_with_one_warning_naming_them(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_providers([TRT, CUDA, CPU], [CPU]) == [CPU]
    [record] = caplog.records
    assert TRT in record.getMessage() and CUDA in record.getMessage() and "accelerators.md" in record.getMessage()


def test_a_made_up_provider_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="CudaProvider") as e:
        resolve_providers(["CudaProvider", CPU], [CPU])
    assert e.value.key == "runtime.providers" and CUDA in str(e.value)      # the known names are listed


def test_cuda_asked_for_here_warns_and_the_detector_runs_on_cpu(monkeypatch, caplog):
    assert CUDA not in ort.get_available_providers(), "this test is about a machine without CUDA"
    monkeypatch.setitem(sessions._RUNTIME, "providers", sessions._RUNTIME["providers"])   # restored afterwards
    with caplog.at_level(logging.WARNING, logger="facegate.edge_runtime.sessions"):
        assert use_providers([CUDA, CPU]) == [CPU]
        bundle = open_bundle(Config.from_dict({"runtime": {"providers": [CUDA, CPU]}}), threads=1)   # as `run` does
    assert sum(CUDA in r.getMessage() for r in caplog.records) == 2                  # one warning per use
    assert bundle.detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    root = default_bundle_dir()
    s = open_session(root / read_manifest(root).detector_file, threads=1)
    assert s.get_providers() == [CPU]
    inp = s.get_inputs()[0]
    out = s.run(None, {inp.name: np.zeros((1, 3, 240, 320), np.float32)})
    assert all(np.isfinite(o).all() for o in out)


def test_the_config_takes_a_list_and_refuses_a_single_string():
    cfg = Config.from_dict({"runtime": {"providers": [TRT, CUDA, CPU]}})
    assert cfg.runtime.providers == (TRT, CUDA, CPU)
    assert Config().runtime.providers == (CPU,)
    with pytest.raises(ConfigError, match="list of strings"):
        Config.from_dict({"runtime": {"providers": CUDA}})
    with pytest.raises(ConfigError, match="single value"):
        Config.from_dict({"door": {"kind": ["log"]}})                      # other keys still take one value
