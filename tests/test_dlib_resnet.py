"""dlib face-recognition ResNet: the .dat reader, and parity of the PyTorch port with dlib itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.models.dlib_format import read_dlib_layers, read_dlib_resnet_params
from facegate.models.sources import DLIB_RESNET, WeightsNotInstalled

LFW_IMAGES = {  # name -> path under data_dir
    "eckhart": "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "bush": "lfw/George_W_Bush/George_W_Bush_0001.jpg",
    "powell1": "lfw/Colin_Powell/Colin_Powell_0001.jpg",
    "powell2": "lfw/Colin_Powell/Colin_Powell_0002.jpg",
}
PARITY_TOL = 1e-4

# Parameter layers, input side first: stem, then (cin, cout) per residual block (2 con + 2 affine each), fc.
_BLOCKS = [(32, 32)] * 3 + [(32, 64)] + [(64, 64)] * 3 + [(64, 128)] + [(128, 128)] * 2 + [(128, 256)] \
    + [(256, 256)] * 2 + [(256, 256)]


def _expected_shapes() -> list[tuple[str, list[tuple[int, ...]]]]:
    out = [("con", [(32, 3, 7, 7), (32,)]), ("affine", [(32,), (32,)])]
    for cin, cout in _BLOCKS:
        out += [("con", [(cout, cin, 3, 3), (cout,)]), ("affine", [(cout,), (cout,)]),
                ("con", [(cout, cout, 3, 3), (cout,)]), ("affine", [(cout,), (cout,)])]
    return out + [("fc", [(256, 128)])]


@pytest.fixture(scope="module")
def dat_path() -> Path:
    try:
        return DLIB_RESNET.path()
    except WeightsNotInstalled as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def params(dat_path):
    return read_dlib_resnet_params(dat_path)


# ---------------------------------------------------------------------------------- reader


def test_reader_kinds_shapes_and_count(params):
    assert len(params) == 59
    assert [(k, [a.shape for a in arrs]) for k, arrs in params] == _expected_shapes()
    assert all(a.dtype == np.float32 for _, arrs in params for a in arrs)
    assert sum(a.size for _, arrs in params for a in arrs) == 5_614_592
    assert all(np.isfinite(a).all() for _, arrs in params for a in arrs)


def test_reader_header_and_layer_settings(dat_path):
    header, layers = read_dlib_layers(dat_path)
    assert header["loss"] == "loss_metric_2" and header["input"] == "input_rgb_image_sized"
    assert (header["rows"], header["cols"]) == (150, 150)
    np.testing.assert_allclose(header["mean"], (122.782, 117.001, 104.298), atol=1e-4)
    assert header["distance_threshold"] == pytest.approx(0.6)
    cons = [l.attrs for l in layers if l.kind == "con"]
    assert (cons[0]["stride_y"], cons[0]["padding_y"]) == (2, 0)
    # every stride-2 conv is unpadded; every stride-1 3x3 conv has padding 1
    assert all(c["padding_y"] == c["padding_x"] == (0 if c["stride_y"] == 2 else 1) for c in cons)
    assert sum(c["stride_y"] == 2 for c in cons) == 5  # stem + 4 down blocks
    pools = [(l.kind, l.attrs["nr"], l.attrs["stride_y"], l.attrs["padding_y"])
             for l in layers if l.kind.endswith("pool")]
    assert pools == [("max_pool", 3, 2, 0)] + [("avg_pool", 2, 2, 0)] * 4 + [("avg_pool", 0, 1, 0)]


@pytest.mark.parametrize("keep", [0, 5, 300, 19_000, 2_000_000, -1])
def test_truncated_file_raises(dat_path, tmp_path, keep):
    data = dat_path.read_bytes()
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[:keep])  # -1: all but the last byte
    with pytest.raises(ValueError, match="truncated/corrupt dlib file"):
        read_dlib_resnet_params(bad)


def test_corrupt_file_raises(dat_path, tmp_path):
    data = bytearray(dat_path.read_bytes())
    i = data.index(b"\x05con_4") + 1
    data[i:i + 5] = b"cxn_4"  # garbled layer name
    bad = tmp_path / "corrupt.dat"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated/corrupt dlib file.*'cxn_4'"):
        read_dlib_resnet_params(bad)
    bad.write_bytes(dat_path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_dlib_resnet_params(bad)


# ---------------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def dlib_and_chips(dat_path, data_dir):
    """(dlib module, recogniser, {name: uint8 (150,150,3) RGB chip}) with chips cut by dlib itself."""
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dat_path.parent / "shape_predictor_5_face_landmarks.dat"))
    chips = {}
    for name, rel in LFW_IMAGES.items():
        path = data_dir / rel
        assert path.is_file(), f"missing test image {path}"
        img = dlib.load_rgb_image(str(path))
        faces = detector(img, 1)
        assert len(faces) >= 1, f"dlib found no face in {path}"
        face = max(faces, key=lambda r: r.area())
        chips[name] = dlib.get_face_chip(img, predictor(img, face), 150, 0.25)
    return dlib, dlib.face_recognition_model_v1(str(dat_path)), chips


@pytest.fixture(scope="module")
def descriptors(dat_path, dlib_and_chips):
    """{name: (dlib descriptor, port descriptor)}, both float64 (128,)."""
    torch = pytest.importorskip("torch")
    from facegate.edge_runtime.preprocess import to_model_input
    from facegate.models.dlib_resnet import MEAN, STD, DlibResNet

    _, rec, chips = dlib_and_chips
    model = DlibResNet.from_dat(dat_path)
    names = list(chips)
    x = torch.from_numpy(to_model_input(np.stack([chips[n] for n in names]), MEAN, STD))
    with torch.no_grad():
        ours = model(x).double().numpy()
    return {n: (np.asarray(rec.compute_face_descriptor(chips[n]), np.float64), ours[i])
            for i, n in enumerate(names)}


def test_parity_with_dlib(descriptors):
    for name, (ref, ours) in descriptors.items():
        assert ours.shape == (128,)
        err = float(np.abs(ref - ours).max())
        assert err <= PARITY_TOL, f"{name}: max |dlib - port| = {err:.3g}"


def test_same_person_closer_than_different_people(descriptors):
    d = {n: ours for n, (_, ours) in descriptors.items()}
    dist = lambda a, b: float(np.linalg.norm(d[a] - d[b]))  # noqa: E731
    assert dist("powell1", "powell2") < 0.6
    for a, b in [("eckhart", "bush"), ("eckhart", "powell1"), ("bush", "powell2")]:
        assert dist(a, b) > 0.6, (a, b, dist(a, b))


def test_model_layout_and_eval_mode(dat_path):
    torch = pytest.importorskip("torch")
    from facegate.models.dlib_resnet import EMBEDDING_SIZE, INPUT_SIZE, DlibResNet

    model = DlibResNet.from_dat(dat_path)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == 5_614_592
    with torch.no_grad():
        y = model(torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE))
    assert y.shape == (2, EMBEDDING_SIZE) and y.dtype == torch.float32


def test_load_dat_rejects_truncated_file(dat_path, tmp_path):
    pytest.importorskip("torch")
    from facegate.models.dlib_resnet import DlibResNet

    bad = tmp_path / "truncated.dat"
    bad.write_bytes(dat_path.read_bytes()[:1_000_000])
    with pytest.raises(ValueError, match="truncated/corrupt dlib file"):
        DlibResNet.from_dat(bad)
