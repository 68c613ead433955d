"""Faces into people on real LFW photos: right groups, one photo's faces apart, stable ids, the user's
changes kept, door names, export."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_photos_helpers import PEOPLE, central_people, copy_photos, recognizer, scan_and_sort, threshold

from facegate.edge_runtime.matching import TemplateGallery
from facegate.edge_runtime.photos import people as pp
from facegate.edge_runtime.photos.db import PhotoDB
from facegate.edge_runtime.photos.export import export_folders
from facegate.edge_runtime.photos.organize import DoorNames, name_from_door, recluster


@pytest.fixture
def lib(data_dir, tmp_path):
    folder = tmp_path / "photos"
    truth = copy_photos(data_dir, folder)
    db = PhotoDB(tmp_path / "photos.db")
    scan_and_sort(db, [folder])
    yield folder, db, truth
    db.close()


def groups(found: dict, truth: dict) -> set[frozenset]:
    by = {}
    for path, person in found.items():
        by.setdefault(person, set()).add(truth[path])
    return {frozenset(v) for v in by.values()}


def test_a_few_lfw_people_give_the_right_groups(lib):
    folder, db, truth = lib
    found = central_people(db)
    assert None not in found.values()
    assert groups(found, truth) == {frozenset([p]) for p in PEOPLE}
    assert len({found[p] for p in found}) == len(PEOPLE)


def test_two_faces_of_one_photo_are_never_one_person(data_dir, tmp_path):
    a = cv2.imread(str(data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg"))
    b = cv2.imread(str(data_dir / "lfw/Colin_Powell/Colin_Powell_0002.jpg"))
    folder = tmp_path / "photos"
    copy_photos(data_dir, folder, people=("Colin_Powell",), numbers=range(3, 6))
    cv2.imwrite(str(folder / "twice.jpg"), np.hstack([a, b]))
    with PhotoDB(tmp_path / "photos.db") as db:
        scan_and_sort(db, [folder])
        rows = db.read("SELECT f.person_id FROM faces f JOIN photos p ON p.id = f.photo_id "
                       "WHERE p.path = ? AND f.problems = ''", (str(folder / "twice.jpg"),))
    assert len(rows) >= 2
    assert len({r[0] for r in rows}) == len(rows)


def test_new_photos_join_existing_people_and_ids_stay(lib, data_dir):
    folder, db, truth = lib
    before = central_people(db)
    truth.update(copy_photos(data_dir, folder, people=PEOPLE[:2] + ("Serena_Williams",), numbers=range(5, 7)))
    truth.update(copy_photos(data_dir, folder, people=("Hugo_Chavez", "Junichiro_Koizumi"), numbers=range(2, 5)))
    scan_and_sort(db, [folder])
    after = central_people(db)
    assert all(after[p] == pid for p, pid in before.items())
    ids = {truth[p]: pid for p, pid in before.items()}
    for p, pid in after.items():
        if truth[p] in ids:
            assert pid == ids[truth[p]], p
    assert len({after[p] for p in after if truth[p] == "Junichiro_Koizumi"}) == 1


def test_user_names_merges_and_moves_survive_a_recluster(lib):
    folder, db, truth = lib
    found = central_people(db)
    ids = {truth[p]: pid for p, pid in found.items()}
    pp.name_person(db, ids["Colin_Powell"], "Colin")
    pp.merge_people(db, ids["Hugo_Chavez"], ids["Serena_Williams"])            # a wrong merge, on purpose
    chirac_face = db.read("SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path = ?",
                          (str(folder / "Jacques_Chirac_0001.jpg"),))[0][0]
    powell_face = db.read("SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path = ?",
                          (str(folder / "Colin_Powell_0002.jpg"),))[0][0]
    pp.move_face(db, chirac_face, "Colin")
    pp.move_face(db, powell_face, "unsorted")
    snapshot = db.read("SELECT id, person_id FROM faces ORDER BY id")
    rec = recognizer()
    recluster(db, rec.bundle.id, rec.metric, threshold())
    scan_and_sort(db, [folder])
    assert db.read("SELECT id, person_id FROM faces ORDER BY id") == snapshot
    assert pp.find_person(db, "colin") == ids["Colin_Powell"]
    assert [p.label for p in pp.list_people(db)].count("Colin") == 1


def test_recluster_keeps_ids_of_untouched_people(lib):
    folder, db, truth = lib
    before = db.read("SELECT id, person_id FROM faces ORDER BY id")
    rec = recognizer()
    recluster(db, rec.bundle.id, rec.metric, threshold())
    assert db.read("SELECT id, person_id FROM faces ORDER BY id") == before


def test_people_enrolled_at_the_door_name_photo_people(lib):
    folder, db, truth = lib
    rec = recognizer()
    t = db.usable_faces(rec.bundle.id)
    found = central_people(db)
    powell = {pid for p, pid in found.items() if truth[p] == "Colin_Powell"}.pop()
    rows = np.flatnonzero(t.person_ids == powell)[:2]
    door = DoorNames(TemplateGallery(("Colin Powell",) * 2, (7, 7), t.embeddings[rows], rec.metric), 3.28)
    assert name_from_door(db, rec.bundle.id, door) == 1
    named = {p.id: (p.name, p.name_source) for p in pp.list_people(db)}
    assert named[powell] == ("Colin Powell", "door")
    pp.name_person(db, powell, "Colin")
    name_from_door(db, rec.bundle.id, door)
    assert pp.find_person(db, "Colin") == powell


def test_export_folders_and_json(lib, tmp_path):
    folder, db, truth = lib
    found = central_people(db)
    pid = found[str(folder / "Colin_Powell_0001.jpg")]
    pp.name_person(db, pid, "Colin")
    out = tmp_path / "out"
    data = export_folders(db, out, "link", tmp_path / "map.json")
    assert json.loads((tmp_path / "map.json").read_text()) == data
    assert sorted(data["people"]["Colin"]) == sorted(p for p in truth if truth[p] == "Colin_Powell")
    links = sorted((out / "Colin").iterdir())
    assert [p.name for p in links] == [f"Colin_Powell_{n:04d}.jpg" for n in range(1, 5)]
    assert all(p.is_symlink() and p.resolve().parent == folder for p in links)
    export_folders(db, tmp_path / "copies", "copy")
    assert not any(p.is_symlink() for p in (tmp_path / "copies" / "Colin").iterdir())
    export_folders(db, out, "link")            # again: nothing doubled
    assert len(list((out / "Colin").iterdir())) == 4
