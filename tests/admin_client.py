"""What the admin-page tests share: log in like a browser (CSRF from the page), post forms and photos,
read the store and the API with a token. Fixtures (app, make_app, admin, powell) are in conftest.py."""
from __future__ import annotations

import io
import re

import cv2

from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.store import Store

PASSWORD = "correct horse battery"


class Clock:
    """A settable time source for the login throttle."""

    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def csrf(client, path: str = "/login") -> str:
    """The CSRF token of the client's session, read from a page like a browser would."""
    html = client.get(path, follow_redirects=True).get_data(as_text=True)
    m = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def set_up_admin(app, client, username: str = "admin", password: str = PASSWORD):
    token = app.extensions[EXTENSION].setup_token
    r = client.post("/setup", data={"csrf_token": csrf(client, "/setup"), "token": token, "username": username,
                                    "password": password, "confirm": password})
    assert r.status_code == 302, r.get_data(as_text=True)
    return r


def login(client, username: str = "admin", password: str = PASSWORD, **kw):
    return client.post("/login", data={"csrf_token": csrf(client), "username": username, "password": password}, **kw)


def client_from(app, address: str):
    """A test client whose requests come from `address`."""
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def photo(path, name=None):
    return (io.BytesIO(path.read_bytes()), name or path.name)


def enroll(client, name, *files, keep=True, force=False):
    data = {"csrf_token": csrf(client, "/enroll"), "name": name, "photos": list(files)}
    if keep:
        data["keep_images"] = "on"
    if force:
        data["force"] = "on"
    return client.post("/enroll", data=data, content_type="multipart/form-data")


def people(app):
    with Store(app.extensions[EXTENSION].store_path) as s:
        return {p.name: p for p in s.people()}


def jpeg(img_bgr) -> bytes:
    return cv2.imencode(".jpg", img_bgr)[1].tobytes()


def api_token(app) -> dict:
    from facegate.edge_runtime.admin.db import AdminDB
    with AdminDB(app.extensions[EXTENSION].admin_db_path) as db:
        return {"Authorization": "Bearer " + db.create_token("tests", None)[0]}
