"""`facegate run`: frames -> recognition -> k-of-n decision -> door, with JSON-line events and an audit log."""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import IO

import cv2
import numpy as np

from ..matching import json_score
from ..recognizer import FaceResult, Recognizer, door_candidate
from ..store import Store
from .actuators import Door
from .decision import DENY, OPEN, Decision, DoorDecider

log = logging.getLogger("facegate.run")


@dataclass
class RunStats:
    frames: int = 0
    frames_with_face: int = 0
    opens: int = 0
    denies: int = 0
    seconds: float = 0.0
    stage_ms: dict = field(default_factory=dict)


def draw(frame_rgb: np.ndarray, results: list[FaceResult], decision: Decision) -> np.ndarray:
    """A BGR copy of the frame with boxes, names and scores (green = known, red = unknown, grey = unusable)."""
    out = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    for r in results:
        x1, y1, x2, y2 = (int(v) for v in r.face.box)
        if not r.usable:
            color, label = (160, 160, 160), ", ".join(r.problems)
        elif r.match is not None and r.match.name:
            color, label = (0, 200, 0), f"{r.match.name} {r.match.score:.2f}"
        else:
            color, label = (0, 0, 230), f"unknown {r.match.score:.2f}" if r.match else "unknown"
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        cv2.putText(out, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    if decision.action == OPEN:
        cv2.putText(out, f"OPEN: {decision.name}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 200, 0), 2)
    return out


class Runner:
    """Consumes frames and drives the door. One instance per `facegate run`."""

    def __init__(self, recognizer: Recognizer, store: Store, door: Door, decider: DoorDecider,
                 events: IO[str] = sys.stdout, refresh_s: float = 2.0, deny_log_s: float = 5.0):
        self.recognizer = recognizer
        self.store = store
        self.door = door
        self.decider = decider
        self.events = events
        self.refresh_s = refresh_s          # how often to look for enrollments made meanwhile
        self.deny_log_s = deny_log_s        # at most one "deny" audit row per this many seconds
        self.stats = RunStats()
        self._data_version = None
        self._last_refresh = -1e9
        self._last_deny_log = -1e9
        self.refresh_templates(force=True)

    def refresh_templates(self, force: bool = False) -> None:
        """Reload templates when the store changed (e.g. the admin page enrolled someone)."""
        version = self.store.conn.execute("PRAGMA data_version").fetchone()[0]
        if force or version != self._data_version:
            b = self.recognizer.bundle
            before = self.recognizer.operating if not force else None
            self.recognizer.templates = self.store.templates(b.id, b.metric)
            self._data_version = version
            if self.recognizer.operating != before:
                log.info("operating point: %s", self.recognizer.operating.describe())

    def process(self, ts: float, frame_rgb: np.ndarray) -> tuple[list[FaceResult], Decision, dict | None]:
        """One frame: returns the face results, the decision and the event emitted (None if no face)."""
        if ts - self._last_refresh >= self.refresh_s:
            self.refresh_templates()
            self._last_refresh = ts
        t0 = time.perf_counter()
        results = self.recognizer.analyze(frame_rgb, live=True)
        ms = (time.perf_counter() - t0) * 1000
        cand = door_candidate(results)
        decision = self.decider.update(ts, cand.match if cand else None)
        self.stats.frames += 1
        event = None
        if results:
            self.stats.frames_with_face += 1
            event = self._event(ts, results, cand, decision, ms)
            self.events.write(json.dumps(event, ensure_ascii=False) + "\n")
            self.events.flush()
        self._act(ts, decision)
        return results, decision, event

    def _event(self, ts, results, cand, decision, ms) -> dict:
        m = cand.match if cand else None
        return {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()), "ts": round(ts, 3),
                "person": (m.name or "unknown") if m else None, "score": json_score(m.score) if m else None,
                "candidate": m.candidate if m else None, "decision": decision.action,
                "reason": decision.reason, "votes": decision.votes, "faces": len(results),
                "unusable": [list(r.problems) for r in results if r.problems], "frame_ms": round(ms, 1)}

    def _act(self, ts: float, decision: Decision) -> None:
        if decision.action == OPEN:
            self.stats.opens += 1
            opened = self.door.open(decision.name, f"{decision.votes} matching frames")
            self.store.log("door_open" if opened else "door_error", decision.name, score=json_score(decision.score),
                           votes=decision.votes, ts=ts)
            self.store.touch_seen(decision.name, time.time())
        elif decision.action == DENY:
            self.stats.denies += 1
            if ts - self._last_deny_log >= self.deny_log_s:
                self.store.log("deny", decision.name, reason=decision.reason, score=json_score(decision.score), ts=ts)
                self._last_deny_log = ts

    def run(self, frames, show: bool = False, record: str | None = None, record_fps: float = 25.0) -> RunStats:
        """Consume (ts, frame) pairs until the source ends or the process is interrupted."""
        writer = None
        start = time.perf_counter()
        self.door.lock()
        try:
            for ts, frame in frames:
                results, decision, _ = self.process(ts, frame)
                if show or record:
                    vis = draw(frame, results, decision)
                    if record:
                        if writer is None:
                            h, w = vis.shape[:2]
                            writer = cv2.VideoWriter(record, cv2.VideoWriter_fourcc(*"MJPG"), record_fps, (w, h))
                        writer.write(vis)
                    if show:
                        cv2.imshow("facegate", vis)
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            break
        finally:
            self.door.lock()
            self.door.close()
            if writer is not None:
                writer.release()
            self.stats.seconds = time.perf_counter() - start
        return self.stats
