"""Browser-side protections: CSRF tokens, login throttling, cookie flags and security headers.

CSRF: each session carries a random token; every state-changing request from the browser
(POST/PUT/PATCH/DELETE outside /api/v1) must send it back as the `csrf_token` form field or the
`X-CSRF-Token` header. The API is exempt because it never accepts cookies, only Bearer tokens.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface

from .services import admin_db

API_PREFIX = "/api/v1"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


class LoginThrottled(Exception):
    """Too many failed logins from this address or for this user; `retry_after` in seconds."""

    def __init__(self, retry_after: float):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed logins; try again in {self.retry_after} s")


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session whose Secure flag may be "auto": set when the request came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        value = app.config["SESSION_COOKIE_SECURE"]
        if value == "auto":
            return bool(has_request_context() and request.is_secure)
        return bool(value)


def is_api() -> bool:
    """Whether this request is for the JSON API (also unknown /api/v1/ paths, which get JSON 404s)."""
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def csrf_token() -> str:
    """This session's CSRF token (made on first use); templates call it as csrf_token()."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def rotate_csrf() -> None:
    """A fresh token (after login/logout, so a token seen before login is worthless after)."""
    session["csrf"] = secrets.token_urlsafe(32)


def check_csrf() -> None:
    """before_request: refuse a state-changing browser request without this session's token (400)."""
    if request.method in SAFE_METHODS or is_api():
        return
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf")
    if not expected or not sent or not secrets.compare_digest(str(sent), str(expected)):
        abort(400, description="The form has expired or did not come from this site (missing or wrong CSRF "
                               "token). Reload the page and try again.")


def security_headers(response):
    """after_request: CSP without inline code, no framing, no sniffing, no caching of private pages."""
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def throttle_keys(username: str) -> list[str]:
    """The counters a login attempt is charged to: the client address and the (lower-cased) username."""
    return [f"ip:{request.remote_addr or '?'}", f"user:{(username or '').strip().lower()}"]


def ensure_not_throttled(keys: list[str]) -> None:
    """Raise LoginThrottled while any of the keys is locked."""
    wait = admin_db().locked_for(keys)
    if wait > 0:
        raise LoginThrottled(wait)


def login_failed(keys: list[str]) -> float:
    """Charge a failed attempt to the keys; returns the lock now in force (0 if none)."""
    c = current_app.config
    return admin_db().record_failure(keys, c["LOGIN_MAX_FAILURES"], c["LOGIN_BACKOFF_S"], c["LOGIN_BACKOFF_MAX_S"],
                                     c["LOGIN_FORGET_S"])


def safe_next(target: str | None, default: str) -> str:
    """`target` if it is a path on this site (no scheme, no host, no //), else `default` (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
