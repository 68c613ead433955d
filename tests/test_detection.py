"""Prior boxes, decoding and NMS on tiny hand-made inputs."""
import numpy as np
import pytest

from facegate.edge_runtime.detection import (
    PriorConfig,
    box_iou,
    central_face,
    decode_boxes,
    decode_landmarks,
    nms,
    postprocess,
    prior_boxes,
    resize_for_detector,
)


def test_prior_count_and_layout():
    p = prior_boxes(64, 96)
    # stride 8: 8x12 cells, 16: 4x6, 32: 2x3; two sizes each
    assert p.shape == ((8 * 12 + 4 * 6 + 2 * 3) * 2, 4)
    # first cell of the first level, both anchor sizes, same centre
    np.testing.assert_allclose(p[0], [4 / 96, 4 / 64, 16 / 96, 16 / 64], rtol=1e-6)
    np.testing.assert_allclose(p[1], [4 / 96, 4 / 64, 32 / 96, 32 / 64], rtol=1e-6)
    # next column comes next (row-major, anchor size fastest)
    np.testing.assert_allclose(p[2, :2], [12 / 96, 4 / 64], rtol=1e-6)
    # ceil for sizes that are not multiples of the stride
    assert prior_boxes(65, 97).shape[0] == (9 * 13 + 5 * 7 + 3 * 4) * 2


def test_decode_zero_regression_gives_prior():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    boxes = decode_boxes(np.zeros((1, 4), np.float32), priors)
    np.testing.assert_allclose(boxes, [[0.4, 0.3, 0.6, 0.7]], rtol=1e-6)
    lm = decode_landmarks(np.zeros((1, 10), np.float32), priors)
    np.testing.assert_allclose(lm[0], np.tile([0.5, 0.5], (5, 1)))


def test_decode_shift_and_scale():
    priors = np.array([[0.5, 0.5, 0.2, 0.2]], np.float32)
    loc = np.array([[1.0, 0.0, np.log(2) / 0.2, 0.0]], np.float32)   # +0.1*w in x, width x2
    b = decode_boxes(loc, priors)[0]
    np.testing.assert_allclose(b, [0.52 - 0.2, 0.4, 0.52 + 0.2, 0.6], rtol=1e-5)


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.1], np.float32)
    keep = nms(boxes, scores, 0.4)
    assert keep.tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]


def test_box_iou_shapes_and_precision():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]], np.float32)
    iou = box_iou(a, b)
    assert iou.shape == (1, 4) and iou.dtype == np.float32          # the detector's float32 stays float32
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0, 0.0]], rtol=1e-6)
    assert box_iou(a[0], b).shape == (1, 4)                          # one (4,) box counts as (1, 4)
    assert box_iou(a.astype(np.float64), b).dtype == np.float64
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    assert box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0      # two empty boxes: 0, not NaN


def test_central_face_is_the_face_nearest_the_centre():
    from types import SimpleNamespace

    from facegate.edge_runtime.face import Face

    lm = np.zeros((5, 2), np.float32)
    edge, middle = Face([0, 0, 20, 20], lm, 0.99), Face([40, 30, 60, 50], lm, 0.7)
    image = np.zeros((80, 100, 3), np.uint8)
    assert central_face(SimpleNamespace(detect=lambda img: [edge, middle]), image) is middle
    assert central_face(SimpleNamespace(detect=lambda img: []), image) is None


def test_postprocess_places_face_in_original_pixels():
    h, w = 64, 64
    priors = prior_boxes(h, w)
    n = priors.shape[0]
    loc = np.zeros((n, 4), np.float32)
    landms = np.zeros((n, 10), np.float32)
    conf = np.tile([1.0, 0.0], (n, 1)).astype(np.float32)
    conf[5] = [0.05, 0.95]
    faces = postprocess(loc, conf, landms, h, w, score_threshold=0.5, nms_threshold=0.4, scale=0.5)
    assert len(faces) == 1
    cx, cy, sw, sh = priors[5] * [w, h, w, h]
    np.testing.assert_allclose(faces[0].box, np.array([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2]) / 0.5,
                               rtol=1e-5)
    assert faces[0].score == pytest.approx(0.95)
    with pytest.raises(ValueError, match="anchors"):
        postprocess(loc[:-1], conf[:-1], landms[:-1], h, w, 0.5, 0.4)


def test_resize_for_detector_never_enlarges():
    img = np.zeros((100, 200, 3), np.uint8)
    same, s = resize_for_detector(img, 640)
    assert same is img and s == 1.0
    small, s = resize_for_detector(img, 50)
    assert small.shape == (25, 50, 3) and s == 0.25


def test_prior_config_is_hashable_for_cache():
    assert prior_boxes(32, 32, PriorConfig()) is prior_boxes(32, 32, PriorConfig())


def test_live_frames_use_live_max_side_and_photos_max_side():
    from types import SimpleNamespace

    from facegate.edge_runtime.config import Config
    from facegate.edge_runtime.recognizer import Recognizer

    seen = []
    detector = SimpleNamespace(detect=lambda img, max_side=None: seen.append((img.shape, max_side)) or [])
    bundle = SimpleNamespace(detector=detector, embedder=SimpleNamespace(), score_model=None, metric="cosine")
    cfg = Config.from_dict({"detector": {"max_side": 800, "live_max_side": 256}, "recognition": {"threshold": 0.35}})
    rec = Recognizer(bundle, cfg)
    frame = np.zeros((480, 640, 3), np.uint8)
    assert rec.analyze(frame, live=True) == [] and rec.analyze(frame) == []
    assert seen == [((480, 640, 3), 256), ((480, 640, 3), 800)]


def test_detector_max_side_override_is_per_call():
    from facegate.edge_runtime.detection import FaceDetector

    class Model:
        shapes = []

        def __call__(self, x):
            self.shapes.append(x.shape)
            pri = prior_boxes(x.shape[2], x.shape[3])
            conf = np.zeros((1, len(pri), 2), np.float32)
            conf[0, :, 0] = 1.0
            return np.zeros((1, len(pri), 4), np.float32), conf, np.zeros((1, len(pri), 10), np.float32)
    from facegate.edge_runtime.contract import DETECTOR
    m = Model()
    det = FaceDetector(m, DETECTOR, max_side=640)
    frame = np.zeros((480, 640, 3), np.uint8)
    det.detect(frame)
    det.detect(frame, max_side=320)
    assert m.shapes == [(1, 3, 480, 640), (1, 3, 240, 320)] and det.max_side == 640
