"""The admin page (Flask test client): login and setup, CSRF, login throttling, people, enrollment uploads,
photo test, events and CSV, settings, API tokens and the JSON API, OpenAPI spec, concurrent store writers, CLI."""
from __future__ import annotations

import io
import json
import re
import sqlite3
import threading

import cv2
import numpy as np
import pytest
from admin_client import PASSWORD, Clock, api_token, client_from, csrf, enroll, jpeg, login, people, photo, set_up_admin

from facegate.edge_runtime.admin import create_app
from facegate.edge_runtime.admin.auth import PUBLIC_ENDPOINTS
from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.config import Config
from facegate.edge_runtime.enrollment import open_bundle
from facegate.edge_runtime.operating_point import operating_point
from facegate.edge_runtime.store import Store, StoreBusyError

# -- login, setup, sessions --------------------------------------------------------------------

def test_first_run_needs_the_setup_token(make_app, caplog):
    with caplog.at_level("WARNING", logger="facegate.admin"):
        app = make_app()
    token = app.extensions[EXTENSION].setup_token
    assert token and f"setup token: {token}" in caplog.text                 # printed in the log
    assert make_app().extensions[EXTENSION].setup_token != token             # a fresh one per start
    app = make_app()
    c = app.test_client()
    assert c.get("/people").headers["Location"].startswith("/login")
    assert c.get("/login").headers["Location"] == "/setup"
    r = c.post("/setup", data={"csrf_token": csrf(c, "/setup"), "token": "guess", "username": "admin",
                               "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 403 and "setup token is wrong" in r.get_data(as_text=True)
    r = c.post("/setup", data={"csrf_token": csrf(c, "/setup"), "token": app.extensions[EXTENSION].setup_token,
                               "username": "admin", "password": "short", "confirm": "short"})
    assert r.status_code == 400 and "at least 10 characters" in r.get_data(as_text=True)
    set_up_admin(app, c)
    assert c.get("/people").status_code == 200
    assert c.get("/setup").headers["Location"] == "/login"         # setup is over once an admin exists


def test_start_warns_about_templates_of_another_bundle(make_app, tmp_path, caplog):
    from facegate.edge_runtime.paths import store_path
    from facegate.edge_runtime.store import stale_templates_message

    (tmp_path / "home").mkdir()
    with Store(store_path(tmp_path / "home")) as s:
        s.enroll("Zoe", np.ones((1, 4), np.float32), "an-older-bundle:sface", "sface")
        s.enroll("Adam", np.ones((2, 4), np.float32), "an-older-bundle:sface", "sface")
    with caplog.at_level("WARNING", logger="facegate.admin"):
        make_app()
    assert stale_templates_message({"Adam": 2, "Zoe": 1}) in caplog.text
    assert "cannot be matched: Adam, Zoe;" in caplog.text


def test_admin_db_errors_say_what_to_do(tmp_path):
    from facegate.edge_runtime.admin.db import AdminDB, AdminDBError

    with pytest.raises(AdminDBError, match="cannot create the admin database .*check the folder exists"):
        AdminDB(tmp_path / "missing" / "admin.db")
    with AdminDB(tmp_path / "admin.db") as db:
        assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL: credentials survive a power cut
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other = sqlite3.connect(db.path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")                                # e.g. `facegate admin token` running
            db.conn.execute("PRAGMA busy_timeout = 50")
            with pytest.raises(StoreBusyError, match="cannot save setting x: .* is locked"):
                db.set_setting("x", "1")
            other.execute("ROLLBACK")
        finally:
            other.close()
        db.set_setting("x", "1")
        assert db.setting("x") == "1"


def test_there_is_no_default_password(app):
    c = app.test_client()
    for user, pw in [("admin", "admin"), ("admin", ""), ("admin", "password"), ("root", "root")]:
        assert login(c, user, pw).headers.get("Location") == "/setup"   # nobody to log in as
    set_up_admin(app, app.test_client())
    assert login(c, "admin", "admin").status_code == 401


def test_every_route_needs_login_except_login_setup_static(app):
    from flask import url_for

    anon = app.test_client()
    token = csrf(anon)
    args = {"person_id": 1, "index": 0, "token_id": 1, "filename": "style.css", "face_id": 1, "photo_id": 1}
    checked = 0
    for rule in app.url_map.iter_rules():
        with app.test_request_context():
            url = url_for(rule.endpoint, **{k: v for k, v in args.items() if k in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = anon.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
            if rule.endpoint in PUBLIC_ENDPOINTS:
                assert r.status_code != 401 and r.status_code < 500, (method, url)
                continue
            checked += 1
            if rule.endpoint.startswith("api."):
                assert r.status_code == 401 and r.json["error"] and "Bearer" in r.headers["WWW-Authenticate"]
            elif method == "GET":
                assert r.status_code == 302 and r.headers["Location"].startswith("/login?next="), (method, url)
            else:
                assert r.status_code == 401, (method, url, r.status_code)
    assert checked >= 25


def test_csrf_token_required_on_every_form(admin, app, powell):
    enroll(admin, "Colin Powell", photo(powell[0]))
    pid = people(app)["Colin Powell"].id
    for url, data in [(f"/people/{pid}/rename", {"name": "X"}), (f"/people/{pid}/delete", {"confirm": "yes"}),
                      ("/tokens", {"name": "t"}), ("/logout", {}), ("/account/password", {}),
                      ("/enroll", {"name": "Y"}), ("/test", {})]:
        for bad in ({}, {"csrf_token": "forged"}):
            r = admin.post(url, data={**data, **bad})
            assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True), url
    assert "Colin Powell" in people(app)
    anon = app.test_client()
    assert anon.post("/login", data={"username": "admin", "password": PASSWORD}).status_code == 400
    # the webcam's fetch sends the token in a header
    r = admin.post("/enroll/check", data={"photo": photo(powell[1])}, content_type="multipart/form-data",
                   headers={"X-CSRF-Token": csrf(admin, "/enroll")})
    assert r.status_code == 200 and r.json["ok"] and r.json["crop"].startswith("data:image/jpeg;base64,")


def test_cookie_flags_and_security_headers(app, make_app):
    c = app.test_client()
    r = set_up_admin(app, c)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie   # plain http: no Secure
    r = login(c, base_url="https://localhost")                                             # over TLS: Secure
    assert "Secure" in r.headers["Set-Cookie"]
    c = app.test_client()
    login(c)
    page = c.get("/people")
    h = page.headers
    csp = h["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
    assert h["Cache-Control"] == "no-store" and h["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page.get_data(as_text=True)                   # no inline scripts
    strict = make_app(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=True).test_client()
    cookie = strict.get("/login").headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "Secure" in cookie
    with pytest.raises(ValueError, match="SESSION_COOKIE_SAMESITE"):
        make_app(SESSION_COOKIE_SAMESITE="None")


def test_logout_ends_the_session_on_the_server(admin, app):
    stolen = admin.get_cookie("facegate_session").value
    r = admin.post("/logout", data={"csrf_token": csrf(admin, "/people")})
    assert r.headers["Location"] == "/login"
    assert admin.get("/people").status_code == 302
    thief = app.test_client()
    thief.set_cookie("facegate_session", stolen)                   # replaying the old cookie does not work
    assert thief.get("/people").status_code == 302


def test_session_idle_timeout(make_app):
    clock = Clock()
    app = make_app(CLOCK=clock, SESSION_IDLE_S=600)
    c = app.test_client()
    set_up_admin(app, c)
    clock.t += 500
    assert c.get("/people").status_code == 200
    clock.t += 601
    assert c.get("/people").status_code == 302


def test_login_redirects_only_inside_the_site(app):
    set_up_admin(app, app.test_client())
    c = app.test_client()
    for target, expected in [("/events?event=deny", "/events?event=deny"), ("//evil.example/x", "/people"),
                             ("https://evil.example/", "/people"), ("/\\evil.example", "/people")]:
        r = c.post("/login?" + "next=" + target.replace("?", "%3F").replace("&", "%26"),
                   data={"csrf_token": csrf(c), "username": "admin", "password": PASSWORD})
        assert r.headers["Location"] == expected
        c.post("/logout", data={"csrf_token": csrf(c, "/people")})


def test_login_throttle_backs_off_per_address_and_survives_restart(make_app):
    clock = Clock()
    app = make_app(CLOCK=clock)
    set_up_admin(app, app.test_client())
    c = app.test_client()
    for i in range(4):
        assert login(c, "admin", f"wrong {i}").status_code == 401
    r = login(c, "admin", "wrong 4")
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    r = login(c, "admin", PASSWORD)                           # even the right password waits
    assert r.status_code == 429 and "Try again in 30 seconds" in r.get_data(as_text=True)
    # a restart (new app on the same data home) keeps the counters: they live in admin.db
    app2 = make_app(CLOCK=clock)
    c2 = app2.test_client()
    assert login(c2, "admin", PASSWORD).status_code == 429
    # per user, from anywhere: slowed down (a second after 5 failures), not locked like the guessing address
    other = client_from(app2, "10.0.0.9")
    r = login(other, "ADMIN", PASSWORD)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    clock.t += 31
    r = login(c2, "admin", "wrong again")                     # back-off doubles
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    clock.t += 61
    assert login(c2, "admin", PASSWORD).headers["Location"] == "/people"
    # per address: one address guessing many usernames is locked as well
    guesser = client_from(app2, "10.0.0.66")
    codes = [login(guesser, f"user{i}", "x" * 12).status_code for i in range(6)]
    assert codes[:4] == [401] * 4 and codes[4:] == [429, 429]
    assert login(client_from(app2, "10.0.0.7")).headers["Location"] == "/people"


def test_change_password_logs_out_other_sessions(admin, app):
    other = app.test_client()
    assert login(other).headers["Location"] == "/people"
    t = csrf(admin, "/account/password")
    r = admin.post("/account/password", data={"csrf_token": t, "current": "nope", "password": "x" * 12,
                                              "confirm": "x" * 12})
    assert r.status_code == 403
    r = admin.post("/account/password", data={"csrf_token": t, "current": PASSWORD, "password": "new password 1",
                                              "confirm": "new password 2"})
    assert r.status_code == 400 and "differ" in r.get_data(as_text=True)
    r = admin.post("/account/password", data={"csrf_token": t, "current": PASSWORD, "password": "new password 1",
                                              "confirm": "new password 1"})
    assert r.headers["Location"] == "/people"
    assert admin.get("/people").status_code == 200            # this session goes on
    assert other.get("/people").status_code == 302            # the other one is logged out
    assert login(app.test_client(), password=PASSWORD).status_code == 401
    assert login(app.test_client(), password="new password 1").headers["Location"] == "/people"
    db = sqlite3.connect(app.extensions[EXTENSION].admin_db_path)
    assert db.execute("SELECT password_hash FROM admins").fetchone()[0].startswith("scrypt:")


# -- enrollment and people ---------------------------------------------------------------------

def test_enroll_keeps_only_good_photos_and_shows_their_crops(admin, app, powell, data_dir, tmp_path):
    grey = np.full((240, 320, 3), 128, np.uint8)
    cv2.putText(grey, "no face here", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 0), 2)
    good = powell[0].read_bytes()
    r = enroll(admin, "Colin Powell", photo(powell[0]), photo(powell[1]),
               (io.BytesIO(b"just some notes, not a photo"), "notes.jpg"),
               (io.BytesIO(jpeg(grey)), "wall.jpg"),
               photo(data_dir / "faceapi_bbt_scenes/bbt1.jpg", "group.jpg"),
               (io.BytesIO(good[: len(good) // 2]), "cut.jpg"),
               (io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (100000).to_bytes(4, "big") * 2 + b"\x08\x02"
                           + b"\x00" * 40), "bomb.png"),
               (io.BytesIO(jpeg(cv2.resize(cv2.imread(str(powell[2])), (60, 60)))), "tiny.jpg"))
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    verdicts = re.findall(r'<li class="(ok|bad)">.*?<strong>(.*?)</strong><br>\s*(.*?)\s*</div>', html, re.S)
    got = {name: (cls, re.sub(r"<[^>]+>", "", text).strip()) for cls, name, text in verdicts}
    assert got[powell[0].name][0] == got[powell[1].name][0] == "ok"
    assert "not a readable image" in got["notes.jpg"][1]
    assert "no face found" in got["wall.jpg"][1]
    assert re.search(r"\d+ faces found", got["group.jpg"][1])
    assert "truncated" in got["cut.jpg"][1] or "not a readable image" in got["cut.jpg"][1]
    assert "decompression bomb" in got["bomb.png"][1]
    assert "too small" in got["tiny.jpg"][1] or "no face found" in got["tiny.jpg"][1]
    assert all(cls == "bad" for n, (cls, _) in got.items() if n not in (powell[0].name, powell[1].name))
    assert html.count('src="data:image/jpeg;base64,') == 2                       # the kept aligned crops
    p = people(app)["Colin Powell"]
    assert (p.templates, p.images) == (2, 2)
    # nothing usable: 422 and nothing stored; the file name is only a label, never a path
    r = enroll(admin, "Nobody", (io.BytesIO(b"<html>"), "../../etc/passwd"))
    assert r.status_code == 422 and "Nothing stored" in r.get_data(as_text=True)
    assert "Nobody" not in people(app) and not (tmp_path / "etc").exists()
    r = enroll(admin, "   ", photo(powell[0]))
    assert r.status_code == 400 and "name is empty" in r.get_data(as_text=True)
    r = admin.post("/enroll", data={"csrf_token": csrf(admin, "/enroll"), "name": "X"})
    assert r.status_code == 400 and "at least one photo" in r.get_data(as_text=True)


def test_enroll_refuses_a_face_already_enrolled_as_someone_else_unless_forced(admin, app, powell):
    assert enroll(admin, "Colin Powell", photo(powell[0])).status_code == 200
    r = enroll(admin, "Mr Lookalike", photo(powell[1]))
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "already enrolled as Colin Powell" in html
    assert set(people(app)) == {"Colin Powell"}
    assert 'name="force"' in html                                     # the page offers the override
    assert enroll(admin, "Mr Lookalike", photo(powell[1]), force=True).status_code == 200
    assert set(people(app)) == {"Colin Powell", "Mr Lookalike"}
    # the API: refused with the reason, then accepted with force=true
    h, c = api_token(app), app.test_client()
    r = c.post("/api/v1/enroll", headers=h, content_type="multipart/form-data",
               data={"name": "Another", "photos": [photo(powell[2])]})
    assert r.status_code == 422 and "already enrolled as" in r.json["photos"][0]["reason"]
    r = c.post("/api/v1/enroll", headers=h, content_type="multipart/form-data",
               data={"name": "Another", "photos": [photo(powell[2])], "force": "true"})
    assert r.status_code == 201


def test_enroll_page_offers_the_webcam_burst_and_its_check_stores_and_logs_nothing(admin, app, powell, caplog):
    html = admin.get("/enroll").get_data(as_text=True)
    assert 'data-shots="5"' in html and 'data-min-good="3"' in html and "Take a burst of pictures" in html
    assert re.search(r'id="cam-prompt"[^>]*aria-live=', html)            # the burst's prompts are announced
    why = re.sub(r"\s+", " ", re.search(r'id="why-several">(.*?)</p>', html, re.S).group(1))
    assert "strict threshold so that strangers are not let in" in why and "best-matching one counts" in why
    # each frame of a burst is checked on its own: a verdict (and the aligned crop) but no template, no audit
    # row, no log line
    grey = np.full((240, 320, 3), 128, np.uint8)
    token = csrf(admin, "/enroll")
    with Store(app.extensions[EXTENSION].store_path) as s:
        audit = s.audit()
    with caplog.at_level("DEBUG"):
        verdicts = [admin.post("/enroll/check", data={"photo": f}, content_type="multipart/form-data",
                               headers={"X-CSRF-Token": token}).json
                    for f in (photo(powell[0], "webcam-1-straight.jpg"), (io.BytesIO(jpeg(grey)), "webcam-2-left.jpg"))]
    assert verdicts[0]["ok"] and verdicts[0]["crop"].startswith("data:image/jpeg;base64,")
    assert not verdicts[1]["ok"] and "no face found" in verdicts[1]["reason"] and verdicts[1]["crop"] is None
    assert people(app) == {} and caplog.records == []
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert s.audit() == audit


def test_upload_size_limit(make_app):
    app = make_app(MAX_CONTENT_LENGTH=256 * 1024)
    c = app.test_client()
    set_up_admin(app, c)
    r = c.post("/enroll", data={"csrf_token": csrf(c, "/enroll"), "name": "Big",
                                "photos": [(io.BytesIO(b"\xff\xd8\xff" + b"0" * 400_000), "big.jpg")]},
               content_type="multipart/form-data")
    assert r.status_code == 413 and "larger than the 256 KB limit" in r.get_data(as_text=True)
    assert "Big" not in people(app)


def test_people_list_search_rename_and_delete_removes_everything(admin, app, powell, data_dir):
    enroll(admin, "Colin Powell", photo(powell[0]), photo(powell[1]))
    enroll(admin, "Aaron Eckhart", photo(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"))
    page = admin.get("/people").get_data(as_text=True)
    assert "Colin Powell" in page and "Aaron Eckhart" in page and "never" in page
    found = admin.get("/people?q=powell").get_data(as_text=True)
    assert "Colin Powell" in found and "Aaron Eckhart" not in found
    pid = people(app)["Colin Powell"].id
    show = admin.get(f"/people/{pid}").get_data(as_text=True)
    assert show.count(f"/people/{pid}/images/") == 2
    img = admin.get(f"/people/{pid}/images/0.jpg")
    assert img.status_code == 200 and img.data[:3] == b"\xff\xd8\xff" and img.headers["Content-Type"] == "image/jpeg"
    assert admin.get(f"/people/{pid}/images/7.jpg").status_code == 404
    t = csrf(admin, "/people")
    r = admin.post(f"/people/{pid}/rename", data={"csrf_token": t, "name": "Aaron Eckhart"}, follow_redirects=True)
    assert "already enrolled" in r.get_data(as_text=True)
    admin.post(f"/people/{pid}/rename", data={"csrf_token": t, "name": "General Powell"})
    assert "General Powell" in people(app)
    confirm = admin.get(f"/people/{pid}/delete")
    assert confirm.status_code == 200 and "2 templates" in confirm.get_data(as_text=True)
    assert admin.post(f"/people/{pid}/delete", data={"csrf_token": t}).status_code == 200   # not confirmed
    assert "General Powell" in people(app)
    r = admin.post(f"/people/{pid}/delete", data={"csrf_token": t, "confirm": "yes"})
    assert r.headers["Location"] == "/people"
    assert "General Powell" not in people(app)
    db = sqlite3.connect(app.extensions[EXTENSION].store_path)
    for table in ("templates", "images"):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE person_id = ?", (pid,)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM people WHERE id = ?", (pid,)).fetchone()[0] == 0
    events = [(e, p, json.loads(d)) for e, p, d in db.execute("SELECT event, person_name, details FROM audit "
                                                                "ORDER BY id")]
    assert [(p, d["templates"], d["images"]) for e, p, d in events if e == "delete"] == [(None, 2, 2)]
    assert any(e == "admin_action" and p is None and d["action"] == "delete" and d["by"] == "admin"
               for e, p, d in events)
    assert "General Powell" not in json.dumps(events, ensure_ascii=False)      # erased from every audit row
    assert admin.get(f"/people/{pid}").status_code == 404
    assert admin.get(f"/people/{pid}/images/0.jpg").status_code == 404


def test_test_photo_shows_match_score_and_threshold(admin, app, powell, data_dir):
    enroll(admin, "Colin Powell", photo(powell[0]), photo(powell[1]))
    t = csrf(admin, "/test")
    r = admin.post("/test", data={"csrf_token": t, "photo": photo(powell[3])}, content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    svc = app.extensions[EXTENSION]
    # the door's operating point for the 2 templates enrolled, not the bundle's 1:1 threshold
    threshold = operating_point(svc.bundle.score_model, 2, svc.config.recognition.false_open_rate).threshold
    assert threshold != svc.bundle.threshold
    assert f"{threshold:.3f}" in html and 'class="match-name">Colin Powell' in html
    assert max(float(s) for s in re.findall(r'class="score">([-\d.]+)', html)) > threshold
    eckhart = photo(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
    r = admin.post("/test", data={"csrf_token": t, "photo": eckhart}, content_type="multipart/form-data")
    assert "unknown" in r.get_data(as_text=True) and "match-name" not in r.get_data(as_text=True)
    r = admin.post("/test", data={"csrf_token": t, "photo": (io.BytesIO(b"definitely not a photo"), "x.gif")},
                   content_type="multipart/form-data")
    assert r.status_code == 400 and "not a readable image" in r.get_data(as_text=True)


# -- events, settings ----------------------------------------------------------------------------

def test_events_filter_and_csv_export(admin, app, powell):
    enroll(admin, "Colin Powell", photo(powell[0]))
    with Store(app.extensions[EXTENSION].store_path, clock=lambda: 1_000_000.0) as s:
        s.log("door_open", "Colin Powell", score=0.71, votes=3)
        s.log("deny", None, reason="unknown face", score=0.2)
        s.log("door_open", "=HYPERLINK(\"http://x\")", score=0.9, votes=3)
    opened = 'badge ok">door_open'
    page = admin.get("/events?event=door_open").get_data(as_text=True)
    assert page.count(opened) == 2 and "unknown face" not in page
    page = admin.get("/events?person=Colin+Powell&event=door_open").get_data(as_text=True)
    assert "0.71" in page and "HYPERLINK" not in page and "/images/0.jpg" in page      # thumbnail kept
    assert admin.get("/events?since=1000001").get_data(as_text=True).count(opened) == 0
    assert admin.get("/events?until=1000001").get_data(as_text=True).count(opened) == 2
    assert admin.get("/events?since=1970-01-12T12:00&until=2999-01-01T00:00").status_code == 200
    assert admin.get("/events?since=yesterday").status_code == 400
    r = admin.get("/events.csv?event=door_open")
    assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    rows = list(__import__("csv").reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == ["id", "time", "event", "person", "details"] and len(rows) == 3
    assert {row[3] for row in rows[1:]} == {"Colin Powell", "'=HYPERLINK(\"http://x\")"}   # no formula
    powell_row = next(row for row in rows if row[3] == "Colin Powell")
    assert json.loads(powell_row[4]) == {"score": 0.71, "votes": 3} and powell_row[1].startswith("1970-01-1")


def test_settings_show_bundle_thresholds_and_camera(make_app, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[camera]\nsource = "rtsp://door-cam.local/stream"\n'
                                      '[recognition]\nthreshold = 0.4\n')
    app = make_app()
    c = app.test_client()
    set_up_admin(app, c)
    html = c.get("/settings").get_data(as_text=True)
    b = app.extensions[EXTENSION].bundle
    assert b.id in html and "rtsp://door-cam.local/stream" in html
    assert "0.400" in html and "config [recognition] threshold" in html and f"{b.threshold:.3f}" in html
    assert "sface" in html and "Apache-2.0" in html


# -- API ------------------------------------------------------------------------------------------

def test_api_tokens_are_shown_once_stored_hashed_and_revocable(admin, app):
    r = admin.post("/tokens", data={"csrf_token": csrf(admin, "/tokens"), "name": "door panel"})
    token = re.search(r'id="new-token" value="([^"]+)"', r.get_data(as_text=True)).group(1)
    assert token.startswith("fgt_") and len(token) > 40
    assert token not in admin.get("/tokens").get_data(as_text=True)         # shown once only
    raw = app.extensions[EXTENSION].admin_db_path.read_bytes()
    assert token.encode() not in raw
    api = app.test_client()
    assert api.get("/api/v1/people").status_code == 401
    assert api.get("/api/v1/people", headers={"Authorization": "Bearer fgt_wrong"}).status_code == 401
    ok = api.get("/api/v1/people", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json == {"people": []}
    assert "never" not in admin.get("/tokens").get_data(as_text=True).split("door panel")[1].split("</tr>")[0]
    # the API never takes the session cookie
    assert admin.get("/api/v1/people").status_code == 401
    tid = re.search(r'/tokens/(\d+)/revoke', admin.get("/tokens").get_data(as_text=True)).group(1)
    admin.post(f"/tokens/{tid}/revoke", data={"csrf_token": csrf(admin, "/tokens")})
    r = api.get("/api/v1/people", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json["error"]


def test_api_people_enroll_identify_events(app, powell, data_dir):
    h = api_token(app)
    c = app.test_client()
    r = c.post("/api/v1/enroll", headers=h, content_type="multipart/form-data",
               data={"name": "Colin Powell", "photos": [photo(powell[0]), photo(powell[1]),
                                                         photo(data_dir / "faceapi_bbt_scenes/bbt1.jpg")]})
    assert r.status_code == 201, r.json
    assert r.json["person"]["templates"] == 2 and [p["ok"] for p in r.json["photos"]] == [True, True, False]
    assert "faces found" in r.json["photos"][2]["reason"]
    pid = r.json["person"]["id"]
    r = c.post("/api/v1/enroll", headers=h, content_type="multipart/form-data",
               data={"name": "Nobody", "photos": [(io.BytesIO(b"nope"), "a.jpg")]})
    assert r.status_code == 422 and r.json["photos"][0]["ok"] is False
    assert c.post("/api/v1/enroll", headers=h, data={"name": "X"}).status_code == 400
    r = c.post("/api/v1/identify", headers=h, content_type="multipart/form-data", data={"photo": photo(powell[3])})
    faces = [f for f in r.json["faces"] if f["person"] == "Colin Powell"]
    assert faces and faces[0]["score"] > r.json["threshold"] and r.json["metric"] == "cosine"
    assert c.post("/api/v1/identify", headers=h, content_type="multipart/form-data",
                  data={"photo": (io.BytesIO(b"nope"), "a.jpg")}).status_code == 422
    assert c.get("/api/v1/people?q=colin", headers=h).json["people"][0]["id"] == pid
    assert c.get(f"/api/v1/people/{pid}", headers=h).json["images"] == 2
    assert c.get("/api/v1/people/999", headers=h).status_code == 404
    r = c.patch(f"/api/v1/people/{pid}", headers=h, json={"name": "General Powell"})
    assert r.status_code == 200 and r.json["name"] == "General Powell"
    assert c.patch(f"/api/v1/people/{pid}", headers=h, json={"name": ""}).status_code == 400
    assert c.patch(f"/api/v1/people/{pid}", headers=h, data="x").status_code == 400
    r = c.post("/api/v1/enroll", headers=h, content_type="multipart/form-data",
               data={"name": "Aaron Eckhart", "photos": [photo(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")]})
    assert c.patch(f"/api/v1/people/{pid}", headers=h, json={"name": "Aaron Eckhart"}).status_code == 409
    r = c.delete(f"/api/v1/people/{pid}", headers=h)
    assert r.status_code == 200 and r.json["deleted"]["templates"] == 2
    assert c.delete(f"/api/v1/people/{pid}", headers=h).status_code == 404
    ev = c.get("/api/v1/events?event=delete", headers=h).json["events"]
    assert ev[0]["person"] is None and ev[0]["details"]["templates"] == 2 and ev[0]["details"]["images"] == 2
    assert "General Powell" not in json.dumps(c.get("/api/v1/events?limit=500", headers=h).json)   # name erased
    actions = c.get("/api/v1/events?event=admin_action&limit=50", headers=h).json["events"]
    assert {a["details"]["by"] for a in actions} == {"api:tests"}
    assert c.get("/api/v1/events?limit=0", headers=h).status_code == 400
    assert c.get("/api/v1/nothing", headers=h).json["error"]


def test_openapi_spec_is_valid_and_matches_the_routes(app):
    spec = app.test_client().get("/api/v1/openapi.json").json
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        validate(spec)
    prefix = spec["servers"][0]["url"]
    routes = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule), m) for r in app.url_map.iter_rules()
              if r.endpoint.startswith("api.") for m in r.methods - {"HEAD", "OPTIONS"}}
    documented = {(prefix + path, m.upper()) for path, item in spec["paths"].items()
                  for m in item if m in ("get", "post", "put", "patch", "delete")}
    assert documented == routes, (documented ^ routes)
    if validate is None:
        pytest.skip("openapi-spec-validator is not installed: routes checked, spec not validated")


# -- concurrency, CLI ---------------------------------------------------------------------------

def test_runtime_writes_while_the_app_enrolls(admin, app, powell):
    """A second Store connection (the door runtime) writes audit rows while the page enrolls: no lock errors."""
    stop, errors, written = threading.Event(), [], []

    def door():
        with Store(app.extensions[EXTENSION].store_path) as s:
            while not stop.is_set():
                try:
                    s.log("deny", None, reason="runtime writer", n=len(written))
                    written.append(1)
                except Exception as e:          # noqa: BLE001 - collected and asserted below
                    errors.append(e)

    t = threading.Thread(target=door)
    t.start()
    try:
        for i in range(3):
            # one man's photos under three names (force: the lookalike check is not what is tested here)
            r = enroll(admin, f"Person {i}", photo(powell[i]), photo(powell[i + 3]), force=True)
            assert r.status_code == 200, r.get_data(as_text=True)
    finally:
        stop.set()
        t.join()
    assert not errors
    assert {n: p.templates for n, p in people(app).items()} == {"Person 0": 2, "Person 1": 2, "Person 2": 2}
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert len(s.audit(limit=100000, event="deny")) == len(written) > 0
        assert len(s.audit(event="enroll")) == 3


def test_cli_admin_init_and_tokens(tmp_path, monkeypatch, capsys):
    from facegate.main import main

    home = str(tmp_path / "home")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin", "init", "--home", home, "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin", "init", "--home", home, "--password-stdin"]) == 1
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["admin", "init", "--home", home, "--password-stdin", "--reset"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["admin", "init", "--home", home, "--password-stdin", "--reset"]) == 0
    capsys.readouterr()
    assert main(["admin", "token", "create", "--home", home, "--name", "backup script"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("fgt_")
    assert main(["admin", "token", "list", "--home", home]) == 0
    listing = capsys.readouterr().out
    assert "backup script" in listing and "active" in listing and token not in listing
    assert main(["admin", "token", "revoke", "--home", home, "1"]) == 0
    assert main(["admin", "token", "revoke", "--home", home, "9"]) == 1
    from facegate.edge_runtime.admin.db import AdminDB
    with AdminDB(tmp_path / "home" / "admin.db") as db:
        assert db.authenticate("admin", "another long password") and not db.authenticate("admin", PASSWORD)
        assert db.token_for(token) is None
    import os
    import stat
    assert stat.S_IMODE(os.stat(tmp_path / "home" / "admin.db").st_mode) == 0o600


def test_reembed_button_moves_stale_templates_to_the_current_bundle(admin, app, powell, data_dir):
    enroll(admin, "Colin Powell", photo(powell[0]), photo(powell[1]))
    enroll(admin, "Aaron Eckhart", photo(data_dir / "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"), keep=False)
    svc = app.extensions[EXTENSION]
    db = sqlite3.connect(svc.store_path)
    with db:
        db.execute("UPDATE templates SET bundle_id = 'an-older-bundle:sface'")   # as after a bundle update
    page = admin.get("/people").get_data(as_text=True)
    assert "Re-embed from kept face crops" in page and "Aaron Eckhart, Colin Powell" in page
    r = admin.post("/people/reembed", data={"csrf_token": csrf(admin, "/people")}, follow_redirects=True)
    text = r.get_data(as_text=True)
    assert "Re-embedded 2 templates of Colin Powell" in text and "Still to re-enroll" in text
    with Store(svc.store_path) as s:
        assert s.stale_templates(svc.bundle.id) == {"Aaron Eckhart": 1}
        assert s.templates(svc.bundle.id).names == ("Colin Powell", "Colin Powell")
        assert len(s.images("Colin Powell")) == 2
    assert admin.post("/people/reembed", data={}).status_code == 400                     # CSRF


def test_fused_bundle_enrolls_shows_its_crops_and_its_fusion(fused_fp32_bundle, tmp_path, powell):
    fused = open_bundle(Config(), fused_fp32_bundle)
    app = create_app({"HOME": tmp_path / "home", "BUNDLE": fused})
    c = app.test_client()
    set_up_admin(app, c)
    assert enroll(c, "Colin Powell", photo(powell[0]), photo(powell[1])).status_code == 200
    p = people(app)["Colin Powell"]
    assert p.templates == 2 and p.images == 2
    crop = c.get(f"/people/{p.id}/images/0.jpg")
    strip = cv2.imdecode(np.frombuffer(crop.data, np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (150, 262, 3)                  # dlib's 150 chip, then SFace's 112 chip
    assert fused.embedder.chips_from_crop(strip[..., ::-1]) is not None
    html = c.get("/settings").get_data(as_text=True)
    assert "sface+dlib_resnet" in html and "lowest open-set FNIR" in html and "fused" in html
    r = c.post("/api/v1/identify", headers=api_token(app), content_type="multipart/form-data",
               data={"photo": photo(powell[2])})
    door_threshold = operating_point(fused.score_model, 2, Config().recognition.false_open_rate).threshold
    assert r.status_code == 200 and r.json["metric"] == "fused" and r.json["threshold"] == door_threshold
    best = max(r.json["faces"], key=lambda f: f["score"] or -1e9)
    assert best["person"] == "Colin Powell" and best["score"] > door_threshold
    with Store(app.extensions[EXTENSION].store_path) as s:
        g = s.templates(fused.id, fused.metric)
    assert g.dim == 256
    r = g.nearest(fused.embedder.embed_sets([fused.embedder.align_all(*_face_of(fused, powell[2]))]),
                  threshold=door_threshold)[0]
    assert r.name == "Colin Powell"


def _face_of(bundle, path):
    from facegate.edge_runtime.face import nearest_to_center
    from facegate.edge_runtime.imageio import load_image

    img = load_image(path)
    return img, nearest_to_center(bundle.detector.detect(img), img.shape[1], img.shape[0])
