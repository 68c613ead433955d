"""Per-app objects (kept in `app.extensions["facegate_admin"]`) and per-request database connections."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from flask import current_app, g, request

from ..bundle import Bundle
from ..config import Config
from ..crypto import key_for
from ..matching import TemplateGallery
from ..recognizer import Recognizer
from ..store import Store
from .db import AdminDB

EXTENSION = "facegate_admin"


@dataclass
class AdminServices:
    """What every request of one app shares: paths, the loaded models and the runtime config.

    The models are shared by all request threads; `models_lock` runs one inference at a time
    (the device has few cores, and one request at a time keeps memory flat).
    """

    home: Path
    store_path: Path
    admin_db_path: Path
    config_file: Path | None
    config: Config
    bundle: Bundle
    clock: Callable[[], float]
    setup_token: str | None = None
    models_lock: threading.Lock = field(default_factory=threading.Lock)

    def recognizer(self, templates: TemplateGallery | None = None) -> Recognizer:
        """A Recognizer over the shared bundle (cheap: the models are not reloaded)."""
        return Recognizer(self.bundle, self.config, templates)

    @contextmanager
    def inference(self) -> Iterator[None]:
        with self.models_lock:
            yield


def sentence(e: Exception) -> str:
    """An error message as a sentence for a page: capital first letter, full stop."""
    text = str(e)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def services() -> AdminServices:
    """The current app's AdminServices."""
    return current_app.extensions[EXTENSION]


def store() -> Store:
    """The enrollment store for this request (opened on first use, closed when the request ends)."""
    if "fg_store" not in g:
        svc = services()
        g.fg_store = Store(svc.store_path, key=key_for(svc.config.privacy, svc.home))   # [privacy] key_file
    return g.fg_store


def admin_db() -> AdminDB:
    """The admin database for this request (opened on first use, closed when the request ends)."""
    if "fg_admin_db" not in g:
        s = services()
        g.fg_admin_db = AdminDB(s.admin_db_path, clock=s.clock)
    return g.fg_admin_db


def close_connections(_exc=None) -> None:
    """teardown_appcontext: close what this request opened."""
    for key in ("fg_store", "fg_admin_db"):
        conn = g.pop(key, None)
        if conn is not None:
            conn.close()


def enrolled_templates() -> TemplateGallery:
    """The templates of the bundle in use, read fresh from the store (so the runtime's writes show)."""
    b = services().bundle
    return store().templates(b.id, b.metric)


def person_name(person_id: int) -> str | None:
    """The name of the person with this store id, or None."""
    row = store().conn.execute("SELECT name FROM people WHERE id = ?", (int(person_id),)).fetchone()
    return row[0] if row else None


def actor() -> str:
    """Who is acting: the administrator's username, or 'api:<token name>' for an API call."""
    if g.get("api_token") is not None:
        return f"api:{g.api_token.name}"
    admin = g.get("admin")
    return admin.username if admin is not None else "anonymous"


def audit_action(action: str, person: str | None = None, **details) -> None:
    """One 'admin_action' audit row: what was done through the admin page or API, by whom, from where."""
    store().log("admin_action", person, action=action, by=actor(), ip=request.remote_addr, **details)
