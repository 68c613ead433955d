"""Photos: the photo library's people (photos.db, `facegate photos`) as grids of face thumbnails; rename,
merge, move a face, a person's photos with the face boxes drawn, search by name.

The photo library is not the door: naming a person here enrolls no one. Only the explicit "enroll at the
door" form (a ticked confirmation) does, and it runs the normal enrollment with its checks on the person's
faces cut from their photos. A photo is
served only by its id in photos.db (never by a path from the request), decoded and sent again as a JPEG,
so no other file on the device can be reached. Nothing here writes to the logs.
"""
from __future__ import annotations

import cv2
import numpy as np
from flask import Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, url_for

from ..errors import ImageError
from ..imageio import encode_jpeg
from ..photos import people as pp
from ..photos.db import PhotoDB, PhotoLibraryError, face_thumb, photo_file, photos_path
from ..store import StoreError
from .security import safe_next
from .services import sentence, services

bp = Blueprint("photos", __name__, url_prefix="/photos")

PEOPLE_PER_PAGE = 60
THUMBS_PER_PERSON = 6
FACES_PER_PAGE = 120
PHOTOS_PER_PAGE = 24
SHOWN_SIDE = 1600           # a served photo's longer side at most (pixels)
JPEG_QUALITY = 85


def library() -> PhotoDB | None:
    """photos.db for this request (opened on first use, closed when the request ends); None when the data
    home has no photo library yet (it is never created from here)."""
    if "fg_photos" not in g:
        path = photos_path(services().home)
        g.fg_photos = PhotoDB(path) if path.exists() else None
    return g.fg_photos


@bp.teardown_app_request
def _close(_exc=None) -> None:
    """teardown: close this request's photos.db."""
    db = g.pop("fg_photos", None)
    if db is not None:
        db.close()


def _db() -> PhotoDB:
    """This request's photos.db; 404 when there is no photo library."""
    db = library()
    if db is None:
        abort(404, description="There is no photo library yet: run `facegate photos scan DIR` on the device.")
    return db


def _person_or_404(person_id: int) -> pp.PersonSummary:
    """The person with this id, or a 404."""
    p = pp.person_summary(_db(), person_id)
    if p is None:
        abort(404, description="No such person in the photo library: they may have been merged into someone.")
    return p


def _page() -> int:
    """The 1-based page number from ?page= (1 when missing or not a small positive number)."""
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 and int(raw) > 0 else 1


@bp.route("")
def index():
    """The people, a page of them, each with their first face thumbnails; ?q= searches their names."""
    db = library()
    q = request.args.get("q", "").strip()
    if db is None:
        return render_template("photos.html", people=[], thumbs={}, q=q, unsorted=0, page=1, pages=1, missing=True)
    people = pp.list_people(db)
    if q:
        people = [p for p in people if q.casefold() in p.label.casefold()]
    page = _page()
    pages = max(1, -(-len(people) // PEOPLE_PER_PAGE))
    shown = people[(page - 1) * PEOPLE_PER_PAGE:page * PEOPLE_PER_PAGE]
    thumbs = pp.face_ids_by_person(db, [p.id for p in shown], THUMBS_PER_PERSON)
    return render_template("photos.html", people=shown, total=len(people), thumbs=thumbs, q=q,
                           unsorted=pp.count_faces(db, None), page=page, pages=pages, missing=False)


@bp.route("/people/<id:person_id>")
def person(person_id: int):
    """One person: rename, merge, their faces (each with a move form) and their photos with the boxes."""
    db = _db()
    p = _person_or_404(person_id)
    page = _page()
    faces = pp.faces_of(db, person_id, FACES_PER_PAGE, (page - 1) * FACES_PER_PAGE)
    photos = pp.person_photos(db, person_id, PHOTOS_PER_PAGE, (page - 1) * PHOTOS_PER_PAGE)
    pages = max(1, -(-p.faces // FACES_PER_PAGE), -(-p.photos // PHOTOS_PER_PAGE))
    return render_template("photos_person.html", person=p, faces=faces, photos=photos, page=page, pages=pages,
                           everyone=pp.list_people(db))


@bp.route("/unsorted")
def unsorted():
    """The faces in no person, each with its quality problems and a move form."""
    db = _db()
    page = _page()
    total = pp.count_faces(db, None)
    faces = pp.faces_of(db, None, FACES_PER_PAGE, (page - 1) * FACES_PER_PAGE)
    return render_template("photos_unsorted.html", faces=faces, total=total, page=page,
                           pages=max(1, -(-total // FACES_PER_PAGE)), everyone=pp.list_people(db))


@bp.route("/faces/<id:face_id>.jpg")
def thumb(face_id: int):
    """A face's stored JPEG thumbnail."""
    data = face_thumb(_db(), face_id)
    if data is None:
        abort(404, description="No such face.")
    return data, 200, {"Content-Type": "image/jpeg", "Cache-Control": "private, no-store"}


@bp.route("/photo/<id:photo_id>.jpg")
def photo(photo_id: int):
    """A photo of the library by its id, decoded (EXIF orientation applied, as the boxes are) and sent as
    a JPEG of at most SHOWN_SIDE pixels; 404 for an id the library does not hold or a file now gone."""
    from ..photos.scan import decode_photo

    path = photo_file(_db(), photo_id)
    if path is None:
        abort(404, description="No such photo in the library.")
    try:
        with open(path, "rb") as f:
            data = f.read()
        rgb = decode_photo(data, path)
    except (OSError, ImageError):
        abort(404, description="The photo file is gone or can no longer be read; scan its folder again.")
    scale = SHOWN_SIDE / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    return encode_jpeg(rgb, JPEG_QUALITY), 200, {"Content-Type": "image/jpeg", "Cache-Control": "private, no-store"}


def _edit_person(person_id: int, edit) -> Response:
    """Run `edit()` (returns what to tell the user); a PhotoLibraryError is shown as the error instead.
    Back to the person's page either way."""
    try:
        done = edit()
    except PhotoLibraryError as e:
        flash(sentence(e), "error")
    else:
        flash(done)
    return redirect(url_for("photos.person", person_id=person_id))


@bp.route("/people/<id:person_id>/rename", methods=["POST"])
def rename(person_id: int):
    """Name a person in the photo library only (the door is untouched)."""
    p = _person_or_404(person_id)

    def rename_it() -> str:
        pp.name_person(_db(), person_id, request.form.get("name", ""))
        return f"Renamed {p.label} to {pp.person_summary(_db(), person_id).label} in the photo library."
    return _edit_person(person_id, rename_it)


@bp.route("/people/<id:person_id>/merge", methods=["POST"])
def merge(person_id: int):
    """Merge the person named in the form (`other`: id or name) into this one."""
    p = _person_or_404(person_id)

    def merge_in() -> str:
        db = _db()
        other = pp.person_summary(db, pp.find_person(db, request.form.get("other", "")))
        return f"Merged {other.label} into {p.label}: {pp.merge_people(db, person_id, other.id)} faces moved."
    return _edit_person(person_id, merge_in)


@bp.route("/faces/<id:face_id>/move", methods=["POST"])
def move(face_id: int):
    """Put one face into the person in `to` (id or name) or into 'unsorted'; back to `next` (a path here)."""
    db = _db()
    found, was = pp.face_person(db, face_id)
    if not found:
        abort(404, description="No such face.")
    back = url_for("photos.unsorted") if was is None else url_for("photos.person", person_id=was)
    back = safe_next(request.form.get("next"), back)
    try:
        dest = pp.move_face(db, face_id, request.form.get("to", ""))
    except PhotoLibraryError as e:
        flash(sentence(e), "error")
    else:
        where = "unsorted" if dest is None else pp.person_summary(db, dest).label
        flash(f"Moved the face to {where}.")
    return redirect(back)


def _face_crops(db: PhotoDB, person_id: int, limit: int) -> list[tuple[str, bytes]]:
    """(label, JPEG bytes) of up to `limit` of a person's usable faces, each cut from its photo with a wide
    margin (the face about a third of the crop) so the enrollment check sees the face as on a portrait."""
    from ..photos.scan import decode_photo

    out = []
    for fid, path, box in db.read("SELECT f.id, ph.path, f.box FROM faces f JOIN photos ph ON ph.id = f.photo_id "
                                  "WHERE f.person_id = ? AND f.problems = '' AND ph.status = 'ok' ORDER BY f.id "
                                  "LIMIT ?", (int(person_id), int(limit))):
        try:
            with open(path, "rb") as f:
                rgb = decode_photo(f.read(), path)
        except (OSError, ImageError):
            continue
        x1, y1, x2, y2 = (float(v) for v in np.frombuffer(box, "<f4"))
        mx, my = (x2 - x1), (y2 - y1)
        a, b = max(int(x1 - mx), 0), max(int(y1 - my), 0)
        c, d = min(int(x2 + mx) + 1, rgb.shape[1]), min(int(y2 + my) + 1, rgb.shape[0])
        out.append((f"photo face {fid}", encode_jpeg(np.ascontiguousarray(rgb[b:d, a:c]), 95)))
    return out


@bp.route("/people/<id:person_id>/enroll", methods=["POST"])
def enroll_at_door(person_id: int):
    """Enroll a named photo person at the door, only when the admin ticks the confirmation: their usable faces
    go through the normal enrollment (one good face per photo, quality gate, lookalikes refused)."""
    from .enroll import WEBCAM_MIN_GOOD, WEBCAM_SHOTS, data_uri, enroll_photos

    p = _person_or_404(person_id)
    if not p.name:
        flash("Name this person first: the door needs a name.", "error")
        return redirect(url_for("photos.person", person_id=person_id))
    if request.form.get("confirm") != "yes":
        flash(f"Tick the box to let {p.name} in at the door; nothing was enrolled.", "error")
        return redirect(url_for("photos.person", person_id=person_id))
    crops = _face_crops(_db(), person_id, current_app.config["MAX_PHOTOS"])
    try:
        outcome = enroll_photos(p.name, crops)
    except StoreError as e:
        flash(sentence(e), "error")
        return redirect(url_for("photos.person", person_id=person_id))
    return render_template("enroll.html", name=p.name, keep=True, outcome=outcome, data_uri=data_uri,
                           shots=WEBCAM_SHOTS, min_good=WEBCAM_MIN_GOOD), 200 if outcome.person else 422
