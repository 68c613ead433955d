"""WIDER FACE AP: the matching rule and AP maths on hand-made boxes, the ground-truth parser, and
one end-to-end run on a tiny generated folder."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facegate.edge_runtime.detection import box_iou
from facegate.edge_runtime.eval.wider_eval import (
    average_precision,
    evaluate_wider,
    match_detections,
    pick_subset,
    read_wider_gt,
)
from facegate.edge_runtime.face import Face

GT = np.array([[10, 10, 50, 50], [100, 100, 160, 170]], np.float32)


def test_box_iou_known_values():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_perfect_detections_give_ap_one():
    labels = match_detections(GT, np.array([0.9, 0.8]), GT, np.zeros(2, bool))
    assert labels.tolist() == [1, 1]
    ap, precision, recall = average_precision(np.array([0.9, 0.8]), labels, n_faces=2)
    assert ap == pytest.approx(1.0)
    assert recall[-1] == 1.0 and precision.min() == 1.0


def test_missed_face_halves_recall_and_ap():
    labels = match_detections(GT[:1], np.array([0.9]), GT, np.zeros(2, bool))
    ap, _, recall = average_precision(np.array([0.9]), labels, n_faces=2)
    assert recall[-1] == 0.5
    assert ap == pytest.approx(0.5)


def test_false_positive_ranked_first_lowers_ap():
    dets = np.array([[300, 300, 340, 340], *GT], np.float32)
    scores = np.array([0.95, 0.9, 0.8])
    labels = match_detections(dets, scores, GT, np.zeros(2, bool))
    assert labels.tolist() == [0, 1, 1]
    ap, precision, _ = average_precision(scores, labels, n_faces=2)
    np.testing.assert_allclose(precision, [0, 1 / 2, 2 / 3])
    assert ap == pytest.approx(2 / 3)        # interpolated precision 2/3 over the whole recall range


def test_detection_on_ignore_box_is_neither_tp_nor_fp():
    ignore = np.array([False, True])
    dets = np.array([GT[0], GT[1] + 2], np.float32)      # second one sits on the invalid box
    scores = np.array([0.6, 0.9])
    labels = match_detections(dets, scores, GT, ignore)
    assert labels.tolist() == [1, -1]
    ap, precision, recall = average_precision(scores, labels, n_faces=1)
    assert ap == pytest.approx(1.0) and len(precision) == 1 and recall[-1] == 1.0


def test_duplicate_detection_is_a_false_positive():
    dets = np.array([GT[0], GT[0] + 1], np.float32)
    labels = match_detections(dets, np.array([0.9, 0.8]), GT[:1], np.zeros(1, bool))
    assert labels.tolist() == [1, 0]


def test_low_iou_detection_is_a_false_positive():
    shifted = GT[:1] + np.array([25, 0, 25, 0], np.float32)   # IoU = 15*40 / (2*1600 - 600) = 0.23
    assert match_detections(shifted, np.array([0.9]), GT[:1], np.zeros(1, bool)).tolist() == [0]


GT_TEXT = """\
1--Event/a.jpg
2
10 10 40 40 0 0 0 0 0 0 
100 100 60 70 2 0 0 1 0 0 
1--Event/b.jpg
0
0 0 0 0 0 0 0 0 0 0 
2--Other/c.jpg
1
5 6 20 30 0 0 0 0 0 0 
"""


def test_parser_handles_zero_face_entry_and_invalid_flag(tmp_path):
    p = tmp_path / "wider_face_val_bbx_gt.txt"
    p.write_text(GT_TEXT)
    ims = read_wider_gt(p)
    assert [im.relpath for im in ims] == ["1--Event/a.jpg", "1--Event/b.jpg", "2--Other/c.jpg"]
    np.testing.assert_array_equal(ims[0].boxes, GT)
    assert ims[0].ignore.tolist() == [False, True]
    assert ims[1].boxes.shape == (0, 4) and ims[1].ignore.shape == (0,)
    np.testing.assert_array_equal(ims[2].boxes, [[5, 6, 25, 36]])
    assert [im.event for im in ims] == ["1--Event", "1--Event", "2--Other"]
    assert len(pick_subset(ims, 2)) == 2 and pick_subset(ims, 2)[-1].relpath == "2--Other/c.jpg"


def test_parser_rejects_short_file(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("1--Event/a.jpg\n3\n10 10 40 40 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match="ends early"):
        read_wider_gt(p)


class GtDetector:
    """Returns the ground-truth faces of each image (recognised by its size) plus one false positive."""

    def __init__(self, answers):
        self.answers = answers
        self.score_threshold = 0.5
        self.seen_thresholds = []

    def detect(self, image_rgb):
        self.seen_thresholds.append(self.score_threshold)
        return [Face(box=b, landmarks=np.zeros((5, 2)), score=s) for b, s in self.answers[image_rgb.shape[:2]]]


def _wider_folder(root):
    """GT_TEXT and three grey images whose sizes (h, w) tell GtDetector which image it sees."""
    (root / "wider_face_val_bbx_gt.txt").write_text(GT_TEXT)
    sizes = {"1--Event/a.jpg": (200, 180), "1--Event/b.jpg": (64, 64), "2--Other/c.jpg": (50, 40)}
    for rel, (h, w) in sizes.items():
        (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / rel), np.full((h, w, 3), 128, np.uint8))


def test_evaluate_wider_end_to_end(tmp_path):
    _wider_folder(tmp_path)
    det = GtDetector({(200, 180): [((10, 10, 50, 50), 0.9), ((100, 100, 160, 170), 0.95)],   # 2nd on ignore box
                      (64, 64): [((1, 1, 30, 30), 0.5)],                                       # false positive
                      (50, 40): [((5, 6, 25, 36), 0.7)]})
    r = evaluate_wider(tmp_path, det)
    assert (r["images"], r["faces"], r["detections"], r["ignored_detections"]) == (3, 2, 4, 1)
    assert r["ap"] == pytest.approx(1.0)                         # the FP scores below every TP
    assert r["per_event"]["1--Event"]["faces"] == 1 and r["per_event"]["2--Other"]["ap"] == pytest.approx(1.0)
    assert det.seen_thresholds == [0.02] * 3 and det.score_threshold == 0.5   # lowered, then restored


def test_min_face_ignores_small_truth_and_drops_small_detections(tmp_path):
    _wider_folder(tmp_path)
    det = GtDetector({(200, 180): [((10, 10, 50, 50), 0.9), ((100, 100, 160, 170), 0.95)],
                      (64, 64): [((1, 1, 30, 30), 0.99)],                      # small FP, ranked first
                      (50, 40): []})                                           # the 20x30 face is missed
    plain = evaluate_wider(tmp_path, det)
    assert plain["faces"] == 2 and plain["ap"] < 0.5
    r = evaluate_wider(tmp_path, det, min_face=35)
    # the 20x30 face of c.jpg becomes an ignore region and the 29-px false positive is dropped:
    # the one face of at least 35 px (40x40) is found with nothing ranked above it
    assert (r["faces"], r["detections"], r["ap"]) == (1, 2, pytest.approx(1.0))
