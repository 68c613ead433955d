"""`facegate run`: frames -> recognition -> k-of-n decision -> door, with JSON-line events and an audit log."""
from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO

import cv2
import numpy as np

from ..event_log import erase_names
from ..matching import TemplateGallery, json_score
from ..recognizer import FaceResult, Recognizer, door_candidate
from ..retention import Every, cutoff
from ..store import Store, StoreError
from ..template_update import learn, update_verdict
from .actuators import Door
from .audit import AUDIT_BUFFER_ROWS, AuditWriter
from .decision import ATTACK, DENY, OPEN, Decision, DoorDecider
from .delivery import Command
from .liveness_gate import frame_live, liveness_line
from .systemd_notify import SystemdNotifier

log = logging.getLogger("facegate.run")

AUDIT_EXIT_WAIT_S = 10.0        # at exit, how long to wait for the store to take the queued audit rows


@dataclass
class RunStats:
    """What one `facegate run` did. `opens` counts openings whose door command was delivered;
    `failed_opens` those decided but not delivered (audited as door_error); `audit_lost` audit rows
    that never reached the store (dropped when its buffer was full, or still waiting at exit)."""

    frames: int = 0
    frames_with_face: int = 0
    attacks: int = 0
    opens: int = 0
    failed_opens: int = 0
    denies: int = 0
    audit_lost: int = 0
    seconds: float = 0.0
    stage_ms: dict = field(default_factory=dict)


def draw(frame_rgb: np.ndarray, results: list[FaceResult], decision: Decision) -> np.ndarray:
    """A BGR copy of the frame with boxes, names, scores and liveness (green = known, red = unknown, grey =
    unusable), and the decision when the door opens or an attack is suspected."""
    out = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    for r in results:
        x1, y1, x2, y2 = (int(v) for v in r.face.box)
        if not r.usable:
            color, label = (160, 160, 160), ", ".join(r.problems)
        elif r.match is not None and r.match.name:
            color, label = (0, 200, 0), f"{r.match.name} {r.match.score:.2f}"
        else:
            color, label = (0, 0, 230), f"unknown {r.match.score:.2f}" if r.match else "unknown"
        if r.liveness is not None:
            label += f" live {r.liveness:.2f}"
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        cv2.putText(out, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    if decision.action == OPEN:
        cv2.putText(out, f"OPEN: {decision.name}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 200, 0), 2)
    elif decision.reason == ATTACK:
        cv2.putText(out, "PRESENTATION ATTACK SUSPECTED", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 230), 2)
    return out


class Runner:
    """Consumes frames and drives the door. One instance per `facegate run`.

    The frame loop never waits for the door or the store: door commands are queued (a network door
    delivers them from its own thread, with a deadline) and their outcomes audited as they come in;
    audit rows go through an AuditWriter that keeps them, in order, while the store refuses writes.
    A door or store failure is logged and audited, and the door stays locked; it never ends the run.

    Args:
        recognizer, store, door, decider: the pipeline, the enrollment store (read here for new
            templates; audit rows are written through `store.path` by the AuditWriter), the door and
            the k-of-n decision.
        events: where JSON-line events go, one per frame with a face.
        refresh_s: how often to look for enrollments made meanwhile.
        deny_log_s: at most one "deny" audit row per this many seconds.
        audit_rows: audit rows that may wait for the store before new ones are dropped.
        keep_audit_days: audit rows older than this are removed at start and once a day ([privacy]
            keep_audit_days); None keeps them.
    Liveness: when the recognizer checks it (`recognizer.liveness_on`), a face whose liveness is below
    [liveness] threshold is an attack frame (never counts toward opening; "attack" audit rows, at most one
    per `deny_log_s` with the attack frames counted), and the decider is told to ask for [liveness]
    min_live_frames live frames per opening. The start line says whether liveness is on (`liveness_line`).
    """

    def __init__(self, recognizer: Recognizer, store: Store, door: Door, decider: DoorDecider,
                 events: IO[str] = sys.stdout, refresh_s: float = 2.0, deny_log_s: float = 5.0,
                 audit_rows: int = AUDIT_BUFFER_ROWS, keep_audit_days: float | None = None):
        self.recognizer = recognizer
        self.store = store
        self.door = door
        self.decider = decider
        self.events = events
        self.refresh_s = refresh_s
        self.deny_log_s = deny_log_s
        self.stats = RunStats()
        self.audit = AuditWriter(store.path, busy_timeout_ms=_busy_timeout_ms(store), max_rows=audit_rows,
                                 key=store.key)      # template updates are sealed like enrolled ones
        self.keep_audit_days, self._retention = keep_audit_days, Every()
        self._pending: deque[tuple[Command, dict]] = deque()
        self._closed = False
        self._data_version = None
        self._last_refresh = -1e9
        self._last_deny_log = -1e9
        self._last_attack_log, self._attacks_unlogged = -1e9, 0
        self.liveness_on = bool(recognizer.liveness_on)
        self.live_threshold = recognizer.config.liveness.threshold if self.liveness_on else None
        self.decider.require_live(recognizer.config.liveness.min_live_frames if self.liveness_on else 0)
        log.info("%s", liveness_line(self.liveness_on, self.live_threshold, recognizer.bundle.liveness is not None))
        upd = recognizer.config.template_updates if self.liveness_on else None     # updates need liveness
        self.updates = upd if upd is not None and upd.enabled else None
        if self.updates is not None:
            log.info("template updates: on (margin %g above the threshold, at most %d added per person)",
                     self.updates.margin, self.updates.max_per_person)
        self.refresh_templates(force=True)

    def refresh_templates(self, force: bool = False) -> None:
        """Reload templates when the store changed (e.g. the admin page enrolled someone)."""
        version = self.store.conn.execute("PRAGMA data_version").fetchone()[0]
        if force or version != self._data_version:
            b = self.recognizer.bundle
            before = self.recognizer.operating if not force else None
            old = self.recognizer.templates
            self.recognizer.templates = self.store.templates(b.id, b.metric)
            self._data_version = version
            self._erase_deleted(old, self.recognizer.templates)
            if self.recognizer.operating != before:
                log.info("operating point: %s", self.recognizer.operating.describe())

    def _erase_deleted(self, old, new) -> None:
        """People gone from the templates were deleted: erase their names once more from the event files
        (the lines this loop wrote between the delete and this refresh), in the audit writer's thread."""
        if not hasattr(old, "person_ids"):
            return
        kept = set(new.person_ids)
        gone = sorted({n for n, p in zip(old.names, old.person_ids) if p not in kept} - set(new.names))
        if gone:
            home = self.store.path.parent
            self.audit.call("erase_names", None, lambda _store: _erase_events(home, gone))

    def _refresh_now(self) -> None:
        """`refresh_templates`, kept from ending the run. Fail-secure on a store error: nobody is matched
        (someone deleted meanwhile must not keep opening the door) until the templates can be read again."""
        try:
            self.refresh_templates()
        except (StoreError, sqlite3.Error) as e:
            log.error("cannot read the enrolled templates (%s); nobody is recognised until they can be read", e)
            self.recognizer.templates = TemplateGallery.empty(self.recognizer.bundle.metric)
            self._data_version = None                   # reload at the next refresh

    def process(self, ts: float, frame_rgb: np.ndarray) -> tuple[list[FaceResult], Decision, dict | None]:
        """One frame: returns the face results, the decision and the event emitted (None if no face)."""
        if self.keep_audit_days is not None and self._retention.due():
            self.audit.prune(cutoff(self.keep_audit_days, time.time()))
        if ts - self._last_refresh >= self.refresh_s:
            self._refresh_now()
            self._last_refresh = ts
        t0 = time.perf_counter()
        results = self.recognizer.analyze(frame_rgb, live=True)
        ms = (time.perf_counter() - t0) * 1000
        cand = door_candidate(results)
        score = cand.liveness if cand is not None and self.liveness_on else None
        decision = self.decider.update(ts, cand.match if cand else None, frame_live(score, self.live_threshold),
                                       score)
        self.stats.frames += 1
        event = None
        if results:
            self.stats.frames_with_face += 1
            event = self._event(ts, results, cand, decision, ms)
            self.events.write(json.dumps(event, ensure_ascii=False) + "\n")
            self.events.flush()
        self._act(ts, decision)
        if decision.action == OPEN and self.updates is not None:
            self._learn(cand, decision)
        self.settle()
        return results, decision, event

    def _event(self, ts, results, cand, decision, ms) -> dict:
        m = cand.match if cand else None
        return {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()), "ts": round(ts, 3),
                "person": (m.name or "unknown") if m else None, "score": json_score(m.score) if m else None,
                "candidate": m.candidate if m else None, "decision": decision.action,
                "reason": decision.reason, "votes": decision.votes, "liveness": json_score(decision.liveness),
                "quality": json_score(cand.quality) if cand else None, "faces": len(results),
                "unusable": [list(r.problems) for r in results if r.problems], "frame_ms": round(ms, 1)}

    def _act(self, ts: float, decision: Decision) -> None:
        if decision.action == OPEN:
            cmd = self._command("open", decision.name, f"{decision.votes} matching frames")
            self._pending.append((cmd, {"score": json_score(decision.score), "votes": decision.votes, "ts": ts}))
            self.audit.seen(decision.name, time.time())
        elif decision.action == DENY and decision.reason == ATTACK:
            self.stats.denies += 1
            self.stats.attacks += 1
            self._attacks_unlogged += 1
            if ts - self._last_attack_log >= self.deny_log_s:
                self.audit.log("attack", decision.name, reason=ATTACK, liveness=json_score(decision.liveness),
                               threshold=self.live_threshold, score=json_score(decision.score),
                               frames=self._attacks_unlogged, ts=ts)
                self._last_attack_log, self._attacks_unlogged = ts, 0
        elif decision.action == DENY:
            self.stats.denies += 1
            if ts - self._last_deny_log >= self.deny_log_s:
                self.audit.log("deny", decision.name, reason=decision.reason, score=json_score(decision.score), ts=ts)
                self._last_deny_log = ts

    def _learn(self, cand: FaceResult, decision: Decision) -> None:
        """After an opening: queue the opening face as a new template of its person when `update_verdict`
        allows it ([template_updates]); the write and its audit row go through the audit writer."""
        m, u = cand.match, self.updates
        why = update_verdict(m.score, m.second, self.recognizer.threshold, u.margin,
                             frame_live(cand.liveness, self.live_threshold), cand.usable)
        if why:
            log.info("template update skipped: %s", why)
            return
        b = self.recognizer.bundle
        details = {"score": json_score(m.score), "threshold": json_score(self.recognizer.threshold),
                   "margin": u.margin, "liveness": json_score(cand.liveness)}
        emb = np.array(cand.face.embedding, np.float32)
        self.audit.call("template_added", decision.name,
                        lambda store: learn(store, decision.name, emb, b.id, b.embedder.name, b.metric,
                                            u.max_per_person, **details))

    def _command(self, event: str, person: str | None = None, reason: str = "") -> Command:
        """door.open / door.lock; an exception from the door becomes a failed Command (and a lock attempt)."""
        try:
            return self.door.open(person, reason) if event == "open" else self.door.lock()
        except Exception as e:                   # any door fault: the door must stay locked, the loop go on
            log.exception("door: the %r command raised", event)
            if event == "open":
                self._lock_after_error()
            return Command.finished(event, person, False, f"{type(e).__name__}: {e}")

    def _lock_after_error(self) -> None:
        try:
            self.door.lock()
        except Exception:
            log.exception("door: locking after a failed open raised too")

    def settle(self) -> None:
        """Audit, in order, the door commands whose outcome is known (or whose deadline has passed)."""
        while self._pending:
            cmd, details = self._pending[0]
            if not cmd.expire():
                return
            self._pending.popleft()
            self._audit_outcome(cmd, details)

    def _audit_outcome(self, cmd: Command, details: dict) -> None:
        """door_open for a delivered open, door_error for any command not delivered (counted in stats)."""
        if cmd.delivered:
            if cmd.event == "open":
                self.stats.opens += 1
                self.audit.log("door_open", cmd.person, **details)
            return
        if cmd.event == "open":
            self.stats.failed_opens += 1
        self.audit.log("door_error", cmd.person, command=cmd.event, error=cmd.error, **details)

    def close(self, audit_wait_s: float = AUDIT_EXIT_WAIT_S) -> RunStats:
        """End the run (idempotent): settle pending door commands (waiting at most to their deadlines),
        lock the door once and release it, then write the audit rows still queued (at most
        `audit_wait_s` seconds). Returns the stats."""
        if self._closed:
            return self.stats
        self._closed = True
        for cmd, _ in list(self._pending):
            cmd.wait(cmd.remaining())
        self.settle()
        try:
            locked = self.door.close()
        except Exception as e:
            log.exception("door: closing the door raised")
            locked = Command.finished("lock", None, False, f"{type(e).__name__}: {e}")
        if locked is not None:
            locked.wait(locked.remaining())
            locked.expire()
            self._audit_outcome(locked, {})
        self.stats.audit_lost = self.audit.dropped_total + self.audit.close(audit_wait_s)
        return self.stats

    def run(self, frames, show: bool = False, record: str | None = None, record_fps: float = 25.0,
            notifier: SystemdNotifier | None = None) -> RunStats:
        """Lock, consume (ts, frame) pairs until the source ends or the process is interrupted, then `close`
        (which locks once more, the only lock at exit). `notifier` hears READY after the first frame
        was processed and a watchdog ping after every frame (systemd restarts a loop that stops)."""
        writer = None
        start = time.perf_counter()
        self._pending.append((self._command("lock"), {}))
        try:
            for ts, frame in frames:
                results, decision, _ = self.process(ts, frame)
                if notifier is not None:
                    notifier.ready("door locked; watching the camera")
                    notifier.alive()
                if show or record:
                    writer, stop = _show(draw(frame, results, decision), show, record, record_fps, writer)
                    if stop:
                        break
        finally:
            if notifier is not None:
                notifier.stopping()
            if writer is not None:
                writer.release()
            self.close()
            self.stats.seconds = time.perf_counter() - start
        return self.stats


def _show(vis: np.ndarray, show: bool, record: str | None, record_fps: float, writer):
    """Write the drawn BGR frame `vis` to the recording and/or the window: (the video writer, whether
    the user pressed q)."""
    if record:
        if writer is None:
            h, w = vis.shape[:2]
            writer = cv2.VideoWriter(record, cv2.VideoWriter_fourcc(*"MJPG"), record_fps, (w, h))
        writer.write(vis)
    if show:
        cv2.imshow("facegate", vis)
        return writer, cv2.waitKey(1) & 0xFF == ord("q")
    return writer, False


def _erase_events(home, names) -> None:
    """erase_names on the data home's event files; a file error is logged (without the names), never raised."""
    try:
        erase_names(home, names)
    except OSError as e:
        log.error("cannot erase %d deleted people's names from the event files: %s", len(names), e)


def _busy_timeout_ms(store: Store) -> int:
    """The busy timeout (ms) of `store`'s connection, for the audit writer's own connection."""
    return int(store.conn.execute("PRAGMA busy_timeout").fetchone()[0])
