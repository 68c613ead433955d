"""Enroll a person from uploaded or webcam photos; every photo gets a verdict, only good ones become templates."""
from __future__ import annotations

import base64

from flask import Blueprint, jsonify, render_template, request

from ..enrollment import (
    EnrollOutcome,
    check_photos,
    enroll_checked,
    liveness_details,
    refuse_attacks,
    refuse_lookalikes,
)
from ..store import StoreError, normalize_name
from .services import audit_action, enrolled_templates, sentence, services, store
from .uploads import UploadError, read_photos

bp = Blueprint("enroll", __name__)

# The webcam burst keeps at most one good frame per pose prompt and at most WEBCAM_SHOTS in all; with fewer
# than WEBCAM_MIN_GOOD the page asks for another burst (at the door's strict threshold a person enrolled
# from one or two frames is more often taken for a stranger).
WEBCAM_SHOTS = 5
WEBCAM_MIN_GOOD = 3


def enroll_photos(name: str, photos: list[tuple[str, bytes]], keep_images: bool = True,
                  force: bool = False, liveness: bool = True) -> EnrollOutcome:
    """Check each (label, bytes) photo and store the good ones for `name` (shared by the page and the API).

    A photo whose face is already enrolled as someone else is refused unless `force` (the admin says they
    are different people who look alike). A photo judged a presentation attack is refused unless not
    `liveness` (a scanned ID photo; recorded in both audit logs). Raises InvalidNameError before any model
    runs; StoreError if the write fails.
    """
    name = normalize_name(name)
    s = services()
    with s.inference():
        rec = s.recognizer(enrolled_templates())
        results = check_photos(rec, photos)
    if liveness:
        results = refuse_attacks(rec, results)
    if not force:
        results = refuse_lookalikes(rec, name, results)
    outcome = enroll_checked(store(), s.bundle, name, results, keep_images=keep_images)
    if outcome.person is not None:
        live = liveness_details(rec, liveness, outcome.kept)
        audit_action("enroll", outcome.person.name, kept=len(outcome.kept), refused=len(outcome.refused), **live)
        if live["liveness"] == "skipped":
            store().log("liveness_skipped", outcome.person.name, photos=len(outcome.kept),
                        by="admin page (scanned ID photo)", **live)
    return outcome


def data_uri(jpeg: bytes | None) -> str | None:
    """A JPEG as a data: URI for an <img> (crops are shown once, not stored as files)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else None


@bp.route("/enroll", methods=["GET", "POST"])
def page():
    name = request.values.get("name", "")
    keep = request.method == "GET" or request.form.get("keep_images") == "on"
    force = request.form.get("force") == "on"
    liveness = request.form.get("no_liveness") != "on"
    webcam = dict(shots=WEBCAM_SHOTS, min_good=WEBCAM_MIN_GOOD)
    if request.method == "GET":
        return render_template("enroll.html", name=name, keep=keep, outcome=None, **webcam)
    try:
        photos = read_photos()
        outcome = enroll_photos(name, photos, keep, force, liveness)
    except (UploadError, StoreError) as e:
        return render_template("enroll.html", name=name, keep=keep, outcome=None, error=sentence(e), **webcam), 400
    status = 200 if outcome.person is not None else 422
    return render_template("enroll.html", name=name, keep=keep, outcome=outcome, data_uri=data_uri,
                           **webcam), status


@bp.route("/enroll/check", methods=["POST"])
def check():
    """One frame of the webcam burst checked, nothing stored or logged: JSON {ok, reason, crop}."""
    try:
        (label, data), = read_photos("photo", max_count=1)
    except UploadError as e:
        return jsonify(ok=False, reason=sentence(e)), 400
    s = services()
    with s.inference():
        rec = s.recognizer()
        r, = refuse_attacks(rec, check_photos(rec, [(label, data)]))
    return jsonify(ok=r.ok, reason=r.reason, crop=data_uri(r.chip_jpeg) if r.ok else None)
