"""Similarity alignment geometry."""
import numpy as np
import pytest

from facegate.edge_runtime.align import align_face, similarity_transform, transform_points
from facegate.edge_runtime.contract import ARCFACE_112_TEMPLATE, DLIB_CHIP_TEMPLATE


def _similarity(scale, angle, tx, ty):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1, 0, 0, 0), (0.5, 0.3, 10, -4), (2.5, -1.2, -30, 80)])
def test_recovers_exact_similarity(scale, angle, tx, ty):
    src = np.array(DLIB_CHIP_TEMPLATE)
    m = _similarity(scale, angle, tx, ty)
    dst = transform_points(m, src)
    np.testing.assert_allclose(similarity_transform(src, dst), m, atol=1e-9)


def test_reflection_is_not_used():
    src = np.array([[0, 0], [1, 0], [0, 1]], float)
    dst = src * [-1, 1]                       # a mirror image: no proper similarity fits it exactly
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_degenerate_landmarks_raise():
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.zeros((5, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))


def test_align_face_moves_marked_pixels_onto_template():
    # an image with bright dots at known "landmarks"; after alignment the dots sit on the template
    img = np.zeros((300, 400, 3), np.uint8)
    template = np.array(ARCFACE_112_TEMPLATE)
    m = _similarity(1.7, 0.25, 120, 60)
    lms = transform_points(m, template)
    for x, y in lms:
        img[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2] = 255
    chip = align_face(img, lms, template, 112)
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    for x, y in template:
        assert chip[int(round(y)), int(round(x))].max() > 100
    assert chip.mean() < 10          # nothing else became bright


def test_templates_are_upright_faces():
    for t, size in ((DLIB_CHIP_TEMPLATE, 150), (ARCFACE_112_TEMPLATE, 112)):
        t = np.array(t)
        assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]           # left features left
        assert t[0, 1] < t[2, 1] < t[3, 1]                      # eyes above nose above mouth
        assert (t > 0).all() and (t < size).all()
