"""Liveness on the admin page: the settings say whether it is checked, enrollment refuses attack photos unless
the scanned-ID box is ticked (recorded in the audit log), and the events page lists the door's attacks."""
import dataclasses

import numpy as np
import pytest
from admin_client import csrf, enroll, people, photo

from facegate.edge_runtime.admin import create_app
from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.door.liveness_gate import NO_LIVENESS_MODEL
from facegate.edge_runtime.store import Store


class FixedLiveness:
    """Stands in for the bundle's liveness models: every face gets the same probability of being real."""

    def __init__(self, p):
        self.p = p

    def score_many(self, image_rgb, faces):
        return np.full(len(faces), self.p, np.float32)


@pytest.fixture
def live_admin(tmp_path, admin_bundle):
    """(app, logged-in client) whose bundle judges every face an attack (liveness 0.12)."""
    from admin_client import set_up_admin

    app = create_app({"HOME": tmp_path / "home", "BUNDLE": dataclasses.replace(admin_bundle,
                                                                               liveness=FixedLiveness(0.12))})
    c = app.test_client()
    set_up_admin(app, c)
    return app, c


def test_settings_say_liveness_is_off_without_a_model(admin):
    page = admin.get("/settings").get_data(as_text=True)
    assert NO_LIVENESS_MODEL in page


def test_settings_say_liveness_is_on_with_its_threshold(live_admin):
    _, c = live_admin
    assert "liveness: on (threshold 0.72)" in c.get("/settings").get_data(as_text=True)


def test_an_attack_photo_is_refused_unless_it_is_a_scanned_id(live_admin, powell):
    app, c = live_admin
    r = enroll(c, "Colin Powell", photo(powell[0]))
    assert r.status_code == 422
    assert "presentation attack suspected (liveness 0.12 &lt; 0.72)" in r.get_data(as_text=True)
    assert people(app) == {}
    data = {"csrf_token": csrf(c, "/enroll"), "name": "Colin Powell", "photos": [photo(powell[0])],
            "no_liveness": "on"}
    assert c.post("/enroll", data=data, content_type="multipart/form-data").status_code == 200
    assert people(app)["Colin Powell"].templates == 1
    with Store(app.extensions[EXTENSION].store_path) as s:
        row, = s.audit(event="liveness_skipped")
    assert row.person_name == "Colin Powell"
    assert row.details == {"photos": 1, "by": "admin page (scanned ID photo)", "liveness": "skipped",
                           "liveness_scores": [0.12]}


def test_the_events_page_lists_attacks_with_a_filter(admin, app):
    with Store(app.extensions[EXTENSION].store_path, clock=lambda: 1_000_000.0) as s:
        s.log("attack", "Colin Powell", reason="presentation attack suspected", liveness=0.07, threshold=0.5,
              score=4.2, frames=3)
        s.log("door_open", "Colin Powell", score=5.1, votes=3)
    page = admin.get("/events").get_data(as_text=True)
    assert "Presentation attacks" in page and 'badge bad">attack' in page
    page = admin.get("/events?event=attack").get_data(as_text=True)
    assert 'badge bad">attack' in page and "presentation attack suspected" in page and "0.07" in page
    assert "door_open</span>" not in page


def test_the_person_page_undoes_templates_the_door_added(admin, app, powell, admin_bundle):
    from facegate.edge_runtime.template_update import learn

    assert enroll(admin, "Colin Powell", photo(powell[0])).status_code == 200
    b = admin_bundle
    with Store(app.extensions[EXTENSION].store_path) as s:
        _, vecs, _ = s.person_templates("Colin Powell", b.id)
        pid = s.person("Colin Powell").id
        for k in (1, 2):
            v = vecs[0].copy()
            v[k * 7] += 0.5 * k
            assert learn(s, "Colin Powell", v, b.id, b.embedder.name, b.metric, 5, score=9.0) is not None
    page = admin.get(f"/people/{pid}").get_data(as_text=True)
    assert "Templates added by the door" in page and "2 templates learnt" in page
    token = csrf(admin, f"/people/{pid}")
    r = admin.post(f"/people/{pid}/undo-update", data={"csrf_token": token, "which": "last"}, follow_redirects=True)
    assert "Removed 1 template the door had added to Colin Powell." in r.get_data(as_text=True)
    r = admin.post(f"/people/{pid}/undo-update", data={"csrf_token": token, "which": "all"}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "Removed 1 template the door had added" in page and "Templates added by the door" not in page
    assert people(app)["Colin Powell"].templates == 1
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert len(s.audit(event="template_undone")) == 2
