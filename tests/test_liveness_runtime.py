"""The liveness runtime (edge_runtime/liveness.py): the crop geometry on synthetic images, the contract, and the
bundle's LivenessChecker inside Recognizer.analyze (a bundle built from $FACEGATE_DATA/weights/minifasnet)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facegate.edge_runtime.contract import LIVENESS, MINIFASNET_V2, from_metadata, to_metadata
from facegate.edge_runtime.errors import ContractError
from facegate.edge_runtime.face import Face
from facegate.edge_runtime.liveness import crop_box, face_box_xywh, liveness_crop, softmax


def _coords_image(w: int, h: int) -> np.ndarray:
    """uint8 (h, w, 3): red = x, green = y (mod 256), blue 7: every pixel says where it is."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx % 256, yy % 256, np.full_like(xx, 7)], axis=-1).astype(np.uint8)


def _face(x1, y1, x2, y2) -> Face:
    return Face(np.array([x1, y1, x2, y2], np.float32), np.zeros((5, 2), np.float32), 0.99)


def test_face_box_convention():
    # upstream's detector form: width/height count both edge pixels
    np.testing.assert_allclose(face_box_xywh((80, 80, 119, 119)), (80, 80, 40, 40))
    # scaled around the centre, then moved down by a fraction of the (unscaled) height
    np.testing.assert_allclose(face_box_xywh((80, 80, 119, 119), 1.5, 1.0, 0.25), (70, 90, 60, 40))


def test_crop_is_the_enlarged_box():
    img = _coords_image(200, 200)
    crop = liveness_crop(img, _face(80, 80, 119, 119), scale=2.0, size=81)   # 81 x 81 px: no resampling
    assert crop.shape == (81, 81, 3) and crop.dtype == np.uint8
    assert tuple(crop[0, 0, :2]) == (60, 60) and tuple(crop[-1, -1, :2]) == (140, 140)
    assert tuple(crop[40, 40, :2]) == (100, 100)                             # the box's centre stays central


def test_crop_at_the_edge_is_shifted_inside_and_capped():
    img = _coords_image(300, 200)
    # a face at the top-left corner: the 2x crop would start at -20; it is shifted to start at 0
    assert crop_box(300, 200, face_box_xywh((0, 0, 39, 39)), 2.0) == (0, 0, 80, 80)
    # a face too large for 4x: the scale is capped so the crop fits the image height exactly
    x1, y1, x2, y2 = crop_box(300, 200, face_box_xywh((100, 50, 179, 149)), 4.0)
    assert (y1, y2) == (0, 199) and 0 <= x1 < x2 <= 299
    crop = liveness_crop(img, _face(0, 0, 39, 39), scale=2.0, size=81)
    assert tuple(crop[0, 0, :2]) == (0, 0) and tuple(crop[-1, -1, :2]) == (80, 80)


def test_crop_refuses_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        liveness_crop(np.zeros((50, 50), np.uint8), _face(10, 10, 20, 20), 2.0, 80)
    with pytest.raises(ValueError, match="positive size"):
        crop_box(100, 100, (10, 10, 0, 5), 2.0)


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[0.0, 0.0, 0.0], [1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(p[0], 1 / 3, atol=1e-6)
    np.testing.assert_allclose(p[1], (1, 0, 0), atol=1e-6)


def test_contract_round_trip_and_known_models():
    for c in LIVENESS.values():
        assert from_metadata(to_metadata(c)) == c
        assert (c.kind, c.input_size, c.colour_order, c.classes, c.real_index) == ("liveness", 80, "BGR", 3, 1)
    assert (LIVENESS["minifasnet_v2"].scale, LIVENESS["minifasnet_v1se"].scale) == (2.7, 4.0)
    bad = to_metadata(MINIFASNET_V2)
    bad["facegate.contract"] = bad["facegate.contract"].replace('"liveness"', '"livenes"')
    with pytest.raises(ContractError, match="unknown model kind"):
        from_metadata(bad)


def test_model_with_another_contract_refused(liveness_bundle, tmp_path):
    from facegate.edge_runtime.contract import LivenessContract
    from facegate.edge_runtime.sessions import onnx_liveness
    from facegate.export.metadata import add_metadata

    f = tmp_path / "m.onnx"
    f.write_bytes((liveness_bundle / "minifasnet_v2.fp32.onnx").read_bytes())
    run, contract = onnx_liveness(f)
    assert contract == MINIFASNET_V2
    add_metadata(f, to_metadata(LivenessContract(name="minifasnet_v2", scale=2.7, colour_order="RGB")))
    with pytest.raises(ContractError, match="colour_order"):
        onnx_liveness(f)


@pytest.fixture(scope="module")
def samples(data_dir):
    from facegate.edge_runtime.imageio import load_image

    d = data_dir / "antispoof_samples"
    names = ("live/image_T1.jpg", "spoof/image_F1.jpg", "spoof/image_F2.jpg")
    if not all((d / n).is_file() for n in names):
        pytest.skip(f"upstream liveness samples not found in {d}")
    return [load_image(d / n) for n in names]


def test_checker_scores(liveness_bundle, samples):
    from facegate.edge_runtime.bundle import load_bundle

    b = load_bundle(liveness_bundle)
    assert b.liveness.names == ["minifasnet_v2", "minifasnet_v1se"]
    img = samples[0]
    faces = b.detector.detect(img)
    assert len(faces) == 1
    shifted = dataclasses.replace(faces[0], box=faces[0].box + np.float32(3))
    many = b.liveness.score_many(img, [faces[0], shifted])
    assert many.dtype == np.float32 and many.shape == (2,)
    np.testing.assert_allclose(many, [b.liveness.score(img, faces[0]), b.liveness.score(img, shifted)], atol=1e-6)
    assert b.liveness.score_many(img, []).shape == (0,)
    p = b.liveness.probabilities_many(img, faces)
    assert p.shape == (1, 3) and abs(float(p.sum()) - 1) < 1e-5


def test_recognizer_checks_liveness_when_on(liveness_bundle, samples):
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.config import Config, LivenessConfig
    from facegate.edge_runtime.recognizer import Recognizer

    b = load_bundle(liveness_bundle)
    rec = Recognizer(b, Config())
    assert rec.liveness_on
    scores = []
    for img in samples:
        (r,) = rec.analyze(img)
        assert r.usable and r.match is not None and isinstance(r.liveness, float)
        scores.append(r.liveness)
    assert scores[0] > 0.9 and scores[1] < 0.4 and scores[2] < 0.4, scores
    off = Recognizer(b, dataclasses.replace(Config(), liveness=LivenessConfig(enabled=False)))
    assert not off.liveness_on and off.analyze(samples[0])[0].liveness is None


def test_bundle_without_liveness(samples):
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.recognizer import Recognizer

    b = load_bundle()
    assert b.liveness is None and b.manifest.liveness is None
    rec = Recognizer(b, Config())
    assert not rec.liveness_on and rec.analyze(samples[0])[0].liveness is None


def test_bench_speed_times_liveness(liveness_bundle, data_dir):
    from facegate.edge_runtime.bundle import load_bundle
    from facegate.edge_runtime.eval.speed import LIVENESS_STAGES, STAGES, bench_stages, face_photos

    b = load_bundle(liveness_bundle)
    r = bench_stages(b.detector, b.embedder, face_photos(data_dir)[:1], repeats=2, warmup=1, templates=10,
                     liveness=b.liveness)
    assert set(r["ms"]) == set(STAGES + LIVENESS_STAGES)
    assert 0 < r["ms"]["liveness"] < r["ms"]["detect+align+embed+liveness"]
    plain = bench_stages(b.detector, b.embedder, face_photos(data_dir)[:1], repeats=1, warmup=0, templates=10)
    assert set(plain["ms"]) == set(STAGES)
