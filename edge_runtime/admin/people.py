"""People: list and search, one person's page with their kept face crops, rename, delete."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..store import StoreError
from .services import audit_action, person_name, sentence, services, store

bp = Blueprint("people", __name__)


def _name_or_404(person_id: int) -> str:
    name = person_name(person_id)
    if name is None:
        abort(404, description="No such person: they may have been deleted.")
    return name


@bp.route("/")
def home():
    return redirect(url_for("people.index"))


@bp.route("/people")
def index():
    q = request.args.get("q", "").strip()
    people = store().people()
    if q:
        people = [p for p in people if q.casefold() in p.name.casefold()]
    b = services().bundle
    stale = store().stale_templates(b.id)
    return render_template("people.html", people=people, q=q, stale=stale)


@bp.route("/people/reembed", methods=["POST"])
def reembed():
    """Move templates made by another model bundle to the current one from the kept face crops."""
    from ..enrollment import reembed_kept

    s = services()
    with s.inference():
        out = reembed_kept(store(), s.bundle)
    if out.done:
        flash(f"Re-embedded {sum(out.done.values())} templates of {', '.join(sorted(out.done))} "
              f"with the current model bundle.")
    if out.left:
        flash(f"Still to re-enroll (no kept face crop, or made by another embedder): "
              f"{', '.join(sorted(out.left))}.", "error")
    if not out.done and not out.left:
        flash("Every template already belongs to the current model bundle.")
    return redirect(url_for("people.index"))


@bp.route("/people/<id:person_id>")
def show(person_id: int):
    person = store().person(_name_or_404(person_id))
    bundle_id = services().bundle.id
    stale = store().stale_templates(bundle_id).get(person.name, 0)
    learnt = [t for t in store().person_templates(person.name, bundle_id)[2] if t is not None]
    return render_template("person.html", person=person, stale=stale, learnt=learnt)


@bp.route("/people/<id:person_id>/undo-update", methods=["POST"])
def undo_update(person_id: int):
    """Remove the templates the door added to this person (templates that age): the last one, or all (which=all)."""
    name = _name_or_404(person_id)
    try:
        ids = store().undo_auto_templates(name, all_of_them=request.form.get("which") == "all")
    except StoreError as e:
        flash(sentence(e), "error")
    else:
        if ids:
            audit_action("template_undone", name, templates=len(ids))
        flash(f"Removed {len(ids)} template{'' if len(ids) == 1 else 's'} the door had added to {name}." if ids
              else f"The door has added no template to {name}.")
    return redirect(url_for("people.show", person_id=person_id))


@bp.route("/people/<id:person_id>/images/<id:index>.jpg")
def image(person_id: int, index: int):
    images = store().images(_name_or_404(person_id))
    if not 0 <= index < len(images):
        abort(404, description="No such image.")
    return images[index], 200, {"Content-Type": "image/jpeg", "Cache-Control": "private, no-store"}


@bp.route("/people/<id:person_id>/rename", methods=["POST"])
def rename(person_id: int):
    old = _name_or_404(person_id)
    try:
        p = store().rename(old, request.form.get("name", ""))
    except StoreError as e:
        flash(sentence(e), "error")
    else:
        audit_action("rename", p.name, previous=old)
        flash(f"Renamed {old} to {p.name}.")
    return redirect(url_for("people.show", person_id=person_id))


@bp.route("/people/<id:person_id>/delete", methods=["GET", "POST"])
def delete(person_id: int):
    """GET asks for confirmation; POST (with confirm=yes) deletes every template and image."""
    name = _name_or_404(person_id)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("confirm_delete.html", person=store().person(name))
    p = store().delete(name)
    audit_action("delete", None, templates=p.templates, images=p.images)    # erased: the row names nobody
    flash(f"Deleted {p.name}: {p.templates} templates and {p.images} images removed.")
    return redirect(url_for("people.index"))
