"""The photo bench's own steps on a few LFW photos: the incremental naming check, the two ways of scoring,
the library copy it runs the check on."""
from __future__ import annotations

import numpy as np
from test_photos_helpers import copy_photos, recognizer, threshold

from facegate.edge_runtime.eval.photos_eval import fresh_copy, incremental_check, score_labels
from facegate.edge_runtime.photos.db import PhotoDB
from facegate.edge_runtime.photos.scan import scan

DISTRACTORS = ("Aaron_Eckhart", "Abba_Eban", "Adam_Ant")     # one-photo LFW people


def test_adding_distractors_after_naming_changes_no_named_person(data_dir, tmp_path):
    people = copy_photos(data_dir, tmp_path / "people", numbers=range(1, 4))
    extra = copy_photos(data_dir, tmp_path / "extra", people=DISTRACTORS, numbers=range(1, 2))
    with PhotoDB(tmp_path / "photos.db") as db:
        r = incremental_check(db, recognizer(), threshold(), sorted(people), {**people, **extra}, sorted(extra))
        names = sorted(n for (n,) in db.read("SELECT name FROM people WHERE name_source = 'user'"))
    assert r["named"] == 4 and r["changed"] == [] and r["distractor_photos_joining_named"] == 0
    assert names == ["Colin Powell", "Hugo Chavez", "Jacques Chirac", "Serena Williams"]


def test_fresh_copy_keeps_only_the_given_photos_all_unsorted(data_dir, tmp_path):
    photos = copy_photos(data_dir, tmp_path / "p", numbers=range(1, 3))
    with PhotoDB(tmp_path / "a.db") as db:
        scan(db, recognizer(), [tmp_path / "p"])
    keep = sorted(photos)[:3]
    with fresh_copy(tmp_path / "a.db", tmp_path / "b.db", keep) as db:
        assert sorted(p for (p,) in db.read("SELECT path FROM photos")) == keep
        assert db.read("SELECT count(*) FROM faces WHERE person_id IS NOT NULL")[0][0] == 0
        assert db.read("SELECT count(*) FROM people")[0][0] == 0


def test_unsorted_faces_count_as_singletons_or_are_left_out():
    truth = ["a", "a", "a", "b", "b"]
    faces = [1, 2, 3, 4, None]                      # the last photo's face was not found
    r = score_labels(truth, faces, {1: 0, 2: 0, 4: 1})    # face 3 unsorted
    assert r["sorted_fraction"] == 0.6
    assert r["pairwise_precision"] == 1.0 and np.isclose(r["pairwise_recall"], 1 / 4)
    so = r["sorted_faces_only"]
    assert so["pairwise_precision"] == 1.0 and so["pairwise_recall"] == 1.0
