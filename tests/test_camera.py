"""Frame sources: back-off on failures, drop-oldest queue, in-order file reading."""
import threading
import time

import cv2
import numpy as np
import pytest

from facegate.edge_runtime.config import CameraConfig
from facegate.edge_runtime.door.camera import CameraError, FrameSource, LatestQueue, is_stream, parse_source, to_rgb


def _frame(i, h=24, w=32):
    """BGR frame whose blue channel holds the frame number, red a constant 200."""
    f = np.zeros((h, w, 3), np.uint8)
    f[..., 0] = i
    f[..., 2] = 200
    return f


class FakeCapture:
    """Gives `count` frames (numbered from `start`), then read() fails (a disconnect)."""

    def __init__(self, start, count, delay=0.0):
        self.i, self.end, self.delay = start, start + count, delay
        self.released = False

    def isOpened(self):
        return True

    def read(self):
        if self.delay:
            time.sleep(self.delay)
        if self.i >= self.end:
            return False, None
        self.i += 1
        return True, _frame(self.i - 1)

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        self.released = True


class ClosedCapture(FakeCapture):
    def __init__(self):
        super().__init__(0, 0)

    def isOpened(self):
        return False


def _script(*steps):
    """A capture factory playing `steps`: 'fail' (raise), 'closed' (not opened) or a FakeCapture."""
    steps = list(steps)
    opened = []

    def factory(source):
        step = steps.pop(0) if steps else "fail"
        if step == "fail":
            raise OSError("no such camera")
        cap = ClosedCapture() if step == "closed" else step
        opened.append(cap)
        return cap
    factory.opened = opened
    return factory


def _recording_wait(stop_after):
    waits = []

    def wait(seconds):
        waits.append(seconds)
        return len(waits) >= stop_after          # True = "closing": the reader thread ends
    wait.waits = waits
    return wait


def test_parse_source_and_kind(tmp_path):
    assert parse_source("0") == 0 and parse_source(2) == 2 and parse_source(" 1 ") == 1
    assert parse_source("rtsp://cam/1") == "rtsp://cam/1"
    f = tmp_path / "v.avi"
    f.write_bytes(b"x")
    assert not is_stream(str(f)) and is_stream(0) and is_stream("http://x/video")
    assert is_stream("v4l2src ! videoconvert ! appsink")
    with pytest.raises(CameraError, match="empty"):
        parse_source("  ")
    with pytest.raises(CameraError, match="not found"):
        FrameSource(str(tmp_path / "missing.avi"))


def test_to_rgb():
    rgb = to_rgb(_frame(7))
    assert rgb.shape == (24, 32, 3) and rgb[0, 0].tolist() == [200, 0, 7]
    assert to_rgb(np.full((2, 2), 9, np.uint8)).tolist() == [[[9] * 3] * 2] * 2
    assert to_rgb(np.dstack([_frame(3), np.full((24, 32), 255, np.uint8)]))[0, 0].tolist() == [200, 0, 3]
    with pytest.raises(CameraError, match="8-bit"):
        to_rgb(np.zeros((2, 2, 3), np.float32))


def test_latest_queue_drops_oldest():
    q = LatestQueue(2)
    for i in range(5):
        q.put(i)
    assert (q.dropped, len(q)) == (3, 2)
    assert [q.get(0), q.get(0), q.get(0.01)] == [3, 4, None]
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(2.0)))
    t.start()
    q.put("late")
    t.join(3)
    assert got == ["late"]
    with pytest.raises(ValueError):
        LatestQueue(0)


def test_reconnects_with_exponential_backoff():
    factory = _script("fail", "closed", "fail", "fail", "fail", FakeCapture(0, 3), "fail", FakeCapture(3, 2))
    wait = _recording_wait(stop_after=11)
    clock = iter(range(1000)).__next__
    src = FrameSource(0, capture_factory=factory, wait=wait, queue_size=100, clock=clock,
                      reconnect_initial_s=1.0, reconnect_max_s=10.0)
    got = list(src.frames())                                            # ends when wait() says "closing"
    assert [int(f[0, 0, 2]) for _, f in got] == [0, 1, 2, 3, 4]         # every frame, in order, as RGB
    assert all(f.shape == (24, 32, 3) and f[0, 0, 0] == 200 for _, f in got)
    assert [ts for ts, _ in got] == sorted(ts for ts, _ in got)
    # 5 failures: 1, 2, 4, 8, 10 (capped); frames reset it: 1 after the disconnect, 2 after the next failure;
    # frames again: 1, then failures keep doubling
    assert wait.waits == [1.0, 2.0, 4.0, 8.0, 10.0, 1.0, 2.0, 1.0, 2.0, 4.0, 8.0]
    assert all(cap.released for cap in factory.opened)
    assert src.frames_read == 5 and not src.connected


def test_slow_consumer_gets_the_newest_frames():
    factory = _script(FakeCapture(0, 60, delay=0.002))
    src = FrameSource(0, capture_factory=factory, wait=_recording_wait(stop_after=1), queue_size=2)
    got = []
    for _, f in src.frames():
        got.append(int(f[0, 0, 2]))
        time.sleep(0.02)                                   # ~10x slower than the camera
    assert got == sorted(set(got))                         # in order, no repeats
    assert got[-1] == 59                                   # the newest frame is never the one dropped
    assert len(got) < 40 and src.dropped == 60 - len(got)
    assert src.frames_read == 60


def test_close_stops_a_live_source():
    factory = _script(FakeCapture(0, 10 ** 9, delay=0.001))
    src = FrameSource(0, capture_factory=factory)
    it = src.frames()
    assert next(it)[1].shape == (24, 32, 3)
    threading.Timer(0.1, src.close).start()
    t0 = time.monotonic()
    for _ in it:                                            # a never-ending camera: ends once closed
        assert time.monotonic() - t0 < 5, "frames() did not stop after close()"
    src.close()                                             # idempotent; joins the reader thread
    assert not src._thread.is_alive() and factory.opened[0].released


def _write_video(path, n, fps):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for i in range(n):
        writer.write(_frame(i * 8))
    writer.release()


def test_video_file_is_read_in_order_without_drops(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, 20, fps=10.0)
    with FrameSource(str(path), queue_size=1) as src:
        assert not src.live
        got = list(src.frames())
    assert len(got) == 20 and src.dropped == 0
    assert [ts for ts, _ in got] == pytest.approx([i / 10.0 for i in range(20)])
    blue = [float(f[..., 2].mean()) for _, f in got]                     # RGB: blue is channel 2
    assert np.allclose(blue, [i * 8 for i in range(20)], atol=4)
    assert all(abs(float(f[..., 0].mean()) - 200) < 4 for _, f in got)    # red is channel 0
    again = [f for _, f in FrameSource(str(path)).frames()]              # reproducible
    assert all(np.array_equal(a, b) for (_, a), b in zip(got, again))


def test_video_file_in_realtime_drops_like_a_camera(tmp_path):
    path = tmp_path / "fast.avi"
    _write_video(path, 30, fps=100.0)
    src = FrameSource.from_config(CameraConfig(source=str(path), queue_size=1), realtime=True)
    got = []
    t0 = time.monotonic()
    for _, f in src.frames():
        got.append(round(float(f[..., 2].mean()) / 8))
        time.sleep(0.03)
    assert time.monotonic() - t0 >= 0.25                   # paced at ~100 fps: 30 frames take >= 0.29 s
    assert got == sorted(set(got)) and got[-1] == 29
    assert src.dropped > 0 and len(got) < 30


def test_unreadable_video_file(tmp_path):
    path = tmp_path / "broken.avi"
    path.write_bytes(b"this is not a video" * 10)
    with pytest.raises(CameraError, match="cannot read video file"):
        list(FrameSource(str(path)).frames())


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="picamera2"):
        FrameSource(0, backend="picamera2")
