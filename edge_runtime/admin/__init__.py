"""The admin page: a small Flask app on the device to enroll and remove people and see what the door did.

`create_app(config)` builds one independent app (no module-level state: per-app objects live in
`app.extensions["facegate_admin"]`). It shares the runtime's data home: the enrollment store
(`store.db`, also written by `facegate run`; SQLite WAL + busy_timeout let both write), the config
file and the model bundle. Its own credentials live in `admin.db` next to the store.

Config keys (all optional):
    HOME            data folder (default: $FACEGATE_HOME or ~/.local/share/facegate)
    BUNDLE          model bundle folder, or an already loaded Bundle (default: the shipped bundle)
    CONFIG_FILE     config TOML (default <home>/config.toml; a missing default file means defaults)
    THREADS         onnxruntime threads per model (2)
    SECRET_KEY      cookie signing key (default: made once and kept in admin.db)
    SESSION_COOKIE_SECURE   True, False or "auto" (Secure flag when the request came over TLS; default)
    SESSION_COOKIE_SAMESITE "Lax" (default) or "Strict"
    SESSION_IDLE_S, SESSION_MAX_AGE_S   log out after 2 h idle / 12 h in all
    LOGIN_MAX_FAILURES, LOGIN_BACKOFF_S, LOGIN_BACKOFF_MAX_S, LOGIN_SLOWDOWN_S, LOGIN_SLOWDOWN_MAX_S,
    LOGIN_FORGET_S   login throttling: after 5 failed logins an address is locked (for that user, and
        for every user) 30 s, doubling per further failure up to 15 min; after 5 failures for a user
        from anywhere, that user's next attempt waits 1 s, doubling up to 60 s (a delay, never a lock,
        so guesses from elsewhere cannot keep the administrator out); forgotten after 24 h
    MAX_CONTENT_LENGTH  bytes per request (32 MiB); MAX_PHOTOS photos per request (20)
    CLOCK           time source (time.time), for tests
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Mapping

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from ..bundle import Bundle
from ..config import load_config
from ..enrollment import open_bundle
from ..errors import FacegateError, ImageError
from ..paths import config_path, data_home, store_path
from ..store import (
    DuplicateNameError,
    InvalidNameError,
    PersonNotFoundError,
    Store,
    StoreBusyError,
    StoreFullError,
    stale_templates_message,
)
from . import api, auth, enroll, events, identify, people, photos, settings
from .db import AdminDB, admin_db_path
from .security import CookieSessionInterface, check_csrf, csrf_token, is_api, security_headers
from .services import EXTENSION, AdminServices, close_connections, sentence

__all__ = ["create_app", "DEFAULTS"]

log = logging.getLogger("facegate.admin")

DEFAULTS = {
    "HOME": None,
    "BUNDLE": None,
    "CONFIG_FILE": None,
    "THREADS": 2,
    "SECRET_KEY": None,
    "SESSION_COOKIE_NAME": "facegate_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": "auto",
    "SESSION_IDLE_S": 2 * 3600,
    "SESSION_MAX_AGE_S": 12 * 3600,
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_BACKOFF_S": 30.0,
    "LOGIN_BACKOFF_MAX_S": 900.0,
    "LOGIN_SLOWDOWN_S": 1.0,
    "LOGIN_SLOWDOWN_MAX_S": 60.0,
    "LOGIN_FORGET_S": 24 * 3600.0,
    "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
    "MAX_PHOTOS": 20,
    "CLOCK": time.time,
}

STATUS_OF = [(PersonNotFoundError, 404), (InvalidNameError, 400), (DuplicateNameError, 409),
             (ImageError, 422), (StoreBusyError, 503), (StoreFullError, 507), (FacegateError, 500)]


class AdminConfigError(FacegateError, ValueError):
    """A create_app config value is not allowed."""


class RowIdConverter(IntegerConverter):
    """`<id:name>` in a route: a whole number of 1 to 18 ASCII digits (0 .. 10**18 - 1).

    Every numeric URL part (row ids, image indexes) uses it, so a crafted number that SQLite cannot
    bind (it stores 64-bit signed integers, at most 2**63 - 1, a 19-digit number) or that Python will
    not parse (over 4300 digits) matches no route: a 404, instead of an OverflowError deep in a query.
    The bound is in the pattern, not a range check, so such a URL matches no rule for any method
    (werkzeug answers 405 when a rule for another method matched before a range check failed).
    SQLite hands out row ids counting up from 1, far below the bound.
    """

    regex = r"[0-9]{1,18}"


def _check_config(c) -> None:
    if c["SESSION_COOKIE_SECURE"] not in (True, False, "auto"):
        raise AdminConfigError(f"SESSION_COOKIE_SECURE = {c['SESSION_COOKIE_SECURE']!r}: use True, False or 'auto'")
    if c["SESSION_COOKIE_SAMESITE"] not in ("Lax", "Strict"):
        raise AdminConfigError(f"SESSION_COOKIE_SAMESITE = {c['SESSION_COOKIE_SAMESITE']!r}: use 'Lax' or 'Strict' "
                               f"(None would let other sites send logged-in requests)")
    for key in ("LOGIN_MAX_FAILURES", "LOGIN_BACKOFF_S", "LOGIN_BACKOFF_MAX_S", "LOGIN_SLOWDOWN_S",
                "LOGIN_SLOWDOWN_MAX_S", "LOGIN_FORGET_S", "MAX_PHOTOS", "MAX_CONTENT_LENGTH", "SESSION_IDLE_S",
                "SESSION_MAX_AGE_S"):
        if not isinstance(c[key], (int, float)) or c[key] <= 0:
            raise AdminConfigError(f"{key} = {c[key]!r} must be a positive number")


def _services(c) -> AdminServices:
    home = data_home(c["HOME"])
    cfg_file = c["CONFIG_FILE"] or config_path(home)
    cfg = load_config(cfg_file, missing_ok=c["CONFIG_FILE"] is None)
    bundle = c["BUNDLE"] if isinstance(c["BUNDLE"], Bundle) else open_bundle(cfg, c["BUNDLE"], c["THREADS"])
    with Store(store_path(home)) as s:          # create / migrate now, not in the first request
        stale = s.stale_templates(bundle.id)
    if stale:
        log.warning("%s", stale_templates_message(stale))
    return AdminServices(home, store_path(home), admin_db_path(home), cfg_file, cfg, bundle, c["CLOCK"])


def _first_run(app: Flask, svc: AdminServices) -> None:
    """Signing key, and the one-time setup token (logged) when no administrator exists yet."""
    with AdminDB(svc.admin_db_path, clock=svc.clock) as db:
        if not app.config["SECRET_KEY"]:
            app.config["SECRET_KEY"] = db.secret_key()
        if db.admin_count() == 0:
            svc.setup_token = db.new_setup_token()
            log.warning("no administrator yet: open /setup on this server and enter the setup token: %s "
                        "(or run `facegate admin init` on the device)", svc.setup_token)


def _error_page(e: Exception, code: int, message: str):
    if is_api():
        return api.error(code, message)
    return render_template("error.html", code=code, message=message), code


def _register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        message = e.description
        if e.code == 413:
            message = (f"The upload is larger than the {human_size(app.config['MAX_CONTENT_LENGTH'])} limit; send "
                       f"fewer or smaller photos.")
        return _error_page(e, e.code or 500, message)

    @app.errorhandler(FacegateError)
    def facegate_error(e: FacegateError):
        code = next(c for t, c in STATUS_OF if isinstance(e, t))
        if code == 500:
            log.error("request %s %s failed: %s", request.method, request.path, e)
        return _error_page(e, code, sentence(e))


def human_size(n: int) -> str:
    """1048576 -> '1 MB', 262144 -> '256 KB'."""
    return f"{n / 2 ** 20:.0f} MB" if n >= 2 ** 20 else f"{n // 1024} KB"


def local_time(ts: float | None) -> str:
    """Jinja filter: '2024-05-01 08:00' in the device's time zone, or 'never'."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "never"


def create_app(config: Mapping | None = None) -> Flask:
    """A new admin app. Loads the bundle and opens (creating if needed) store.db and admin.db.

    Raises FacegateError subclasses with a clear message (bad config, missing bundle, ...).
    """
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    _check_config(app.config)
    app.config["PERMANENT_SESSION_LIFETIME"] = app.config["SESSION_MAX_AGE_S"]
    app.session_interface = CookieSessionInterface()
    svc = _services(app.config)
    app.extensions[EXTENSION] = svc
    _first_run(app, svc)

    app.before_request(auth.load_admin)
    app.before_request(auth.require_login)      # before the CSRF check: no upload is parsed for strangers
    app.before_request(check_csrf)
    app.after_request(security_headers)
    app.teardown_appcontext(close_connections)
    app.url_map.converters["id"] = RowIdConverter       # before the routes that use it are added
    for module in (auth, people, photos, enroll, identify, events, settings, api):
        app.register_blueprint(module.bp)
    _register_errors(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.filters["local_time"] = local_time
    return app
