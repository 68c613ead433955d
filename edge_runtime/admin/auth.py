"""Logging in and out, first-run setup, changing the password, and the rule that every page needs a login.

There is no default password. The first administrator is made either with `facegate admin init`
or on /setup with the one-time setup token the server prints in its log at start.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from .db import AdminDBError
from .security import LoginThrottled, attempt_failed, attempt_succeeded, is_api, rotate_csrf, safe_next, start_attempt
from .services import admin_db, sentence, services, store

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "static", "api.openapi"}


def load_admin() -> None:
    """before_request: g.admin = the logged-in administrator (None if not logged in)."""
    g.admin = None
    sid = session.get("sid")
    if sid and not is_api():
        c = current_app.config
        g.admin = admin_db().session_admin(sid, c["SESSION_IDLE_S"], c["SESSION_MAX_AGE_S"])
        if g.admin is None:
            session.pop("sid", None)


def require_login():
    """before_request: every page except login, setup and static files needs a logged-in administrator.

    The API blueprint checks its own Bearer tokens.
    """
    if is_api() or request.endpoint in PUBLIC_ENDPOINTS or g.get("admin") is not None:
        return None
    if request.method == "GET":
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return render_template("error.html", code=401, message="Log in first."), 401


def _start_session(admin) -> None:
    old = session.get("sid")
    if old:
        admin_db().end_session(old)
    session.clear()                       # a new session id and CSRF token: no session fixation
    session.permanent = True
    session["sid"] = admin_db().create_session(admin.id)
    rotate_csrf()


def _audit(event: str, **details) -> None:
    store().log(event, None, ip=request.remote_addr, **details)


def _throttled(e: LoginThrottled, what: str, headers: dict) -> tuple[str, int]:
    """(message, 429) for a throttled form; sets the Retry-After header."""
    headers["Retry-After"] = str(e.retry_after)
    return f"Too many {what}. Try again in {e.retry_after} seconds.", 429


@bp.route("/login", methods=["GET", "POST"])
def login():
    if admin_db().admin_count() == 0:
        return redirect(url_for("auth.setup"))
    if g.admin is not None and request.method == "GET":
        return redirect(url_for("people.index"))
    error, status, headers = None, 200, {}
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        try:
            attempt = start_attempt(username)
            admin = admin_db().authenticate(username, password)
            if admin is None:
                _audit("admin_login_failed", username=username[:64])
                attempt_failed(attempt)
                error, status = "Wrong username or password.", 401
            else:
                attempt_succeeded(attempt)
                _start_session(admin)
                _audit("admin_login", username=admin.username)
                return redirect(safe_next(request.args.get("next"), url_for("people.index")))
        except LoginThrottled as e:
            error, status = _throttled(e, "failed logins", headers)
    return render_template("login.html", error=error, username=username), status, headers


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the first administrator with the setup token from the server log."""
    if admin_db().admin_count() > 0:
        return redirect(url_for("auth.login"))
    error, status, headers = None, 200, {}
    username = request.form.get("username", "admin")
    if request.method == "POST":
        try:
            attempt = start_attempt(None)
            token_ok = admin_db().check_setup_token(request.form.get("token", ""))
            if token_ok:
                attempt_succeeded(attempt)        # a typo in the new password below is no guess
            else:
                attempt_failed(attempt)
            if not token_ok:
                error, status = ("The setup token is wrong. Copy it from the server log (the line 'setup token: "
                                 "...'), or run `facegate admin init` on the device."), 403
            elif request.form.get("password", "") != request.form.get("confirm", ""):
                error, status = "The two passwords differ.", 400
            else:
                admin = admin_db().create_admin(username, request.form.get("password", ""), only_if_none=True)
                services().setup_token = None
                _start_session(admin)
                _audit("admin_created", username=admin.username, via="setup")
                flash(f"Administrator {admin.username} created; you are logged in.")
                return redirect(url_for("people.index"))
        except LoginThrottled as e:
            error, status = _throttled(e, "wrong setup tokens", headers)
        except AdminDBError as e:
            error, status = sentence(e), 400
    return render_template("setup.html", error=error, username=username), status, headers


@bp.route("/logout", methods=["POST"])
def logout():
    sid = session.get("sid")
    if sid:
        admin_db().end_session(sid)
        _audit("admin_logout", username=g.admin.username)
    session.clear()
    rotate_csrf()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    """Change your own password; ends every other session of yours."""
    error, status, headers = None, 200, {}
    if request.method == "POST":
        try:
            attempt = start_attempt(g.admin.username)
            current_ok = admin_db().authenticate(g.admin.username, request.form.get("current", "")) is not None
            if current_ok:
                attempt_succeeded(attempt)        # a typo in the new password below is no guess
            else:
                attempt_failed(attempt)
            if not current_ok:
                error, status = "The current password is wrong.", 403
            elif request.form.get("password", "") != request.form.get("confirm", ""):
                error, status = "The two new passwords differ.", 400
            else:
                admin = admin_db().set_password(g.admin.username, request.form.get("password", ""))
                _start_session(admin)
                _audit("admin_password_changed", username=admin.username)
                flash("Password changed. Other sessions were logged out.")
                return redirect(url_for("people.index"))
        except LoginThrottled as e:
            error, status = _throttled(e, "wrong passwords", headers)
        except AdminDBError as e:
            error, status = sentence(e), 400
    return render_template("password.html", error=error), status, headers
