"""Names that would look like another person's are refused on every path that names a person: the enroll
page, rename on the person page, the API's enroll and rename, and the CLI (all go through
store.normalize_name)."""
from __future__ import annotations

import numpy as np
from admin_client import api_token, csrf, photo

from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.store import Store


def _add_person(app, name: str) -> int:
    with Store(app.extensions[EXTENSION].store_path) as s:
        return s.enroll(name, np.ones((1, 4), np.float32), "another-bundle:sface", "sface").id


def _people(app) -> list[str]:
    with Store(app.extensions[EXTENSION].store_path) as s:
        return [p.name for p in s.people()]


def test_hidden_characters_in_names_are_refused_by_page_api_and_cli(admin, app, powell, capsys):
    from facegate.main import main

    pid = _add_person(app, "Colin Powell")
    t = csrf(admin, "/enroll")
    r = admin.post("/enroll", data={"csrf_token": t, "name": "Colin\u200bPowell", "photos": [photo(powell[0])]},
                   content_type="multipart/form-data")
    assert r.status_code == 400 and "U+200B" in r.get_data(as_text=True)
    r = admin.post(f"/people/{pid}/rename", data={"csrf_token": t, "name": "\u202eColin"}, follow_redirects=True)
    assert "U+202E" in r.get_data(as_text=True)
    api = app.test_client()
    r = api.patch(f"/api/v1/people/{pid}", headers=api_token(app), json={"name": "Colin\u2066Powell"})
    assert r.status_code == 400 and "U+2066" in r.json["error"]
    r = api.post("/api/v1/enroll", headers=api_token(app), content_type="multipart/form-data",
                 data={"name": "Colin Powell\u200d", "photos": [photo(powell[1])]})
    assert r.status_code == 400 and "U+200D" in r.json["error"]
    home = str(app.extensions[EXTENSION].home)
    assert main(["people", "rename", "--home", home, "Colin Powell", "Colin\ufeffPowell"]) == 1
    assert "U+FEFF" in capsys.readouterr().err
    assert _people(app) == ["Colin Powell"]


def test_rename_collapses_whitespace_so_names_cannot_look_alike(admin, app):
    pid = _add_person(app, "Ana Maria")
    other = _add_person(app, "Bob")
    t = csrf(admin, "/people")
    r = admin.post(f"/people/{other}/rename", data={"csrf_token": t, "name": "Ana \u00a0Maria"}, follow_redirects=True)
    assert "already enrolled" in r.get_data(as_text=True)
    assert sorted(_people(app)) == ["Ana Maria", "Bob"] and pid != other


def test_a_legacy_name_with_hidden_characters_can_be_shown_and_renamed(admin, app):
    """Someone enrolled before the rule keeps working on the page and can be given a clean name."""
    pid = _add_person(app, "Zoe")
    with Store(app.extensions[EXTENSION].store_path) as s:
        s.conn.execute("UPDATE people SET name = 'Zoe\u200b' WHERE id = ?", (pid,))
    assert admin.get(f"/people/{pid}").status_code == 200
    admin.post(f"/people/{pid}/rename", data={"csrf_token": csrf(admin, "/people"), "name": "Zoe"})
    assert _people(app) == ["Zoe"]
