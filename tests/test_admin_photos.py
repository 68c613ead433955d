"""The admin page's Photos section (Flask test client) on a photo library scanned from a few LFW photos:
login on every route, CSRF on every form, 404 for unknown ids, photos served only by their library id
(path traversal refused), rename, merge, move, search, the boxes drawn, nothing written to the door or logs."""
from __future__ import annotations

import logging
import re

import cv2
import numpy as np
import pytest
from admin_client import csrf, set_up_admin
from test_photos_helpers import copy_photos, recognizer, scan_and_sort

from facegate.edge_runtime.admin import create_app
from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.photos import people as pp
from facegate.edge_runtime.photos.db import PhotoDB, photos_path
from facegate.edge_runtime.store import Store

PEOPLE = ("Colin_Powell", "Hugo_Chavez", "Serena_Williams")
FORM = {"name": "X", "other": "1", "to": "unsorted", "confirm": "yes"}          # every photos form's fields


@pytest.fixture
def home(data_dir, tmp_path):
    """A data home whose photos.db holds 3 LFW people x 3 photos, scanned and sorted."""
    home = tmp_path / "home"
    home.mkdir()
    copy_photos(data_dir, tmp_path / "photos", people=PEOPLE, numbers=range(1, 4))
    with PhotoDB(photos_path(home)) as db:
        scan_and_sort(db, [tmp_path / "photos"])
    return home


@pytest.fixture
def app(home):
    return create_app({"HOME": home, "BUNDLE": recognizer().bundle})


def library(home) -> PhotoDB:
    return PhotoDB(photos_path(home))


def person_of(home, photo_name: str) -> int:
    """The person id of the largest face of a photo (LFW's subject)."""
    with library(home) as db:
        rows = db.read("SELECT f.person_id, f.box FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path LIKE ?",
                       ("%/" + photo_name,))
    areas = [((b := np.frombuffer(box, "<f4"))[2] - b[0]) * (b[3] - b[1]) for _, box in rows]
    return rows[int(np.argmax(areas))][0]


def some_face(home, person_id: int) -> int:
    with library(home) as db:
        return db.read("SELECT id FROM faces WHERE person_id = ? ORDER BY id", (person_id,))[0][0]


def some_photo(home) -> int:
    with library(home) as db:
        return db.read("SELECT id FROM photos WHERE status = 'ok' ORDER BY id")[0][0]


def test_every_photos_route_needs_a_login(app, home):
    anon = app.test_client()
    token = csrf(anon)
    pid = person_of(home, "Colin_Powell_0001.jpg")
    fid, phid = some_face(home, pid), some_photo(home)
    gets = ["/photos", f"/photos/people/{pid}", "/photos/unsorted", f"/photos/faces/{fid}.jpg",
            f"/photos/photo/{phid}.jpg"]
    posts = [f"/photos/people/{pid}/rename", f"/photos/people/{pid}/merge", f"/photos/faces/{fid}/move",
             f"/photos/people/{pid}/enroll"]
    for url in gets:
        r = anon.get(url)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login?next="), url
    for url in posts:
        assert anon.post(url, data={"csrf_token": token, **FORM}).status_code == 401
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("photos.")]
    assert len(rules) == len(gets) + len(posts)
    with library(home) as db:
        assert all(p.name is None for p in pp.list_people(db))


def test_csrf_token_required_on_every_photos_form(admin, home):
    pid = person_of(home, "Colin_Powell_0001.jpg")
    other = person_of(home, "Hugo_Chavez_0001.jpg")
    fid = some_face(home, pid)
    for url, data in [(f"/photos/people/{pid}/rename", {"name": "X"}),
                      (f"/photos/people/{pid}/merge", {"other": other}),
                      (f"/photos/faces/{fid}/move", {"to": "unsorted"}),
                      (f"/photos/people/{pid}/enroll", {"confirm": "yes"})]:
        for bad in ({}, {"csrf_token": "forged"}):
            r = admin.post(url, data={**data, **bad})
            assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True), url
    with library(home) as db:
        assert pp.person_summary(db, other) is not None and pp.person_summary(db, pid).name is None
        assert db.read("SELECT person_id, pinned FROM faces WHERE id = ?", (fid,))[0] == (pid, 0)


def test_people_grid_thumbnails_and_search(admin, home):
    html = admin.get("/photos").get_data(as_text=True)
    assert 'aria-current="page">Photos</a>' in html
    assert len(re.findall(r'<li class="photo-person"', html)) == len(PEOPLE)
    thumbs = re.findall(r'src="(/photos/faces/\d+\.jpg)"', html)
    assert len(thumbs) >= 3 * len(PEOPLE)
    r = admin.get(thumbs[0])
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and "no-store" in r.headers["Cache-Control"]
    assert cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_COLOR) is not None
    pid = person_of(home, "Serena_Williams_0002.jpg")
    with library(home) as db:
        pp.name_person(db, pid, "Serena Williams")
    html = admin.get("/photos?q=serena").get_data(as_text=True)
    assert re.findall(r'data-person="(\d+)"', html) == [str(pid)] and "Serena Williams" in html
    assert "Nobody in the photo library matches" in admin.get("/photos?q=nobody").get_data(as_text=True)
    assert admin.get("/photos?page=999999999999999999999").status_code == 200


def test_person_page_draws_each_face_box_from_photos_db(admin, home):
    pid = person_of(home, "Hugo_Chavez_0001.jpg")
    html = admin.get(f"/photos/people/{pid}").get_data(as_text=True)
    with library(home) as db:
        summary = pp.person_summary(db, pid)
        views = pp.person_photos(db, pid, 100)
    assert summary.photos == 3 and len(views) == 3
    for v in views:
        block = re.search(rf'<figure class="photo" data-photo="{v.id}">(.*?)</figure>', html, re.S).group(1)
        assert f'viewBox="0 0 {v.width} {v.height}"' in block
        for f in v.faces:
            rect = re.search(rf'<rect data-face="{f.id}" class="(\w+)"\s+x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
                             r'height="([\d.]+)"', block)
            assert rect.group(1) == ("this" if f.person_id == pid else "other")
            x, y, w, h = (float(rect.group(i)) for i in range(2, 6))
            assert (x, y, x + w, y + h) == pytest.approx(f.box, abs=1e-3)
        r = admin.get(f"/photos/photo/{v.id}.jpg")
        img = cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_COLOR)
        assert r.status_code == 200 and r.mimetype == "image/jpeg" and img.shape[:2] == (v.height, v.width)
    assert len(re.findall(r'<li class="face"', html)) == summary.faces
    assert "does not enroll anyone at the door" in html


def test_unknown_ids_are_404(admin, home):
    token = csrf(admin, "/photos")
    huge = "9" * 18
    for url in [f"/photos/people/{huge}", f"/photos/faces/{huge}.jpg", f"/photos/photo/{huge}.jpg", "/photos/people/0"]:
        assert admin.get(url).status_code == 404, url
    for url in [f"/photos/people/{huge}/rename", f"/photos/people/{huge}/merge", f"/photos/faces/{huge}/move",
                f"/photos/people/{huge}/enroll"]:
        assert admin.post(url, data={"csrf_token": token, **FORM}).status_code == 404
    for url in ["/photos/people/abc", "/photos/faces/-1.jpg", "/photos/photo/1.5.jpg", "/photos/people/" + "9" * 19]:
        assert admin.get(url).status_code == 404, url


@pytest.mark.parametrize("url", [
    "/photos/photo/../../../../etc/passwd", "/photos/photo/%2e%2e%2f%2e%2e%2fetc%2fpasswd.jpg",
    "/photos/photo/..%2f..%2fetc%2fpasswd", "/photos/photo//etc/passwd", "/photos/photo/%2fetc%2fpasswd.jpg",
    "/photos/photo/1.jpg/../../../etc/passwd", "/photos/photo/etc/passwd.jpg", "/photos/photo/1%00.jpg",
    "/photos/photo/~root.jpg", "/photos/photo/%252e%252e%252fetc%252fpasswd.jpg", "/photos/faces/..%2f1.jpg",
])
def test_photo_paths_from_the_request_are_never_files(admin, url):
    r = admin.get(url, follow_redirects=True)
    assert r.status_code == 404 and b"root:" not in r.data


def test_only_photos_the_library_read_are_served(admin, home, tmp_path):
    ok = some_photo(home)
    r = admin.get(f"/photos/photo/{ok}.jpg?path=/etc/passwd&file=../../etc/passwd")
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and b"root:" not in r.data
    bad = tmp_path / "photos" / "notes.jpg"
    bad.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with library(home) as db:
        scan_and_sort(db, [tmp_path / "photos"])
        bad_id = db.read("SELECT id, status FROM photos WHERE path = ?", (str(bad),))[0]
        path = db.read("SELECT path FROM photos WHERE id = ?", (ok,))[0][0]
    assert bad_id[1] == "error"
    assert admin.get(f"/photos/photo/{bad_id[0]}.jpg").status_code == 404      # recorded as unreadable: never sent
    import os
    os.replace(path, path + ".moved")
    os.symlink("/etc/passwd", path)                   # the known path now leads elsewhere: not an image, refused
    r = admin.get(f"/photos/photo/{ok}.jpg")
    assert r.status_code == 404 and b"root:" not in r.data
    os.remove(path)
    assert admin.get(f"/photos/photo/{ok}.jpg").status_code == 404


def test_rename_merge_and_move(admin, app, home):
    powell, chavez = person_of(home, "Colin_Powell_0001.jpg"), person_of(home, "Hugo_Chavez_0001.jpg")
    serena = person_of(home, "Serena_Williams_0001.jpg")
    token = csrf(admin, f"/photos/people/{powell}")
    r = admin.post(f"/photos/people/{powell}/rename", data={"csrf_token": token, "name": "  Colin   Powell "},
                   follow_redirects=True)
    assert "Renamed person" in r.get_data(as_text=True)
    for bad in ("", "123", "unsorted", "x" * 101):
        r = admin.post(f"/photos/people/{powell}/rename", data={"csrf_token": token, "name": bad},
                       follow_redirects=True)
        assert r.status_code == 200 and "flash error" in r.get_data(as_text=True), bad
    r = admin.post(f"/photos/people/{chavez}/merge", data={"csrf_token": token, "other": str(serena)},
                   follow_redirects=True)
    assert f"Merged person {serena} into person {chavez}: 3 faces moved" in r.get_data(as_text=True)
    for other in (str(chavez), "nobody", str(serena)):
        r = admin.post(f"/photos/people/{chavez}/merge", data={"csrf_token": token, "other": other},
                       follow_redirects=True)
        assert "flash error" in r.get_data(as_text=True), other
    face = some_face(home, chavez)
    r = admin.post(f"/photos/faces/{face}/move", data={"csrf_token": token, "to": "colin powell",
                                                        "next": "https://evil.example/"})
    assert r.status_code == 302 and r.headers["Location"] == f"/photos/people/{chavez}"
    face2 = some_face(home, powell)
    r = admin.post(f"/photos/faces/{face2}/move", data={"csrf_token": token, "to": "unsorted",
                                                         "next": f"/photos/people/{powell}?page=1"})
    assert r.headers["Location"] == f"/photos/people/{powell}?page=1"
    r = admin.post(f"/photos/faces/{face2}/move", data={"csrf_token": token, "to": "nobody"}, follow_redirects=True)
    assert "flash error" in r.get_data(as_text=True)
    with library(home) as db:
        assert pp.person_summary(db, powell).name == "Colin Powell"
        assert pp.person_summary(db, serena) is None and pp.person_summary(db, chavez).faces == 5
        assert db.read("SELECT person_id, pinned FROM faces WHERE id = ?", (face,)) == [(powell, 1)]
        assert db.read("SELECT person_id, pinned FROM faces WHERE id = ?", (face2,)) == [(None, 1)]
    assert "Unsorted faces" in admin.get("/photos").get_data(as_text=True)
    assert f'data-face="{face2}"' in admin.get("/photos/unsorted").get_data(as_text=True)
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert s.people() == []                       # naming a photo person enrolls no one at the door


def test_nothing_biometric_or_named_in_the_logs(admin, home, caplog):
    pid = person_of(home, "Colin_Powell_0001.jpg")
    with caplog.at_level(logging.DEBUG):
        token = csrf(admin, f"/photos/people/{pid}")
        admin.post(f"/photos/people/{pid}/rename", data={"csrf_token": token, "name": "Secret Name"})
        admin.get("/photos?q=Secret")
        admin.get(f"/photos/people/{pid}")
        admin.post(f"/photos/faces/{some_face(home, pid)}/move", data={"csrf_token": token, "to": "unsorted"})
    assert "Secret" not in caplog.text and "Colin_Powell" not in caplog.text


def test_without_a_photo_library(tmp_path, data_dir):
    home = tmp_path / "empty"
    app = create_app({"HOME": home, "BUNDLE": recognizer().bundle})
    c = app.test_client()
    set_up_admin(app, c)
    assert "no photo library yet" in c.get("/photos").get_data(as_text=True)
    assert c.get("/photos/people/1").status_code == 404 and c.get("/photos/unsorted").status_code == 404
    assert not photos_path(home).exists()


def test_enroll_at_the_door_only_when_asked_and_through_the_checks(admin, app, home):
    pid = person_of(home, "Colin_Powell_0001.jpg")
    token = csrf(admin, f"/photos/people/{pid}")
    url = f"/photos/people/{pid}/enroll"
    r = admin.post(url, data={"csrf_token": token, "confirm": "yes"}, follow_redirects=True)
    assert "Name this person first" in r.get_data(as_text=True)           # an unnamed person has no door name
    admin.post(f"/photos/people/{pid}/rename", data={"csrf_token": token, "name": "Colin Powell"})
    assert 'id="enroll-door"' in admin.get(f"/photos/people/{pid}").get_data(as_text=True)
    r = admin.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "nothing was enrolled" in r.get_data(as_text=True)
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert s.people() == []
    r = admin.post(url, data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 200 and "Enrolled Colin Powell" in r.get_data(as_text=True)
    with Store(app.extensions[EXTENSION].store_path) as s:
        enrolled = {p.name: p.templates for p in s.people()}
        assert enrolled == {"Colin Powell": 3}
        assert [a.event for a in s.audit(event="admin_action")] == ["admin_action"]
    chavez = person_of(home, "Hugo_Chavez_0001.jpg")      # Powell's faces merged into Chavez: refused as lookalikes
    with library(home) as db:
        pp.name_person(db, chavez, "Hugo Chavez")
        pp.merge_people(db, chavez, pid)
    r = admin.post(f"/photos/people/{chavez}/enroll", data={"csrf_token": token, "confirm": "yes"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Enrolled Hugo Chavez" in html and "3 of 6 photos kept" in html
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert {p.name: p.templates for p in s.people()} == {"Colin Powell": 3, "Hugo Chavez": 3}
