"""MiniFASNet liveness (models/minifasnet.py): both upstream checkpoints load strictly and the three
upstream samples are judged right with our detector's boxes. The weights are user-supplied data in
$FACEGATE_DATA/weights/minifasnet (never in the repository)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facegate.models import minifasnet as mf  # noqa: E402


@pytest.fixture(scope="module")
def weights_dir(data_dir):
    d = data_dir / "weights" / "minifasnet"
    if not all((d / v.file).is_file() for v in mf.VARIANTS):
        pytest.skip(f"MiniFASNet weights not found in {d} (user-supplied; see docs/liveness.md)")
    return d


@pytest.fixture(scope="module")
def liveness(weights_dir):
    return mf.Liveness(weights_dir)


def test_graph_shapes():
    for v in mf.VARIANTS:
        out = mf.MiniFASNet(v).eval()(torch.zeros(2, 3, mf.INPUT_SIZE, mf.INPUT_SIZE))
        assert out.shape == (2, mf.NUM_CLASSES)


def test_checkpoints_load_strictly(weights_dir):
    for v in mf.VARIANTS:
        sd = mf.clean_state_dict(torch.load(weights_dir / v.file, map_location="cpu", weights_only=False))
        model = mf.load(weights_dir / v.file)
        assert model.variant is v
        assert set(model.state_dict()) == set(sd)  # strict: nothing missing, nothing unexpected
        for k, t in model.state_dict().items():
            assert torch.equal(t, sd[k]), k


def test_crop_box_matches_upstream_rule():
    # inside the image: scaled around the centre
    assert mf.crop_box(480, 640, (200, 200, 50, 60), 2.0) == (175, 170, 275, 290)
    # scale capped so the crop fits, then shifted back inside
    x1, y1, x2, y2 = mf.crop_box(480, 640, (0, 0, 200, 300), 4.0)
    assert (x1, y1) == (0, 0) and y2 == 639 and x2 <= 479
    c = mf.crops(np.zeros((640, 480, 3), np.uint8), (100, 100, 200, 220))
    assert c.shape == (2, 3, 80, 80) and c.dtype == np.float32


@pytest.mark.parametrize("name,live", [("live/image_T1.jpg", True), ("spoof/image_F1.jpg", False),
                                       ("spoof/image_F2.jpg", False)])
def test_upstream_samples(liveness, data_dir, name, live):
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.detection import central_face
    from facegate.edge_runtime.imageio import load_image

    path = data_dir / "antispoof_samples" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    img = load_image(path)
    face = central_face(load_bundle().detector, img)
    assert face is not None
    p = liveness.probabilities(img, face.box)
    assert p.shape == (3,) and abs(float(p.sum()) - 1) < 1e-4
    real = liveness(img, face.box)
    assert (real > 0.5) == live, f"{name}: real={real:.3f} {np.round(p, 3)}"
