"""SFace fp32 PyTorch port: dequantisation, loading, parity with OpenCV's FaceRecognizerSF."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facegate.edge_runtime.preprocess import to_model_input  # noqa: E402
from facegate.models import sface  # noqa: E402
from facegate.models.sources import SFACE, YUNET  # noqa: E402

LFW_IMAGES = {  # name -> path under data_dir
    "eckhart": "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "bush1": "lfw/George_W_Bush/George_W_Bush_0001.jpg",
    "bush2": "lfw/George_W_Bush/George_W_Bush_0002.jpg",
    "powell": "lfw/Colin_Powell/Colin_Powell_0001.jpg",
}
SFACE_COSINE_THRESHOLD = 0.363  # OpenCV Zoo's same-person threshold for SFace


def _cv2_with_sface():
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "FaceRecognizerSF") or not hasattr(cv2, "FaceDetectorYN"):
        pytest.skip("cv2 lacks FaceRecognizerSF/FaceDetectorYN")
    if int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip("parity reference is OpenCV 4.x")
    return cv2


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def model():
    return sface.SFace.from_int8bq_onnx(SFACE.path())


@pytest.fixture(scope="module")
def opencv_chips(data_dir):
    """name -> (112x112 BGR uint8 aligned chip, OpenCV (1,128) float32 feature)."""
    cv2 = _cv2_with_sface()
    rec = cv2.FaceRecognizerSF.create(str(SFACE.path()), "")
    det = cv2.FaceDetectorYN.create(str(YUNET.path()), "", (320, 320))
    out = {}
    for name, rel in LFW_IMAGES.items():
        path = data_dir / rel
        if not path.is_file():
            pytest.skip(f"missing {path}")
        img = cv2.imread(str(path))
        h, w = img.shape[:2]
        det.setInputSize((w, h))
        _, faces = det.detect(img)
        assert faces is not None and len(faces), f"YuNet found no face in {rel}"
        # LFW's subject is the face covering the centre pixel; take the best-scoring such face.
        central = [f for f in faces if f[0] <= w / 2 <= f[0] + f[2] and f[1] <= h / 2 <= f[1] + f[3]]
        face = max(central or list(faces), key=lambda f: f[-1])
        chip = rec.alignCrop(img, face)
        out[name] = (chip, rec.feature(chip).copy())
    return out


def _embed(model, chip_bgr: np.ndarray) -> np.ndarray:
    x = to_model_input(np.ascontiguousarray(chip_bgr[..., ::-1]), sface.MEAN, sface.STD)  # BGR -> RGB
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_dequantize_blocked_axis1_with_zero_point():
    q = np.array([[1, 2, 3, 4, 5], [-1, -2, -3, -4, -5]], np.int8)
    scale = np.array([[0.5, 1, 2], [0.25, 4, 8]], np.float32)  # blocks of 2 along axis 1, last one short
    zp = np.array([[0, 1, -1], [2, 0, 0]], np.int8)
    w = sface.dequantize_blocked(q, scale, zp, axis=1, block_size=2)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, [[0.5, 1.0, 2.0, 3.0, 12.0], [-0.75, -1.0, -12.0, -16.0, -40.0]])


def test_dequantize_blocked_axis0_and_bad_shape():
    q = np.array([[1, 2], [3, 4], [5, 6]], np.int8)
    scale = np.array([[1, 10], [100, 1000]], np.float32)
    w = sface.dequantize_blocked(q, scale, np.zeros((2, 2), np.int8), axis=0, block_size=2)
    np.testing.assert_array_equal(w, [[1, 20], [3, 40], [500, 6000]])
    with pytest.raises(ValueError):
        sface.dequantize_blocked(q, scale, None, axis=0, block_size=1)  # needs 3 scale rows


def test_truncated_file_raises_value_error(tmp_path):
    data = SFACE.path().read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        sface.SFace.from_int8bq_onnx(bad)


def test_module_shape_and_eval(model):
    assert not model.training
    out = model(torch.zeros(2, 3, sface.INPUT_SIZE, sface.INPUT_SIZE))
    assert out.shape == (2, sface.EMBEDDING_SIZE) and out.dtype == torch.float32


def test_parity_with_opencv(model, opencv_chips):
    for name, (chip, ref) in opencv_chips.items():
        ours = _embed(model, chip)
        cos, diff = _cos(ours, ref), float(np.abs(ours - ref).max())
        print(f"{name}: cosine={cos:.8f} max_abs_diff={diff:.3g} (|ref|max={np.abs(ref).max():.3g})")
        assert cos >= 0.9999, f"{name}: cosine {cos}, max abs diff {diff}"


def test_same_and_different_person(model, opencv_chips):
    emb = {name: _embed(model, chip) for name, (chip, _) in opencv_chips.items()}
    assert _cos(emb["bush1"], emb["bush2"]) > SFACE_COSINE_THRESHOLD
    for a, b in [("bush1", "eckhart"), ("bush1", "powell"), ("eckhart", "powell")]:
        assert _cos(emb[a], emb[b]) < SFACE_COSINE_THRESHOLD, (a, b)


def test_onnx_export_dynamic_batch(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "sface.onnx"
    x = torch.randn(3, 3, sface.INPUT_SIZE, sface.INPUT_SIZE)
    torch.onnx.export(model, (x[:1],), str(path), input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "N"}, "features": {0: "N"}}, dynamo=False)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(y, model(x).numpy(), atol=1e-4)
