"""Device commands put their models on one shared onnxruntime thread pool; library callers keep one each."""
import subprocess
import sys

import numpy as np

from facegate.edge_runtime.bundle import default_bundle_dir, read_manifest
from facegate.edge_runtime.sessions import open_session


def _embedder_file():
    root = default_bundle_dir()
    return root / read_manifest(root).embedders["sface"].file


SHARED = """
import sys, numpy as np
from facegate.edge_runtime import sessions as m
from facegate.edge_runtime.errors import FacegateError
m.share_thread_pool(2)
m.share_thread_pool(2)                        # same size again: fine
a, b = m.open_session(sys.argv[1], 2), m.open_session(sys.argv[1], 2)
assert a.get_session_options().use_per_session_threads is False
for call in (lambda: m.open_session(sys.argv[1], 1), lambda: m.share_thread_pool(3)):
    try:
        call(); raise SystemExit("accepted")
    except FacegateError as e:
        print("refused:", e)
x = np.random.default_rng(0).random((2, 3, 112, 112), np.float32)
np.save(sys.argv[2], a.run(None, {a.get_inputs()[0].name: x})[0])
"""


def test_shared_pool_same_numbers_and_clear_refusals(tmp_path):
    path = _embedder_file()
    out = subprocess.run([sys.executable, "-c", SHARED, str(path), str(tmp_path / "o.npy")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "refused: cannot open sface.int8.onnx with 1 threads: this process runs its models on a shared pool of 2" \
        in out.stdout
    assert "refused: this process already shares a pool of 2 threads" in out.stdout
    own = open_session(path, 1)                    # this (test) process: a pool per session
    assert own.get_session_options().use_per_session_threads is True
    x = np.random.default_rng(0).random((2, 3, 112, 112), np.float32)
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), own.run(None, {own.get_inputs()[0].name: x})[0],
                               rtol=1e-5, atol=1e-5)


def test_sharing_after_a_model_was_opened_is_refused():
    code = ("import sys; from facegate.edge_runtime import sessions as m\n"
            "m.open_session(sys.argv[1], 2)\n"
            "try:\n    m.share_thread_pool(2)\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code, str(_embedder_file())], capture_output=True, text=True)
    assert "FacegateError share_thread_pool must be called before the first model is opened" in out.stdout, out.stderr
