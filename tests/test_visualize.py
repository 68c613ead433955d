"""The pictures of what was learned: t-SNE maps keep real people apart, pair saliency has the chips' shape
and one scale, overlays and person picking behave."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from facegate.models.training.visualize import overlay, pair_saliency, pick_people, plot_maps, tsne_map  # noqa: E402


@pytest.fixture(scope="module")
def chips(data_dir):
    """{person: uint8 (5, 112, 112, 3) SFace chips, float32 (5, 128) shipped SFace embeddings} of two people."""
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.detection import central_face
    from facegate.edge_runtime.imageio import load_image

    b = load_bundle(embedder="sface")
    out = {}
    for name in ("Colin_Powell", "Serena_Williams"):
        cs = []
        for i in range(1, 6):
            img = load_image(data_dir / "lfw" / name / f"{name}_{i:04d}.jpg")
            cs.append(b.embedder.align(img, central_face(b.detector, img)))
        out[name] = (np.stack(cs), b.embedder.embed(np.stack(cs)))
    return out


def test_pick_people_takes_the_largest():
    people = np.array(["b", "a", "b", "c", "b", "a", "c", "c", "d"])
    rows = pick_people(people, 2, 2)
    assert list(rows) == [0, 2, 3, 6]                    # b and c have 3 rows each, a 2: b, c; first two each


def test_tsne_keeps_two_people_apart(chips, tmp_path):
    import cv2

    emb = np.concatenate([e for _, e in chips.values()])
    who = np.repeat(list(chips), 5)
    xy = tsne_map(emb, seed=0, perplexity=3)
    assert xy.shape == (10, 2) and np.isfinite(xy).all()
    a, b = xy[:5], xy[5:]
    within = max(np.ptp(a, 0).max(), np.ptp(b, 0).max())
    assert np.linalg.norm(a.mean(0) - b.mean(0)) > within / 2
    plot_maps({"teacher": xy, "again": xy}, who, tmp_path / "map.png")
    assert cv2.imread(str(tmp_path / "map.png")).shape[1] == 1000
    with pytest.raises(ValueError, match="at least 5"):
        tsne_map(emb[:3])


def test_pair_saliency_shape_and_scale(chips):
    from facegate.edge_runtime.contract import STUDENT_MFN
    from facegate.models.student import StudentMFN

    torch.manual_seed(0)
    c = chips["Colin_Powell"][0]
    score, maps = pair_saliency(StudentMFN(0.25), c[0], c[1], STUDENT_MFN)
    assert -1 <= score <= 1
    assert maps.shape == (2, 112, 112) and maps.dtype == np.float32
    assert maps.max() == pytest.approx(1.0) and maps.min() >= 0
    view = overlay(c[0], maps[0])
    assert view.shape == (112, 112, 3) and view.dtype == np.uint8
    assert not np.array_equal(view, c[0])
