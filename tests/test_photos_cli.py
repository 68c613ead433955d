"""`facegate photos ...` end to end on a few LFW photos in a temporary data home."""
from __future__ import annotations

import json

from test_photos_helpers import copy_photos

from facegate.edge_runtime.photos.db import photos_path
from facegate.edge_runtime.photos.lock import scan_lock
from facegate.main import build_parser, main


def test_photos_commands(data_dir, tmp_path, capsys):
    folder, home = tmp_path / "photos", tmp_path / "home"
    copy_photos(data_dir, folder, people=("Colin_Powell", "Serena_Williams"), numbers=range(1, 4))
    h = ["--home", str(home)]
    assert main(["photos", "scan", str(folder), "--quiet", *h]) == 0
    assert "6 photos found: 6 read" in capsys.readouterr().out
    assert main(["photos", "people", "--json", *h]) == 0
    people = json.loads(capsys.readouterr().out)["people"]
    assert sorted(p["faces"] for p in people) == [3, 3]
    a, b = (str(p["id"]) for p in people)
    assert main(["photos", "name", a, "Alice", *h]) == 0
    assert "the door is not changed" in capsys.readouterr().out
    assert main(["photos", "show", "alice", *h]) == 0
    faces = json.loads(capsys.readouterr().out)["faces"]
    assert main(["photos", "move", str(faces[0]["face"]), "unsorted", *h]) == 0
    assert main(["photos", "merge", "Alice", b, *h]) == 0
    capsys.readouterr()
    assert main(["photos", "export", str(tmp_path / "out"), "--json", str(tmp_path / "map.json"), *h]) == 0
    data = json.loads((tmp_path / "map.json").read_text())
    assert len(data["people"]["Alice"]) == 5 and data["unsorted"] == [faces[0]["photo"]]
    assert main(["photos", "forget", str(folder), *h]) == 0
    assert "6 photos forgotten" in capsys.readouterr().out
    assert (home / "photos.db").is_file()


def test_second_scan_is_refused_with_a_clear_message(data_dir, tmp_path, capsys):
    folder, home = tmp_path / "photos", tmp_path / "home"
    copy_photos(data_dir, folder, people=("Colin_Powell",), numbers=range(1, 2))
    home.mkdir(mode=0o700)
    with scan_lock(photos_path(home)):
        assert main(["photos", "scan", str(folder), "--quiet", "--home", str(home)]) == 1
    assert "another `facegate photos scan` or `watch` is running" in capsys.readouterr().err


def test_help_says_where_progress_goes_without_tqdm():
    sub = build_parser()._subparsers._group_actions[0].choices["photos"]
    scan = sub._subparsers._group_actions[0].choices["scan"]
    assert "plain counter" in sub.format_help() and "--false-merge-rate" in scan.format_help()
