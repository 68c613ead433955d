"""Browser-side protections: CSRF tokens, login throttling, cookie flags and security headers.

CSRF: each session carries a random token; every state-changing request from the browser
(POST/PUT/PATCH/DELETE outside /api/v1) must send it back as the `csrf_token` form field or the
`X-CSRF-Token` header. The API is exempt because it never accepts cookies, only Bearer tokens.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface

from .db import Backoff
from .services import admin_db

API_PREFIX = "/api/v1"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


class LoginThrottled(Exception):
    """Too many failed logins from this address, or for this user from anywhere; `retry_after` in seconds."""

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


@dataclass(frozen=True)
class Attempt:
    """A login-type attempt the throttle let through; it counts as a failure until `attempt_succeeded`."""

    locks: tuple[str, ...]          # counters that lock: this address, and this user from this address
    slows: tuple[str, ...]          # counters that only slow down: this user from anywhere
    closed_for: float               # seconds the charge locked a `locks` counter for (0: none)


def _counter_keys(username: str | None) -> tuple[list[str], list[str]]:
    """(lock keys, slow-down keys) of an attempt from this request's address; no username: setup token."""
    ip = request.remote_addr or "?"
    if username is None:
        return [f"setup-ip:{ip}"], []
    user = username.strip().lower()[:64]
    return [f"user+ip:{user}@{ip}", f"ip:{ip}"], [f"user:{user}"]


def start_attempt(username: str | None) -> Attempt:
    """Check and charge a password (or, with None, setup-token) attempt in one write transaction.

    Failures lock the (user, address) pair and the address (LOGIN_BACKOFF_S doubling up to
    LOGIN_BACKOFF_MAX_S after LOGIN_MAX_FAILURES); user-wide they only add a delay between attempts
    (LOGIN_SLOWDOWN_S doubling up to LOGIN_SLOWDOWN_MAX_S), so guesses from elsewhere cannot lock the
    administrator out. Raises LoginThrottled, charging nothing, while a counter is closed.
    """
    c = current_app.config
    locks, slows = _counter_keys(username)
    lock = Backoff(c["LOGIN_MAX_FAILURES"], c["LOGIN_BACKOFF_S"], c["LOGIN_BACKOFF_MAX_S"])
    slow = Backoff(c["LOGIN_MAX_FAILURES"], c["LOGIN_SLOWDOWN_S"], c["LOGIN_SLOWDOWN_MAX_S"])
    wait, closed = admin_db().begin_login_attempt([(k, lock) for k in locks] + [(k, slow) for k in slows],
                                                  c["LOGIN_FORGET_S"])
    if wait > 0:
        raise LoginThrottled(wait)
    return Attempt(tuple(locks), tuple(slows), max(closed[k] for k in locks))


def attempt_failed(attempt: Attempt) -> None:
    """The password (or token) was wrong: raise LoginThrottled if this failure locked the address."""
    if attempt.closed_for > 0:
        raise LoginThrottled(attempt.closed_for)


def attempt_succeeded(attempt: Attempt) -> None:
    """The password was right: this address's counters are forgotten, the user-wide one takes it back."""
    admin_db().end_login_attempt(attempt.locks, attempt.slows)


def safe_next(target: str | None, default: str) -> str:
    """`target` if it is a path on this site (no scheme, no host, no //), else `default` (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
