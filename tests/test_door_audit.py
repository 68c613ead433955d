"""The door's audit writer: rows wait, in order, while the store refuses writes; a full buffer says what it dropped."""
import logging
import sqlite3
import time

import pytest
from door_fakes import store_with_ana

from facegate.edge_runtime.door.audit import AuditWriter


@pytest.fixture
def store(tmp_path):
    s = store_with_ana(tmp_path / "store.db")
    yield s
    s.close()


def _events(store):
    return [(a.event, a.person_name, a.details) for a in reversed(store.audit(limit=1000)) if a.event != "enroll"]


def _hold(store):
    """Another process's write lock on the store, until .execute("COMMIT")."""
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_full_audit_buffer_drops_new_rows_and_says_so_in_order(store, caplog):
    holder = _hold(store)
    writer = AuditWriter(store.path, busy_timeout_ms=100, max_rows=3, retry_s=0.05)
    caplog.set_level(logging.ERROR, logger="facegate.edge_runtime.door")
    for i in range(5):
        writer.log(f"e{i}", None, n=i)
    assert writer.pending == 3 and writer.dropped_total == 2 and "new rows are dropped" in caplog.text
    holder.execute("COMMIT")
    assert writer.flush(5)                                      # e0..e2, then the row counting e3 and e4
    writer.log("e5", None, n=5)
    assert writer.flush(5)
    rows = _events(store)
    assert [e for e, _, _ in rows] == ["e0", "e1", "e2", "audit_dropped", "e5"]
    dropped = rows[3][2]
    assert (dropped["rows"], dropped["events"]) == (2, {"e3": 1, "e4": 1}) and dropped["from_at"] <= dropped["to_at"]
    assert writer.close(1) == 0


def test_rows_wait_in_order_and_carry_when_they_happened(store):
    holder = _hold(store)
    writer = AuditWriter(store.path, busy_timeout_ms=100, retry_s=0.05)
    writer.log("deny", None, ts=1.0)
    writer.seen("Ana", 1234.5)
    writer.log("door_open", "Ana", ts=2.0)
    writer.seen("Nobody", 1.0)                                  # deleted meanwhile: skipped, not retried forever
    time.sleep(0.4)                                             # past the busy timeout: a write has failed
    holder.execute("COMMIT")
    assert writer.flush(5) and writer.close(1) == 0
    rows = _events(store)
    assert [(e, p, d["ts"]) for e, p, d in rows] == [("deny", None, 1.0), ("door_open", "Ana", 2.0)]
    assert all(d["at"] > 0 for _, _, d in rows) and store.person("Ana").last_seen_at == 1234.5


def test_rows_written_at_once_carry_no_extra_time_and_bad_rows_are_skipped(store, caplog):
    writer = AuditWriter(store.path)
    writer.log("deny", None, ts=1.0)
    writer.log("bad", None, value=object())                     # not JSON: a bug, logged, skipped
    writer.log("deny", None, ts=2.0)
    assert writer.flush(5) and writer.close(1) == 0
    assert [(e, d) for e, _, d in _events(store)] == [("deny", {"ts": 1.0}), ("deny", {"ts": 2.0})]
    assert "'bad' row cannot be stored" in caplog.text
    writer.log("deny", None, ts=3.0)                            # after close: lost, and said so
    assert "after the writer stopped" in caplog.text
