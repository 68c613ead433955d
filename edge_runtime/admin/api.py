"""The JSON API under /api/v1, for scripts and other devices. Documented in openapi.json (served here).

Authentication: `Authorization: Bearer <token>` with a token an administrator created on the
Tokens page (or with `facegate admin token create`). Cookies are never accepted here, so the API
needs no CSRF token. Errors are JSON: {"error": "<what went wrong and what to do>"}.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from flask import Blueprint, Response, abort, g, jsonify, request

from ..errors import ImageError
from ..store import DuplicateNameError, InvalidNameError, Person
from .enroll import enroll_photos
from .events import FilterError, parse_filter, query, row_json
from .identify import identify_photo
from .security import API_PREFIX
from .services import admin_db, audit_action, person_name, store
from .uploads import UploadError, read_photos

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)

SPEC_FILE = Path(__file__).with_name("openapi.json")


def error(status: int, message: str, **headers) -> Response:
    resp = jsonify(error=message)
    resp.status_code = status
    resp.headers.update(headers)
    return resp


@bp.before_request
def authenticate():
    """Every API route but the spec needs a valid, unrevoked Bearer token."""
    g.api_token = None
    if request.endpoint == "api.openapi":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="facegate"'}
    if scheme.lower() != "bearer" or not token.strip():
        return error(401, "missing API token: send 'Authorization: Bearer <token>' (create one on the "
                          "admin page's API tokens page)", **challenge)
    g.api_token = admin_db().token_for(token.strip())
    if g.api_token is None:
        return error(401, "invalid or revoked API token; create a new one on the admin page's API tokens page",
                     **{"WWW-Authenticate": 'Bearer realm="facegate", error="invalid_token"'})
    return None


def person_json(p: Person) -> dict:
    return asdict(p)


def _person(person_id: int) -> Person:
    name = person_name(person_id)
    if name is None:
        abort(error(404, f"no person with id {person_id}; list them with GET /api/v1/people"))
    return store().person(name)


@bp.route("/openapi.json")
def openapi():
    return Response(SPEC_FILE.read_text(encoding="utf-8"), mimetype="application/json")


@bp.route("/people")
def people():
    q = request.args.get("q", "").strip().casefold()
    return jsonify(people=[person_json(p) for p in store().people() if q in p.name.casefold()])


@bp.route("/people/<id:person_id>")
def person(person_id: int):
    return jsonify(person_json(_person(person_id)))


@bp.route("/people/<id:person_id>", methods=["PATCH"])
def rename(person_id: int):
    old = _person(person_id).name
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return error(400, 'send a JSON object {"name": "<new name>"} with Content-Type: application/json')
    try:
        p = store().rename(old, body["name"])
    except InvalidNameError as e:
        return error(400, str(e))
    except DuplicateNameError as e:
        return error(409, str(e))
    audit_action("rename", p.name, previous=old)
    return jsonify(person_json(p))


@bp.route("/people/<id:person_id>", methods=["DELETE"])
def delete(person_id: int):
    p = store().delete(_person(person_id).name)
    audit_action("delete", None, templates=p.templates, images=p.images)    # erased: the row names nobody
    return jsonify(deleted=person_json(p))


@bp.route("/enroll", methods=["POST"])
def enroll():
    keep = request.form.get("keep_images", "true").lower() not in ("false", "0", "no")
    force = request.form.get("force", "false").lower() in ("true", "1", "yes")
    try:
        liveness = request.form.get("no_liveness", "false").lower() not in ("true", "1", "yes")
        outcome = enroll_photos(request.form.get("name", ""), read_photos(), keep, force, liveness)
    except InvalidNameError as e:
        return error(400, str(e))
    except UploadError as e:
        return error(400, f"{e} (multipart field 'photos', repeatable)")
    photos = [{"file": r.source, "ok": r.ok, "reason": r.reason or None} for r in outcome.results]
    if outcome.person is None:
        return jsonify(error="no usable photo; nothing was stored", photos=photos), 422
    return jsonify(person=person_json(outcome.person), photos=photos), 201


@bp.route("/identify", methods=["POST"])
def identify():
    try:
        (label, data), = read_photos("photo", max_count=1)
        result = identify_photo(label, data)
    except UploadError as e:
        return error(400, f"{e} (multipart field 'photo')")
    except ImageError as e:
        return error(422, str(e))
    for f in result["faces"]:
        f.pop("crop")
    return jsonify(result)


@bp.route("/events")
def events():
    try:
        f = parse_filter(request.args)
    except FilterError as e:
        return error(400, str(e))
    return jsonify(events=[row_json(r) for r in query(f)])
