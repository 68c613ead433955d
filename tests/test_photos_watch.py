"""`facegate photos watch`: a real watchdog observer on a temporary folder (LFW photos copied in appear in
photos.db; a file copied slowly in chunks is scanned once, complete), the debounce rule on a fake clock,
and the command without watchdog (a clear message unless --poll)."""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from test_photos_helpers import recognizer, threshold

from facegate.edge_runtime.photos import watch as pw
from facegate.edge_runtime.photos.db import PhotoDB
from facegate.edge_runtime.photos.organize import organize
from facegate.edge_runtime.photos.scan import scan
from facegate.main import main

DEBOUNCE_S = 0.5
LIMIT_S = 60.0            # generous: a scan of a few photos takes well under a second


class Watcher:
    """`follow` on a folder in a thread of its own (its own PhotoDB), recording every scan's paths."""

    def __init__(self, folder, db_path):
        self.folder, self.db_path, self.stop = folder, db_path, threading.Event()
        self.scans: list[list[str]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rec = recognizer()
        try:
            with PhotoDB(self.db_path) as db:
                def scan_paths(paths):
                    scan(db, rec, paths)
                    organize(db, rec.bundle.id, rec.metric, threshold())
                    self.scans.append(list(paths))
                pw.follow([str(self.folder)], scan_paths, self.stop, debounce_s=DEBOUNCE_S)
        except BaseException as e:       # reported by the test thread
            self.error = e

    def __enter__(self) -> "Watcher":
        self.thread.start()
        wait_for(lambda: len(self.scans) >= 1, self)        # the initial scan of the folder
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def wait_for(condition, watcher: Watcher, limit_s: float = LIMIT_S) -> float:
    """Seconds until condition() holds; fails after limit_s or when the watcher died."""
    start = time.monotonic()
    while not condition():
        assert watcher.error is None, repr(watcher.error)
        assert time.monotonic() - start < limit_s, f"not within {limit_s} s; scans so far: {watcher.scans}"
        time.sleep(0.05)
    return time.monotonic() - start


def faces_of(db_path, path: str) -> list[tuple]:
    with PhotoDB(db_path) as db:
        return db.read("SELECT p.status, f.idx, f.box FROM photos p LEFT JOIN faces f ON f.photo_id = p.id "
                       "WHERE p.path = ?", (path,))


@pytest.fixture
def folder(tmp_path):
    pytest.importorskip("watchdog", reason="photos watch follows file events with watchdog (facegate[watch])")
    d = tmp_path / "photos"
    d.mkdir()
    return d


def test_copied_photos_appear_in_the_library_in_one_scan(data_dir, folder, tmp_path):
    db_path = tmp_path / "photos.db"
    sources = [data_dir / "lfw" / p / f"{p}_0001.jpg" for p in ("Colin_Powell", "Hugo_Chavez", "Serena_Williams")]
    with Watcher(folder, db_path) as w:
        (folder / "trip").mkdir()
        for src in sources:
            shutil.copy(src, folder / "trip" / src.name)
        took = wait_for(lambda: all(faces_of(db_path, str(folder / "trip" / s.name)) for s in sources), w)
        time.sleep(3 * DEBOUNCE_S)
        assert len(w.scans) == 2, w.scans                # the initial scan, then the burst as one
        (folder / "trip" / sources[0].name).unlink()
        wait_for(lambda: not faces_of(db_path, str(folder / "trip" / sources[0].name)), w)
    for s in sources[1:]:
        rows = faces_of(db_path, str(folder / "trip" / s.name))
        assert rows and rows[0][1] is not None           # a face was found
    assert took < LIMIT_S


@pytest.mark.parametrize("pause", [DEBOUNCE_S / 2.5, DEBOUNCE_S * 1.5], ids=["quick-chunks", "slow-chunks"])
def test_a_file_copied_slowly_is_scanned_once_complete(data_dir, folder, tmp_path, pause):
    """Chunks faster than the debounce: the events keep the file waiting. Slower: only the writer's close
    (inotify) tells the copy is not done; observers without close events rely on the debounce alone."""
    from watchdog.observers import Observer

    if pause > DEBOUNCE_S and Observer.__name__ != "InotifyObserver":
        pytest.skip("this observer does not report a writer closing a file")
    db_path = tmp_path / "photos.db"
    data = (data_dir / "lfw/Jacques_Chirac/Jacques_Chirac_0001.jpg").read_bytes()
    target = folder / "slow.jpg"
    with Watcher(folder, db_path) as w:
        with open(target, "wb") as f:
            for i in range(0, len(data), 4096):
                f.write(data[i:i + 4096])
                f.flush()
                time.sleep(pause)
        wait_for(lambda: faces_of(db_path, str(target)), w)
        time.sleep(3 * DEBOUNCE_S)
    scans_of_it = [s for s in w.scans[1:] if any(str(target).startswith(p) for p in s)]
    assert len(scans_of_it) == 1, w.scans
    status, idx, box = faces_of(db_path, str(target))[0]
    assert idx is not None and box is not None, status     # decoded whole: the face is there


def test_a_burst_is_one_scan_and_a_changing_file_waits():
    now = [0.0]
    p = pw.Pending(debounce_s=1.0, max_wait_s=10.0, clock=lambda: now[0])
    sizes = {}
    pw._stat_key, real = (lambda path: sizes.get(path)), pw._stat_key
    try:
        for i in range(5):
            sizes[f"/x/{i}.jpg"] = (100, 1)
            p.add(f"/x/{i}.jpg")
            now[0] += 0.5
            assert p.take_ready() == []                        # the burst goes on
        sizes["/x/4.jpg"] = (200, 2)                           # still being written, no event seen
        now[0] += 1.0
        assert p.take_ready() == [f"/x/{i}.jpg" for i in range(4)]
        assert p.take_ready() == [] and len(p) == 1
        now[0] += 1.0
        assert p.take_ready() == ["/x/4.jpg"]
    finally:
        pw._stat_key = real


def test_a_file_open_for_writing_waits_for_its_close():
    now = [0.0]
    p = pw.Pending(debounce_s=1.0, clock=lambda: now[0], track_closes=True)
    p.add("/x/a.jpg", writing=True)
    now[0] += 5.0
    assert p.take_ready() == []                                # written to, not closed yet
    p.add("/x/a.jpg", writing=False)
    now[0] += 1.0
    assert p.take_ready() == ["/x/a.jpg"]
    p.add("/x/b.jpg", writing=True)
    now[0] += pw.OPEN_WAIT_S
    assert p.take_ready() == ["/x/b.jpg"]                      # left open but unchanged: scanned anyway


def test_scan_targets_map_gone_paths_to_their_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"")
    got = pw.scan_targets([str(tmp_path / "a" / "x.jpg"), str(tmp_path / "a" / "gone" / "y.jpg")], [str(tmp_path)])
    assert got == [str(tmp_path / "a")]                     # x.jpg is scanned with its folder
    assert pw.scan_targets([str(tmp_path / "b" / "z.jpg")], [str(tmp_path)]) == [str(tmp_path)]
    assert pw.scan_targets([str(tmp_path / "a"), str(tmp_path / "a" / "x.jpg")], [str(tmp_path)]) == \
        [str(tmp_path / "a")]


def test_watch_without_watchdog_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pw, "watchdog_available", lambda: False)
    assert main(["photos", "watch", str(tmp_path), "--home", str(tmp_path / "home")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'facegate[watch]'" in err and "--poll" in err
    with pytest.raises(pw.WatchUnavailable, match="facegate\\[watch\\]"):
        pw.follow([str(tmp_path)], lambda paths: None)


def test_watch_polls_when_asked_without_watchdog(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pw, "watchdog_available", lambda: False)
    monkeypatch.setattr(pw, "poll", lambda scan_once, interval_s: scan_once())     # one round
    shutil.copy(data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg", tmp_path / "a.jpg")
    home = tmp_path / "home"
    assert main(["photos", "watch", str(tmp_path), "--poll", "5", "--home", str(home)]) == 0
    assert "1 photos found: 1 read" in capsys.readouterr().out
    assert os.path.isfile(home / "photos.db")
