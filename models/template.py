"""Measure where RetinaFace's 5 landmarks fall inside dlib's own 150x150 face chips.

dlib's embedder was trained on chips cut by `get_face_chip_details(shape5, 150, 0.25)` from its
5-point shape predictor. Our pipeline aligns RetinaFace landmarks to a template instead, so the
template is the mean position of RetinaFace's landmarks after mapping them through dlib's chip
transform, over many real faces. Needs `dlib` (the `dlib-bin` wheel, in `.[dev]`).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facegate.edge_runtime.align import transform_points
from facegate.edge_runtime.detection import FaceDetector, box_iou, central_face
from facegate.edge_runtime.imageio import load_image

from .sources import DLIB_RESNET


def dlib_chip_matrix(details) -> np.ndarray:
    """Image -> chip affine (float64 (2, 3)) of a dlib chip_details, as dlib's get_mapping_to_chip:
    the rect's corners, rotated by `angle` about its centre, go to the chip's corners."""
    r = details.rect
    c = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    a = details.angle
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]])
    src = (corners - c) @ rot.T + c
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]])
    return cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)


def measure_dlib_template(paths: list[Path], detector: FaceDetector, chip_size: int = 150,
                          padding: float = 0.25, progress: bool = True) -> dict:
    """Mean RetinaFace landmark positions inside dlib chips over `paths`.

    Returns:
        {"template": float (5, 2) list, "std": (5, 2) list, "faces": n used, "skipped": n skipped}
    """
    import dlib
    from tqdm import tqdm

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(DLIB_RESNET.path().parent / "shape_predictor_5_face_landmarks.dat"))
    points, skipped = [], 0
    for p in tqdm(paths, desc="template", disable=not progress, unit="img"):
        img = load_image(p)
        h, w = img.shape[:2]
        rects = list(hog(img, 1))
        face = central_face(detector, img)
        if not rects or face is None:
            skipped += 1
            continue
        rect = min(rects, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2)
        hog_box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
        if box_iou(hog_box, face.box)[0, 0] < 0.3:
            skipped += 1          # the two detectors found different faces
            continue
        details = dlib.get_face_chip_details(predictor(img, rect), chip_size, padding)
        points.append(transform_points(dlib_chip_matrix(details), face.landmarks))
    if not points:
        raise RuntimeError("no face was found by both detectors; cannot measure a template")
    arr = np.stack(points)
    return {"template": arr.mean(0).round(2).tolist(), "std": arr.std(0).round(2).tolist(),
            "faces": len(points), "skipped": skipped, "chip_size": chip_size, "padding": padding}
