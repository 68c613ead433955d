"""Frames from a camera, a stream or a video file, as (timestamp, RGB frame) pairs.

Live sources (camera index, device, rtsp/http URL, GStreamer pipeline, picamera2) are read by a
background thread into a small drop-oldest queue, so the consumer never falls behind; a failed
or lost camera is reopened with exponential back-off and never stops the process. Video files
are read in order, every frame, reproducibly (or paced at their fps with `realtime=True`).
"""
from __future__ import annotations

import importlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..errors import FacegateError

log = logging.getLogger(__name__)

CaptureFactory = Callable[[Any], Any]
"""source -> capture object with OpenCV's VideoCapture methods read(), isOpened(), release(),
get(prop) and set(prop, value); read() returns (ok, frame BGR/BGRA/grey uint8)."""

STREAM_TIMEOUT_MS = 5000        # open/read timeout for network streams (FFmpeg backend)


class CameraError(FacegateError):
    """A frame source cannot be used (bad source, missing file, missing library)."""


def parse_source(source: str | int) -> int | str:
    """A camera index ("0" -> 0) or the string (file path, URL, GStreamer pipeline) unchanged."""
    if isinstance(source, bool):
        raise CameraError(f"camera source must be an index, a path or an address, got {source!r}")
    if isinstance(source, int):
        return source
    s = str(source).strip()
    if s.isdigit():
        return int(s)
    if not s:
        raise CameraError("camera source is empty: give an index such as 0, a video file or an address")
    return s


def is_stream(source: int | str) -> bool:
    """True for a live source: index, URL, GStreamer pipeline or device node (not a regular file)."""
    if isinstance(source, int):
        return True
    return "://" in source or "!" in source or not Path(source).is_file()


def open_capture(source: int | str) -> cv2.VideoCapture:
    """The default capture factory: OpenCV VideoCapture with the right backend for the source."""
    if isinstance(source, str) and "!" in source:
        return cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
    if isinstance(source, str) and "://" in source:
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
    return cv2.VideoCapture(source)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """A captured frame (uint8 grey (H, W), BGR (H, W, 3) or BGRA (H, W, 4)) as uint8 RGB (H, W, 3)."""
    f = np.asarray(frame)
    if f.dtype != np.uint8 or f.ndim not in (2, 3) or f.size == 0:
        raise CameraError(f"camera gave an unusable frame ({f.dtype} {f.shape}); expected 8-bit images")
    if f.ndim == 2:
        return cv2.cvtColor(f, cv2.COLOR_GRAY2RGB)
    if f.shape[2] == 3:
        return cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
    if f.shape[2] == 4:
        return cv2.cvtColor(f, cv2.COLOR_BGRA2RGB)
    raise CameraError(f"camera gave frames with {f.shape[2]} channels; expected 1, 3 or 4")


class LatestQueue:
    """A bounded FIFO that drops its oldest item when full, so it always holds the newest ones."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self._items: deque = deque(maxlen=maxsize)
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None):
        """The oldest item kept, or None after `timeout` seconds without one."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) > 0, timeout):
                return None
            return self._items.popleft()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class _Picamera2Capture:
    """picamera2 behind the VideoCapture methods the reader uses."""

    def __init__(self, module, index: int, width: int | None, height: int | None, fps: float | None):
        self._cam = module.Picamera2(index)
        main = {"format": "RGB888"}          # picamera2's "RGB888" is B, G, R in memory, like OpenCV
        if width and height:
            main["size"] = (int(width), int(height))
        controls = {"FrameRate": float(fps)} if fps else {}
        self._cam.configure(self._cam.create_video_configuration(main=main, controls=controls))
        self._cam.start()

    def isOpened(self) -> bool:
        return True

    def read(self):
        return True, self._cam.capture_array("main")

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return False

    def release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()


def _import_picamera2():
    try:
        return importlib.import_module("picamera2")
    except ImportError as e:
        raise CameraError("camera backend 'picamera2' needs the picamera2 module, which is not installed: "
                          "sudo apt install python3-picamera2 (or pip install picamera2), or set "
                          "[camera] backend = \"opencv\"") from e


class FrameSource:
    """Frames from one source.

    Args:
        source: camera index (int or "0"), device node, video file, rtsp/http URL or GStreamer pipeline
            (with backend "picamera2": the camera number).
        backend: "opencv" or "picamera2".
        width, height, fps: requested capture settings for live sources (None = the camera's default).
        queue_size: frames kept between the reader thread and the consumer (oldest dropped).
        reconnect_initial_s, reconnect_max_s: back-off after a failure starts at the first and doubles
            up to the second; it restarts at the first once a frame arrives.
        realtime: for video files, pace frames at the file's fps and drop like a live camera.
        capture_factory: source -> capture object (default `open_capture`); for tests and custom sources.
        clock: timestamps for live frames (time.monotonic).
        wait: wait(seconds) -> True if the source is being closed (default: the stop event's wait).
    """

    def __init__(self, source: str | int = "0", *, backend: str = "opencv", width: int | None = None,
                 height: int | None = None, fps: float | None = None, queue_size: int = 2,
                 reconnect_initial_s: float = 1.0, reconnect_max_s: float = 30.0, realtime: bool = False,
                 capture_factory: CaptureFactory | None = None, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None):
        if backend not in ("opencv", "picamera2"):
            raise CameraError(f"unknown camera backend {backend!r}; expected 'opencv' or 'picamera2'")
        if not 0 < reconnect_initial_s <= reconnect_max_s:
            raise ValueError(f"need 0 < reconnect_initial_s <= reconnect_max_s, got {reconnect_initial_s}, "
                             f"{reconnect_max_s}")
        self.source = parse_source(source)
        self.backend = backend
        self.width, self.height, self.fps = width, height, fps
        self.realtime = realtime
        self.reconnect_initial_s, self.reconnect_max_s = float(reconnect_initial_s), float(reconnect_max_s)
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._queue = LatestQueue(queue_size)
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.frames_read = 0
        if backend == "picamera2":
            if not isinstance(self.source, int):
                raise CameraError(f"with backend 'picamera2' the source must be a camera number, got {source!r}")
            self.live = True
            if capture_factory is None:
                module = _import_picamera2()
                capture_factory = lambda idx: _Picamera2Capture(module, idx, width, height, fps)  # noqa: E731
        else:
            self.live = is_stream(self.source)
            if capture_factory is None and self.live and isinstance(self.source, str) \
                    and "://" not in self.source and "!" not in self.source and not Path(self.source).exists():
                raise CameraError(f"video file or device {self.source!r} not found; give a camera index such "
                                  f"as 0, an existing file or an rtsp:// / http:// address")
        self._factory = capture_factory or open_capture

    @classmethod
    def from_config(cls, cfg, realtime: bool = False, capture_factory: CaptureFactory | None = None,
                    **kwargs) -> "FrameSource":
        """From a config.CameraConfig."""
        return cls(cfg.source, backend=cfg.backend, width=cfg.width, height=cfg.height, fps=cfg.fps,
                   queue_size=cfg.queue_size, reconnect_initial_s=cfg.reconnect_initial_s,
                   reconnect_max_s=cfg.reconnect_max_s, realtime=realtime, capture_factory=capture_factory,
                   **kwargs)

    @property
    def dropped(self) -> int:
        """Frames dropped because the consumer was slower than the source."""
        return self._queue.dropped

    # -- consumer side -------------------------------------------------------------------
    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """Yields (ts seconds, uint8 RGB (H, W, 3)).

        Live: ts from `clock`; nothing is yielded while the camera is disconnected; ends on close().
        File: every frame in order with ts = frame index / fps; ends at the end of the file
        (realtime=True: ts from `clock`, frames dropped if the consumer is slow).
        """
        if not self.live and not self.realtime:
            yield from self._file_frames()
            return
        self._start()
        while not self._stop.is_set():
            item = self._queue.get(timeout=0.1)
            if item is not None:
                yield item
            elif self._finished.is_set() and len(self._queue) == 0:
                return

    def close(self) -> None:
        """Stop reading and release the camera (idempotent)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
            if t.is_alive():
                log.warning("camera %s: the reader thread is stuck in a read; it will end with the process",
                            self.source)

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------
    def _open(self):
        cap = self._factory(self.source)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            raise CameraError(f"cannot open {self.source!r}")
        if self.live and self.backend == "opencv":
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                                (cv2.CAP_PROP_FPS, self.fps)):
                if value:
                    cap.set(prop, value)
        return cap

    def _file_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        try:
            cap = self._open()
        except CameraError:
            raise CameraError(f"cannot read video file {self.source!r}; check it is a video OpenCV can "
                              f"decode") from None
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not fps > 0:
                log.warning("video %s has no frame rate; timestamps are frame numbers", self.source)
            i = 0
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                self.frames_read += 1
                yield (i / fps if fps > 0 else float(i)), to_rgb(frame)
                i += 1
        finally:
            cap.release()

    def _start(self) -> None:
        if self._thread is None:
            target = self._run_live if self.live else self._run_file_realtime
            self._thread = threading.Thread(target=target, name=f"camera-{self.source}", daemon=True)
            self._thread.start()

    def _run_file_realtime(self) -> None:
        try:
            cap = self._open()
        except Exception as e:
            log.error("camera: cannot read video file %s (%s)", self.source, e)
            self._finished.set()
            return
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not fps > 0:
                log.warning("video %s has no frame rate; playing it at 25 fps", self.source)
                fps = 25.0
            t0, i = time.monotonic(), 0
            while not self._stop.is_set():
                delay = t0 + i / fps - time.monotonic()
                if delay > 0 and self._wait(delay):
                    break
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                self.frames_read += 1
                self._queue.put((self._clock(), to_rgb(frame)))
                i += 1
        except Exception:
            log.exception("camera: reading video file %s failed", self.source)
        finally:
            cap.release()
            self._finished.set()

    def _run_live(self) -> None:
        delay = self.reconnect_initial_s
        try:
            while not self._stop.is_set():
                cap = None
                try:
                    cap = self._open()
                    self.connected = True
                    log.info("camera %s connected", self.source)
                    while not self._stop.is_set():
                        ok, frame = cap.read()
                        if not ok or frame is None:
                            raise CameraError("no frame (camera disconnected or stream ended)")
                        rgb = to_rgb(frame)
                        self.frames_read += 1
                        delay = self.reconnect_initial_s
                        self._queue.put((self._clock(), rgb))
                except Exception as e:
                    if self._stop.is_set():
                        break
                    log.warning("camera %s unavailable (%s); retrying in %.1f s", self.source, e, delay)
                finally:
                    self.connected = False
                    if cap is not None:
                        try:
                            cap.release()
                        except Exception:
                            log.exception("camera %s: release failed", self.source)
                if self._stop.is_set() or self._wait(delay):
                    break
                delay = min(delay * 2.0, self.reconnect_max_s)
        finally:
            self._finished.set()
