"""Everything stored about one person, written to a folder for a subject-access request.

`export_person` writes OUT/person.json (the person's record, every template with its vector, the
kept face crops listed by file, every audit row naming them and every door event naming them, from
the event files listed in the data home, rotated ones included) and OUT/crops/<image id>.jpg. The
folder and files are private (0700 / 0600): they hold biometric data.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .errors import FacegateError
from .event_log import lines_naming
from .files import atomic_write_bytes
from .store import Store

FORMAT = "facegate subject access export v1"
DIR_MODE, FILE_MODE = 0o700, 0o600


class ExportError(FacegateError):
    """The export folder cannot be written."""


def export_person(store: Store, home: str | Path, name: str, out: str | Path) -> dict:
    """Write everything `store` and the data home's event files hold about `name` into the folder `out`.

    Args:
        store: the enrollment store (with its key when templates are encrypted: they are exported plain).
        home: the data home (its list of event files).
        name: the person's name (PersonNotFoundError when nobody has it).
        out: a folder that does not exist yet, or an empty one.
    Returns:
        counts {"templates", "images", "audit", "events"} of what was written.
    """
    record = store.subject_record(name)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; give a new folder for the export")
    try:
        out.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(out, DIR_MODE)
        (out / "crops").mkdir(mode=DIR_MODE, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the export folder {out}: {e.strerror}") from None
    images = []
    for img in record["images"]:
        rel = f"crops/{img['id']}.jpg"
        _private(atomic_write_bytes(out / rel, img["jpeg"]))
        images.append({"id": img["id"], "template_id": img["template_id"], "created_at": img["created_at"],
                       "file": rel})
    events = list(lines_naming(home, record["names"]))
    doc = {"format": FORMAT, "exported_at": time.time(), "person": record["person"], "names": record["names"],
           "templates": [dict(t, embedding=[float(v) for v in t["embedding"]]) for t in record["templates"]],
           "images": images,
           "audit": [{"id": a.id, "ts": a.ts, "event": a.event, "person_name": a.person_name, "details": a.details}
                     for a in record["audit"]],
           "events": events}
    _private(atomic_write_bytes(out / "person.json",
                                json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")))
    return {"templates": len(doc["templates"]), "images": len(images), "audit": len(doc["audit"]),
            "events": len(events)}


def _private(path: Path) -> None:
    os.chmod(path, FILE_MODE)
