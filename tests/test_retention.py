"""Retention: event files rotate by size and age and age out; audit rows older than keep_audit_days go,
removed by the running door (through its AuditWriter) at start and once a day."""
import json
import os
import sqlite3
import stat

import numpy as np
import pytest
from door_fakes import NoFaceRecognizer

from facegate.edge_runtime.config import Config, ConfigError
from facegate.edge_runtime.door.audit import AuditWriter
from facegate.edge_runtime.event_log import EventLog, register, registered, rotated_files
from facegate.edge_runtime.retention import DAY_S, Every, cutoff
from facegate.edge_runtime.store import Store


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def _line(i):
    return json.dumps({"ts": i, "person": "unknown", "decision": "none"}) + "\n"


def test_event_file_rotates_by_size_and_keeps_every_line_in_order(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=500, rotate_s=DAY_S, keep_s=30 * DAY_S)
    for i in range(100):
        log.write(_line(i))
    log.close()
    files = rotated_files(path)
    assert [p.name for p in files] == [f"events.jsonl.{k}" for k in range(1, len(files) + 1)]
    assert len(files) >= 5
    assert all(p.stat().st_size < 500 + len(_line(99)) for p in files + [path])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ts = [json.loads(line)["ts"] for p in [*reversed(files), path] for line in p.read_text().splitlines()]
    assert ts == list(range(100))                 # oldest file has the oldest lines, nothing lost


def test_event_file_rotates_by_age_and_old_files_are_deleted(tmp_path):
    path, clock = tmp_path / "events.jsonl", Clock()
    log = EventLog(path, max_bytes=10**9, rotate_s=3600, keep_s=2 * DAY_S, clock=clock)
    log.write(_line(0))
    clock.t += 1800
    log.write(_line(1))
    assert rotated_files(path) == []                # half an hour: same file
    clock.t += 1801
    log.write(_line(2))                             # the first line is an hour old: rotated first
    assert [p.name for p in rotated_files(path)] == ["events.jsonl.1"]
    assert path.read_text() == _line(2)
    os.utime(path.with_name("events.jsonl.1"), (clock.t, clock.t))     # its last line, on the test's clock
    for day in range(1, 4):                         # a line a day for three days: a file a day, each rotated
        clock.t += DAY_S                            # file last written a day before the next
        log.write(_line(2 + day))
        os.utime(path.with_name("events.jsonl.1"), (clock.t - DAY_S, clock.t - DAY_S))
    # the running log deleted the file whose last line was more than two days old (hourly check)
    assert [p.name for p in rotated_files(path)] == ["events.jsonl.1", "events.jsonl.2"]
    assert path.with_name("events.jsonl.2").read_text() == _line(3)
    clock.t += DAY_S
    assert [p.name for p in log.prune()] == ["events.jsonl.2"]
    assert [p.name for p in rotated_files(path)] == ["events.jsonl.1"]
    log.close()


def test_a_reopened_event_file_counts_its_age_from_the_last_rotation(tmp_path):
    path, clock = tmp_path / "events.jsonl", Clock()
    log = EventLog(path, max_bytes=10**9, rotate_s=3600, keep_s=DAY_S, clock=clock)
    log.write(_line(0))
    clock.t += 3601
    log.write(_line(1))
    log.close()
    os.utime(path.with_name("events.jsonl.1"), (clock.t - 10,) * 2)
    clock.t = path.with_name("events.jsonl.1").stat().st_mtime + 3599
    log = EventLog(path, max_bytes=10**9, rotate_s=3600, keep_s=DAY_S, clock=clock)
    log.write(_line(2))
    assert len(rotated_files(path)) == 1
    clock.t += 2
    log.write(_line(3))                             # an hour after the last rotation, not after reopening
    assert len(rotated_files(path)) == 2
    log.close()


def test_event_log_from_config_and_the_list_in_the_data_home(tmp_path):
    cfg = Config.from_dict({"privacy": {"events_rotate_mb": 0.001, "events_rotate_hours": 2, "keep_events_days": 7}})
    log = EventLog.from_config(tmp_path / "e.jsonl", cfg.privacy)
    assert (log.max_bytes, log.rotate_s, log.keep_s) == (1000, 7200.0, 7 * DAY_S)
    log.close()
    home = tmp_path / "home"
    home.mkdir()
    register(home, tmp_path / "e.jsonl")
    register(home, tmp_path / "e.jsonl")
    assert registered(home) == [str(tmp_path / "e.jsonl")]
    with pytest.raises(ConfigError, match="privacy.keep_events_days = 0 must be >= 1"):
        Config.from_dict({"privacy": {"keep_events_days": 0}})
    with pytest.raises(ConfigError, match="events_rotate_hours = 48.0 is longer than privacy.keep_events_days = 1"):
        Config.from_dict({"privacy": {"keep_events_days": 1, "events_rotate_hours": 48}})
    with pytest.raises(ConfigError, match="privacy.key_file .* must be an absolute path"):
        Config.from_dict({"privacy": {"key_file": "key"}})
    assert (Config().privacy.keep_events_days, Config().privacy.keep_audit_days) == (30, 365)


def test_prune_audit_removes_only_rows_older_than_the_retention(tmp_path):
    clock = Clock(10 * DAY_S)
    with Store(tmp_path / "store.db", clock=clock) as s:
        s.enroll("Alice", np.ones((1, 8), np.float32), "b", "sface")
        clock.t += DAY_S
        s.log("door_open", "Alice", score=4.0)
        clock.t += 5 * DAY_S
        s.log("deny", None, reason="unknown")
        n = s.prune_audit(cutoff(3, clock.t))
        assert n == 2                                              # the enroll and the opening
        rows = s.audit()
        assert [(r.event, r.details) for r in rows] == [
            ("audit_pruned", {"rows": 2, "before": cutoff(3, clock.t)}), ("deny", {"reason": "unknown"})]
        assert s.prune_audit(cutoff(3, clock.t)) == 0 and len(s.audit()) == 2     # nothing more: no new row
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):          # still append-only otherwise
            s.conn.execute("DELETE FROM audit")
        assert s.conn.execute("SELECT count(*) FROM audit_unlock").fetchone()[0] == 0
        assert [p.name for p in s.people()] == ["Alice"]                           # people are not touched


def test_the_door_audit_writer_prunes_in_order(tmp_path):
    db = tmp_path / "store.db"
    with Store(db, clock=Clock(1.0)) as s:
        s.log("old", None)
    w = AuditWriter(db, retry_s=0.05)
    w.prune(cutoff(1, 3 * DAY_S))
    w.log("new", None)
    assert w.flush(10.0)
    assert w.close(1.0) == 0
    with Store(db) as s:
        assert [r.event for r in s.audit()] == ["new", "audit_pruned"]


def test_every_is_due_first_then_once_a_period():
    clock = Clock(0.0)
    e = Every(DAY_S, clock=clock)
    assert e.due() and not e.due()
    clock.t += DAY_S - 1
    assert not e.due()
    clock.t += 1
    assert e.due() and not e.due()
    with pytest.raises(ValueError):
        cutoff(0, 1.0)


def test_the_running_door_prunes_the_audit_log_at_start(tmp_path):
    import io

    from facegate.edge_runtime.door.actuators import LogDoor
    from facegate.edge_runtime.door.decision import DoorDecider
    from facegate.edge_runtime.door.runner import Runner

    db = tmp_path / "store.db"
    with Store(db, clock=Clock(1000.0)) as s:                     # rows from 1970: far past any retention
        s.log("door_open", None, score=4.0)
    with Store(db) as s:
        s.log("recent", None)
        r = Runner(NoFaceRecognizer("b"), s, LogDoor(), DoorDecider(1, 1, 0.0), io.StringIO(), keep_audit_days=30)
        r.process(0.0, np.zeros((8, 8, 3), np.uint8))
        r.process(0.1, np.zeros((8, 8, 3), np.uint8))             # once: the next check is a day later
        r.close()
        events = [a.event for a in s.audit()]
    assert "door_open" not in events and events.count("audit_pruned") == 1 and "recent" in events
