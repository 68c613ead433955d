"""Face-detector average precision on a WIDER FACE val subset (IoU 0.5), backend-agnostic.

Matching rule per image (detections taken best score first): a detection is a true positive when
its best-IoU *unmatched valid* ground-truth box has IoU >= 0.5; otherwise it is "ignored" (neither
TP nor FP) when it overlaps an `invalid` ground-truth box with IoU >= 0.5; otherwise it is a false
positive (this includes a second detection on an already matched face). Precision and recall are
pooled over all images; AP is the area under the interpolated (monotone non-increasing) PR curve.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..detection import box_iou
from ..imageio import load_image

GT_FILE = "wider_face_val_bbx_gt.txt"


@dataclass(frozen=True)
class WiderImage:
    """Ground truth of one image: relpath under images/, boxes float32 (N, 4) x1, y1, x2, y2 and
    ignore bool (N,) = the box is flagged invalid (an ignore region)."""

    relpath: str
    boxes: np.ndarray
    ignore: np.ndarray

    @property
    def event(self) -> str:
        return self.relpath.split("/")[0]


def read_wider_gt(path: str | Path) -> list[WiderImage]:
    """Parse `wider_face_val_bbx_gt.txt`: a relpath line, a count line, then one
    `x1 y1 w h blur expression illumination invalid occlusion pose` line per box
    (a count of 0 is followed by one dummy line, which is skipped)."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    out, i = [], 0
    while i < len(lines):
        rel = lines[i]
        try:
            n = int(lines[i + 1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line after {rel!r} should be a box count") from None
        rows = lines[i + 2:i + 2 + max(n, 1)]
        if len(rows) < max(n, 1):
            raise ValueError(f"{path}: {rel!r} declares {n} boxes but the file ends early")
        vals = np.array([[float(v) for v in r.split()[:10]] for r in rows[:n]], np.float32).reshape(n, 10)
        boxes = np.concatenate([vals[:, :2], vals[:, :2] + vals[:, 2:4]], axis=1)
        out.append(WiderImage(rel, boxes, vals[:, 7] > 0))
        i += 2 + max(n, 1)
    return out


def match_detections(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray,
                     gt_ignore: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Label one image's detections: int8 (D,) with 1 = TP, 0 = FP, -1 = ignored (see module doc).

    Args:
        det_boxes: float (D, 4); det_scores: float (D,); gt_boxes: float (G, 4); gt_ignore: bool (G,).
    """
    det_scores = np.asarray(det_scores, np.float64).reshape(-1)
    gt_ignore = np.asarray(gt_ignore, bool).reshape(-1)
    labels = np.zeros(len(det_scores), np.int8)
    if len(det_scores) == 0:
        return labels
    iou = box_iou(np.asarray(det_boxes, np.float64), gt_boxes)          # float64 (D, G)
    taken = gt_ignore.copy()                      # ignore boxes are never "matched"
    for d in np.argsort(-det_scores, kind="stable"):
        if iou.shape[1] == 0:
            break
        free = np.where(taken, -1.0, iou[d])
        g = int(np.argmax(free))
        if free[g] >= iou_threshold:
            labels[d], taken[g] = 1, True
        elif gt_ignore.any() and iou[d, gt_ignore].max() >= iou_threshold:
            labels[d] = -1
    return labels


def average_precision(scores: np.ndarray, labels: np.ndarray,
                      n_faces: int) -> tuple[float, np.ndarray, np.ndarray]:
    """AP from pooled detections.

    Args:
        scores: float (D,); labels: int (D,) 1 TP / 0 FP / -1 ignored; n_faces: valid ground-truth boxes.
    Returns:
        (ap, precision float64 (K,), recall float64 (K,)) with K = non-ignored detections, best first.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    keep = labels >= 0
    order = np.argsort(-scores[keep], kind="stable")
    tp = labels[keep][order] == 1
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    recall = ctp / max(n_faces, 1)
    precision = ctp / np.maximum(ctp + cfp, 1)
    if n_faces == 0:
        return 0.0, precision, recall
    # interpolated precision: the best precision at any recall >= r, integrated over recall steps
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1])), precision, recall


def pick_subset(images: list[WiderImage], limit: int | None) -> list[WiderImage]:
    """`limit` images spread evenly over the file order (so every event folder is sampled); None = all."""
    if not limit or limit >= len(images):
        return images
    idx = np.unique(np.linspace(0, len(images) - 1, limit).round().astype(int))
    return [images[i] for i in idx]


def _summary(dets: list[tuple[np.ndarray, np.ndarray]], images: list[WiderImage]) -> dict:
    scores = np.concatenate([s for s, _ in dets]) if dets else np.zeros(0)
    labels = np.concatenate([lab for _, lab in dets]) if dets else np.zeros(0, np.int8)
    n_faces = int(sum(int((~im.ignore).sum()) for im in images))
    ap, _, rec = average_precision(scores, labels, n_faces)
    return {"ap": ap, "images": len(images), "faces": n_faces, "max_recall": float(rec[-1]) if len(rec) else 0.0,
            "detections": int(len(scores)), "ignored_detections": int(np.sum(labels < 0))}


def size_filter(image: WiderImage, boxes: np.ndarray, scores: np.ndarray,
                min_face: float) -> tuple[WiderImage, np.ndarray, np.ndarray]:
    """Restrict one image to faces at least `min_face` px on their shorter side, as the door's quality
    gate does: smaller ground-truth boxes become ignore regions, smaller detections are dropped.

    Args:
        boxes: float (D, 4) detections; scores: float (D,).
    Returns:
        (image with widened ignore flags, kept boxes, kept scores).
    """
    side = lambda b: np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])  # noqa: E731
    small = side(image.boxes.reshape(-1, 4)) < min_face
    keep = side(boxes) >= min_face
    return WiderImage(image.relpath, image.boxes, image.ignore | small), boxes[keep], scores[keep]


def evaluate_wider(root: str | Path, detector, limit: int | None = None, score_threshold: float | None = 0.02,
                   iou_threshold: float = 0.5, progress: bool = False, min_face: float = 0.0) -> dict:
    """AP of `detector` (anything with .detect(image_rgb) -> list[Face]) on a WIDER FACE folder.

    Args:
        root: folder holding `wider_face_val_bbx_gt.txt` and `images/<event>/<file>.jpg`.
        limit: evaluate only this many images, spread evenly (quick checks); None = all.
        score_threshold: set on `detector.score_threshold` for the run (restored afterwards) so
            low-confidence detections reach the PR curve; None leaves the detector as it is.
        min_face: only faces at least this many pixels (shorter box side, original image) count;
            see size_filter. 0 = the plain WIDER protocol.
    Returns:
        {"ap", "images", "faces" (valid boxes), "max_recall", "detections", "ignored_detections",
         "seconds", "per_event": {event: {"ap", "images", "faces", ...}}}
    """
    root = Path(root)
    images = list(pick_subset(read_wider_gt(root / GT_FILE), limit))
    old = getattr(detector, "score_threshold", None)
    if score_threshold is not None and old is not None:
        detector.score_threshold = score_threshold
    dets, t0 = [], time.perf_counter()
    try:
        for k, im in enumerate(images):
            faces = detector.detect(load_image(root / "images" / im.relpath))
            boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
            scores = np.array([f.score for f in faces], np.float64)
            if min_face > 0:
                im, boxes, scores = size_filter(im, boxes, scores, min_face)
                images[k] = im
            dets.append((scores, match_detections(boxes, scores, im.boxes, im.ignore, iou_threshold)))
            if progress and (k + 1) % 25 == 0:
                print(f"wider {k + 1}/{len(images)}", flush=True)
    finally:
        if score_threshold is not None and old is not None:
            detector.score_threshold = old
    report = _summary(dets, images)
    report["seconds"] = time.perf_counter() - t0
    report["per_event"] = {}
    for ev in sorted({im.event for im in images}):
        sel = [i for i, im in enumerate(images) if im.event == ev]
        report["per_event"][ev] = _summary([dets[i] for i in sel], [images[i] for i in sel])
    return report
