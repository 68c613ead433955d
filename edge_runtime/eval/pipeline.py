"""The door loop benchmark: a face video through the runner's own per-frame method (`Runner.process`),
timed frame by frame, with the decision latency from the first recognisable frame to the opening; and
`bench_pipeline`, which runs it in a fresh process beside the OpenCV Zoo peer on the same frames, so
that each peak RSS is that process's own."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..door.actuators import LogDoor
from ..door.decision import OPEN, DoorDecider
from ..door.runner import Runner
from ..enrollment import check_photos, enroll_checked, open_bundle
from ..errors import FacegateError
from ..recognizer import Recognizer, door_candidate
from ..store import Store
from .clip_process import FRAME_SIZE, clip_frames, peak_rss_mb

DOOR_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}   # deploy/facegate.service's glibc settings


@dataclass(frozen=True)
class DoorClip:
    """A face video and the enrollment photo of the person who walks up in it."""

    video: Path
    photo: Path
    name: str


def door_clip(data: Path) -> DoorClip:
    """The Hamilton clip of the shared data folder (the main job of the README)."""
    clips = Path(data) / "videos/face_recognition"
    return DoorClip(clips / "short_hamilton_clip.mp4", clips / "lin-manuel-miranda.png", "Lin-Manuel Miranda")


def _config(embedder: str | None, live_max_side: int | None) -> Config:
    settings = {"detector": {"live_max_side": live_max_side}} if live_max_side else {}
    if embedder:
        settings["recognition"] = {"embedder": embedder}
    return Config.from_dict(settings)


def enroll_clip_person(clip: DoorClip, store: Store, bundle, cfg: Config) -> None:
    """Enroll `clip.name` from `clip.photo` by the enrollment code. Raises FacegateError when it fails."""
    results = check_photos(Recognizer(bundle, cfg), [(str(clip.photo), clip.photo)])
    if enroll_checked(store, bundle, clip.name, results, keep_images=False).person is None:
        raise FacegateError(f"cannot enroll {clip.photo}: {results[0].reason}")


def door_runner(clip: DoorClip, home: Path, bundle_dir: Path | None, embedder: str | None, threads: int,
                live_max_side: int | None, enroll: bool = True) -> Runner:
    """A Runner as `facegate run` builds one (default config, dry-run door) over the store in `home`, where
    `clip.name` is first enrolled from `clip.photo` by the enrollment code unless `enroll` is False (it
    was, by another process). Events are discarded."""
    cfg = _config(embedder, live_max_side)
    bundle = open_bundle(cfg, bundle_dir, threads)
    store = Store(Path(home) / "store.db")
    if enroll:
        enroll_clip_person(clip, store, bundle, cfg)
    return Runner(Recognizer(bundle, cfg), store, LogDoor(cfg.door.open_s), DoorDecider.from_config(cfg.decision),
                  events=io.StringIO())


def run_door_clip(clip: DoorClip, home: Path, bundle_dir: Path | None = None, embedder: str | None = None,
                  threads: int = 2, live_max_side: int | None = None, enroll: bool = True) -> dict:
    """Every frame of the clip (read one by one, as from a camera; resized to 640x480) through
    `Runner.process`. Returns the report: per-frame median/p90 ms and fps, frames with a usable face,
    the first frame the person is recognised in and the opening frame, the decision latency (camera
    time between them plus the opening frame's processing), peak RSS."""
    runner = door_runner(clip, home, bundle_dir, embedder, threads, live_max_side, enroll)
    times, with_face, first_seen, opened, fps_src = [], [], None, None, 25.0
    try:
        for i, frame, fps_src in clip_frames(clip.video):
            t0 = time.perf_counter()
            results, decision, _ = runner.process(i / fps_src, frame)
            times.append(time.perf_counter() - t0)
            with_face.append(any(r.usable for r in results))
            cand = door_candidate(results)
            if first_seen is None and cand and cand.match and cand.match.name == clip.name:
                first_seen = i
            if opened is None and decision.action == OPEN:
                opened = i
    finally:
        runner.close()
    report = _report(runner, np.array(times) * 1000, np.array(with_face, bool), first_seen, opened, fps_src)
    return dict(report, threads=threads)


def _report(runner: Runner, ms: np.ndarray, with_face: np.ndarray, first_seen: int | None, opened: int | None,
            fps_src: float) -> dict:
    """The benchmark's JSON report from the per-frame times (float ms (F,)) and face flags (bool (F,))."""
    b, cfg = runner.recognizer.bundle, runner.recognizer.config
    report = {"backend": f"bundle {b.manifest.id}:{b.embedder_entry.name} ({b.embedder_entry.precision})",
              "frames": int(len(ms)),
              "frame_size": list(FRAME_SIZE), "median_frame_ms": float(np.median(ms)),
              "p90_frame_ms": float(np.percentile(ms, 90)), "fps": float(1000 / np.median(ms)),
              "first_seen_frame": first_seen, "open_frame": opened, "source_fps": fps_src,
              "peak_rss_mb": peak_rss_mb(), "live_max_side": cfg.detector.live_max_side, "k": cfg.decision.k,
              "frames_with_face": int(with_face.sum()), "driven_by": "Runner.process"}
    if with_face.any():
        face_ms = ms[with_face]
        report.update(median_face_frame_ms=float(np.median(face_ms)), fps_with_face=float(1000 / np.median(face_ms)))
    if first_seen is not None and opened is not None:
        report["decision_latency_ms"] = (opened - first_seen) / fps_src * 1000 + float(ms[opened])
    return report


def bench_pipeline(clip: DoorClip, home: Path, bundle_dir: Path | None = None, embedder: str | None = None,
                   threads: int = 2, live_max_side: int | None = None, peer: bool = True, repeats: int = 3) -> dict:
    """`run_door_clip` in fresh processes, as the door runs: the person is enrolled here first (the door
    process never enrolls), then the door loop runs with the device memory settings ("door"), again with
    onnxruntime's default memory settings ("door_ort_defaults", the settings before them), and, with `peer`,
    the OpenCV Zoo peer runs on the same frames ("peer"). Returns {"door": report, "door_ort_defaults":
    report, "peer": report}, each report with its own process's peak_rss_mb. Each side runs `repeats`
    times, interleaved, the order reversed every other round (a process's peak and speed vary from run to
    run on a shared machine): its report is the first run's with the medians over the runs (`_combine`).
    Every side runs with the glibc settings deploy/facegate.service gives the door (DOOR_ENV). Raises
    FacegateError when a side fails."""
    cfg = _config(embedder, live_max_side)
    bundle = open_bundle(cfg, bundle_dir, threads)
    store = Store(Path(home) / "store.db")
    try:
        enroll_clip_person(clip, store, bundle, cfg)
    finally:
        store.close()
    settings = {"video": str(clip.video), "photo": str(clip.photo), "name": clip.name, "home": str(home),
                "bundle": str(bundle_dir) if bundle_dir else None, "embedder": embedder, "threads": threads,
                "live_max_side": cfg.detector.live_max_side}
    env = dict(os.environ, **DOOR_ENV)
    runs: dict[str, list[dict]] = {}
    kinds = ("door", "door-ort-defaults") + (("peer",) if peer else ())
    for r in range(repeats):
        for kind in kinds if r % 2 == 0 else kinds[::-1]:          # each side first in turn: no order effect
            done = subprocess.run([sys.executable, "-m", "facegate.edge_runtime.eval.clip_process", kind,
                                   json.dumps(settings)], capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise FacegateError(f"bench pipeline: the {kind} process failed: {done.stderr.strip()[-2000:]}")
            runs.setdefault(kind.replace("-", "_"), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {side: dict(_combine(reports), env=DOOR_ENV) for side, reports in runs.items()}


RUN_KEYS = ("peak_rss_mb", "median_frame_ms", "median_face_frame_ms")


def _combine(reports: list[dict]) -> dict:
    """The first report with peak_rss_mb, median_frame_ms and median_face_frame_ms (and the fps from them)
    replaced by their medians over `reports`, each run's values under "runs", the largest peak under
    "peak_rss_mb_max"."""
    out = dict(reports[0], runs=[{k: r[k] for k in RUN_KEYS if k in r} for r in reports])
    for k in RUN_KEYS:
        if all(k in r for r in reports):
            out[k] = float(np.median([r[k] for r in reports]))
    out["peak_rss_mb_max"] = max(r["peak_rss_mb"] for r in reports)
    if "fps" in out:
        out["fps"] = 1000 / out["median_frame_ms"]
    if "fps_with_face" in out:
        out["fps_with_face"] = 1000 / out["median_face_frame_ms"]
    return out
