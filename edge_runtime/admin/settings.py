"""Settings (read-only): the model bundle in use and its accuracy report, the runtime config, the camera;
and API tokens, which administrators create (shown once) and revoke here."""
from __future__ import annotations

import json

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from ..door.liveness_gate import liveness_line
from ..fusion import metric_label
from .db import AdminDBError
from .services import admin_db, audit_action, enrolled_templates, sentence, services, store

bp = Blueprint("settings", __name__)


def bundle_summary() -> dict:
    """What the settings page and the API show about the bundle in use."""
    s = services()
    b, raw = s.bundle, s.bundle.manifest.raw
    e = b.embedder_entry
    rec = s.recognizer(enrolled_templates())
    return {"id": b.id, "manifest_id": b.manifest.id, "path": str(b.path), "created": raw.get("created"),
            "embedder": e.name, "precision": e.precision, "metric": metric_label(rec.metric),
            "bundle_threshold": e.threshold, "threshold": rec.threshold,
            "threshold_from": "config [recognition] threshold" if s.config.recognition.threshold is not None
            else f"[recognition] false_open_rate = {s.config.recognition.false_open_rate:g} and the templates enrolled",
            "operating_point": rec.operating.to_json(),
            "target_far": e.target_far, "achieved_far": e.achieved_far,
            "detector": raw.get("detector", {}).get("name"), "detector_precision": b.manifest.detector_precision,
            "reports": {"detector": raw.get("detector", {}).get("report") or {},
                        **{n: v.get("report") or {} for n, v in raw.get("embedders", {}).items()},
                        **({b.manifest.fusion.name: _fusion_summary(raw["fusion"])} if b.manifest.fusion else {}),
                        "notes": raw.get("notes") or {}},
            "licences": raw.get("licences") or {},
            "liveness": liveness_line(rec.liveness_on, s.config.liveness.threshold, b.liveness is not None)}


def _fusion_summary(entry: dict) -> dict:
    """The fusion's parameters and the numbers the default embedder was chosen by (not every table)."""
    r = entry.get("report") or {}
    return {k: entry.get(k) for k in ("parts", "weights", "means", "stds", "threshold")} | {
        "decision": r.get("decision"), "openset_heldout_fnir_at_fpir_0.01": r.get("openset_heldout_fnir_at_fpir_0.01"),
        "latency_ms_2t": r.get("latency_ms_2t"),
        "lfw_accuracy": {v: d.get("fused", {}).get("accuracy") for v, d in (r.get("lfw") or {}).items()}}


@bp.route("/settings")
def index():
    s = services()
    cfg = s.config
    stale = store().stale_templates(s.bundle.id)
    return render_template("settings.html", bundle=bundle_summary(), cfg=cfg, config_file=s.config_file,
                           home=s.home, stale=stale, dumps=lambda v: json.dumps(v, indent=1, sort_keys=True))


@bp.route("/tokens")
def tokens():
    return render_template("tokens.html", tokens=admin_db().tokens(), new_token=None)


@bp.route("/tokens", methods=["POST"])
def create_token():
    """Create a token and show it once (the page is not cached; only its hash is stored)."""
    try:
        token, t = admin_db().create_token(request.form.get("name", ""), g.admin.username)
    except AdminDBError as e:
        flash(sentence(e), "error")
        return redirect(url_for("settings.tokens"))
    audit_action("token_created", None, token_id=t.id, token_name=t.name)
    return render_template("tokens.html", tokens=admin_db().tokens(), new_token=token, new_name=t.name)


@bp.route("/tokens/<id:token_id>/revoke", methods=["POST"])
def revoke_token(token_id: int):
    try:
        t = admin_db().revoke_token(token_id)
    except AdminDBError as e:
        flash(sentence(e), "error")
    else:
        audit_action("token_revoked", None, token_id=t.id, token_name=t.name)
        flash(f"Token {t.name!r} ({t.hint}…) revoked; requests using it now get 401.")
    return redirect(url_for("settings.tokens"))
