"""One side of `bench pipeline` in a fresh process, so that its peak RSS is its own: the door (as
`facegate run` opens its models, or with onnxruntime's default memory settings for comparison) or the
OpenCV Zoo peer, over the same clip frames. Run as

    python -m facegate.edge_runtime.eval.clip_process door|door-ort-defaults|peer '<json settings>'

and prints one JSON report line. Imports only what its side needs (the peer never loads onnxruntime).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (640, 480)        # width, height every clip frame is resized to (a kiosk camera's)
KINDS = ("door", "door-ort-defaults", "peer")
PEER_THRESHOLD = 0.363         # OpenCV Zoo's SFace cosine threshold


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clip_frames(video: Path):
    """(index, RGB uint8 (480, 640, 3) frame, source fps) for each frame of `video`, read one by one as from
    a camera. Raises FileNotFoundError when the video cannot be opened."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open {video}; set FACEGATE_DATA")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield i, cv2.cvtColor(cv2.resize(bgr, FRAME_SIZE), cv2.COLOR_BGR2RGB), fps
            i += 1
    finally:
        cap.release()


def door_side(settings: dict, lean: bool) -> dict:
    """The door loop (pipeline.run_door_clip) over the store the parent enrolled the person into, with
    the process set up as `facegate run` sets it: one thread pool and, when `lean`, one shared arena."""
    from ..sessions import share_thread_pool

    share_thread_pool(settings["threads"], arena=lean)
    from .pipeline import DoorClip, run_door_clip

    clip = DoorClip(Path(settings["video"]), Path(settings["photo"]), settings["name"])
    report = run_door_clip(clip, Path(settings["home"]), settings["bundle"], settings["embedder"], settings["threads"],
                           settings["live_max_side"], enroll=False)
    return dict(report, memory="shared arena" if lean else "onnxruntime defaults (an arena per session)")


def peer_side(settings: dict) -> dict:
    """OpenCV Zoo's YuNet + SFace on the same frames (detector input scaled like the door's), the highest
    scoring face embedded and compared with the person's photo: per-frame ms, peak RSS."""
    from .peers import OpenCVZooPeer

    peer = OpenCVZooPeer(threads=settings["threads"], max_side=settings["live_max_side"])
    photo = cv2.cvtColor(cv2.imread(settings["photo"]), cv2.COLOR_BGR2RGB)
    faces = peer.detect(photo)
    if not faces:
        raise RuntimeError(f"the peer finds no face in {settings['photo']}")
    template = peer.embed(peer.align(photo, faces[0]))[0]
    template /= np.linalg.norm(template)
    ms, with_face, recognised = [], [], 0
    for _, frame, _ in clip_frames(Path(settings["video"])):
        t0 = time.perf_counter()
        faces = peer.detect(frame)
        if faces:
            e = peer.embed(peer.align(frame, faces[0]))[0]
            recognised += float(e @ template / np.linalg.norm(e)) >= PEER_THRESHOLD
        ms.append((time.perf_counter() - t0) * 1000)
        with_face.append(bool(faces))
    ms, with_face = np.array(ms), np.array(with_face)
    report = {"backend": "OpenCV Zoo YuNet + SFace (int8bq)", "frames": int(len(ms)),
              "median_frame_ms": float(np.median(ms)), "p90_frame_ms": float(np.percentile(ms, 90)),
              "frames_with_face": int(with_face.sum()), "frames_recognised": int(recognised),
              "peak_rss_mb": peak_rss_mb(), "live_max_side": settings["live_max_side"]}
    if with_face.any():
        report["median_face_frame_ms"] = float(np.median(ms[with_face]))
    return report



def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in KINDS:
        print(f"usage: python -m facegate.edge_runtime.eval.clip_process {'|'.join(KINDS)} '<json settings>'",
              file=sys.stderr)
        return 2
    kind, settings = argv[0], json.loads(argv[1])
    report = peer_side(settings) if kind == "peer" else door_side(settings, lean=kind == "door")
    report["onnxruntime_loaded"] = "onnxruntime" in sys.modules
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
