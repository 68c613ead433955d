"""Crafted URLs on the admin page answer 404/400, never 500: numeric ids beyond what SQLite (or Python) can
take, and query arguments that url_for would read as its own (_method, _external, _anchor, _scheme)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from admin_client import api_token, csrf
from werkzeug.routing import IntegerConverter

from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.store import Store

HUGE = "99999999999999999999999"                 # > 2**63 - 1: SQLite cannot bind it
INT64_MAX = 2 ** 63 - 1
LARGEST_ID = 10 ** 18 - 1                        # the largest id a URL may carry (18 digits)


def _add_person(app, name: str = "Zoe") -> int:
    with Store(app.extensions[EXTENSION].store_path) as s:
        return s.enroll(name, np.ones((1, 4), np.float32), "another-bundle:sface", "sface").id


def _people(app) -> list[str]:
    with Store(app.extensions[EXTENSION].store_path) as s:
        return [p.name for p in s.people()]


# -- 1. crafted URLs ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", [HUGE, str(INT64_MAX + 1), str(INT64_MAX), str(LARGEST_ID + 1), "9" * 5000,
                                    "-1", "\u0663"])   # \u0663: Arabic-Indic 3
def test_out_of_range_ids_are_404_on_every_id_route(admin, app, bad_id):
    pid = _add_person(app)
    t, api = csrf(admin, "/people"), api_token(app)
    pages = [("GET", f"/people/{bad_id}"), ("GET", f"/people/{bad_id}/images/0.jpg"),
             ("GET", f"/people/{pid}/images/{bad_id}.jpg"), ("GET", f"/people/{bad_id}/delete"),
             ("POST", f"/people/{bad_id}/rename"), ("POST", f"/people/{bad_id}/delete"),
             ("POST", f"/tokens/{bad_id}/revoke")]
    for method, url in pages:
        r = admin.open(url, method=method, data={"csrf_token": t, "name": "X", "confirm": "yes"})
        assert r.status_code == 404, (method, url, r.status_code)
    for method in ("GET", "PATCH", "DELETE"):
        r = app.test_client().open(f"/api/v1/people/{bad_id}", method=method, headers=api, json={"name": "X"})
        assert r.status_code == 404 and r.is_json and r.json["error"], (method, r.status_code)
    assert _people(app) == ["Zoe"]


def test_the_largest_id_is_a_plain_not_found(admin, app):
    assert admin.get(f"/people/{LARGEST_ID}").status_code == 404
    r = admin.post(f"/tokens/{LARGEST_ID}/revoke", data={"csrf_token": csrf(admin, "/tokens")}, follow_redirects=True)
    assert r.status_code == 200 and f"No API token with id {LARGEST_ID}" in r.get_data(as_text=True)
    r = app.test_client().get(f"/api/v1/people/{LARGEST_ID}", headers=api_token(app))
    assert r.status_code == 404 and str(LARGEST_ID) in r.json["error"]


def test_no_route_takes_an_unbounded_integer(app):
    """Every numeric URL part goes through the bounded id converter (one place, registered in create_app)."""
    kinds = [type(conv) for r in app.url_map.iter_rules() for conv in r._converters.values()]
    assert IntegerConverter not in kinds
    assert sum(issubclass(k, IntegerConverter) for k in kinds) >= 9      # person, image index, token ids


def _export_link(html: str) -> str:
    return re.search(r'href="([^"]*)"[^>]*download', html).group(1).replace("&amp;", "&")


def test_events_query_arguments_never_reach_url_building(admin):
    for query in ["_method=POST", "_external=1", "_anchor=x", "_scheme=javascript", "_external=1&_scheme=https"]:
        r = admin.get(f"/events?{query}")
        assert r.status_code == 200, (query, r.status_code)
        link = _export_link(r.get_data(as_text=True))
        assert link == "/events.csv", (query, link)
    r = admin.get("/events?event=deny&person=Zo%C3%AB&limit=50&since=1000&junk=1&_anchor=top")
    link = urlsplit(_export_link(r.get_data(as_text=True)))
    assert link.path == "/events.csv" and not link.fragment
    assert parse_qs(link.query) == {"event": ["deny"], "person": ["Zoë"], "limit": ["50"], "since": ["1000"]}


@pytest.mark.parametrize("since", ["1e20", "-1e20", "nan", "inf", "0001-01-01"])
def test_events_times_out_of_range_are_400(admin, since):
    for url in ("/events", "/events.csv"):
        r = admin.get(f"{url}?since={since}")
        assert r.status_code == 400 and "since" in r.get_data(as_text=True), (url, since, r.status_code)
