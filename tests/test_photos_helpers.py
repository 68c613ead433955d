"""Shared by the photo organiser tests: the shipped bundle's recognizer and small folders of LFW photos."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from facegate.edge_runtime.config import Config
from facegate.edge_runtime.enrollment import open_bundle
from facegate.edge_runtime.photos.cluster import linkage_threshold
from facegate.edge_runtime.photos.db import PhotoDB
from facegate.edge_runtime.photos.organize import organize
from facegate.edge_runtime.photos.scan import scan
from facegate.edge_runtime.recognizer import Recognizer

# LFW people whose first photos all pass the quality gate with one clear central face
PEOPLE = ("Colin_Powell", "Hugo_Chavez", "Serena_Williams", "Jacques_Chirac")

_RECOGNIZER = None


def recognizer() -> Recognizer:
    """The shipped bundle's default embedder with the default config (loaded once per test run)."""
    global _RECOGNIZER
    if _RECOGNIZER is None:
        cfg = Config()
        _RECOGNIZER = Recognizer(open_bundle(cfg, None, 2), cfg)
    return _RECOGNIZER


def threshold() -> float:
    return linkage_threshold(recognizer().bundle.score_model)


def copy_photos(data_dir: Path, dest: Path, people=PEOPLE, numbers=range(1, 5)) -> dict[str, str]:
    """Copy <person>_000<n>.jpg of each person into `dest`; {copied path: person}."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for p in people:
        for n in numbers:
            src = data_dir / "lfw" / p / f"{p}_{n:04d}.jpg"
            shutil.copy(src, dest / src.name)
            out[str(dest / src.name)] = p
    return out


def scan_and_sort(db: PhotoDB, roots, progress=None):
    rec = recognizer()
    report = scan(db, rec, [str(r) for r in roots], progress)
    organize(db, rec.bundle.id, rec.metric, threshold())
    return report


def central_people(db: PhotoDB) -> dict[str, int | None]:
    """{photo path: person id of its largest face} (LFW's subject is the largest, central face)."""
    out = {}
    for path, person, box in db.read("SELECT ph.path, f.person_id, f.box FROM faces f JOIN photos ph "
                                     "ON ph.id = f.photo_id"):
        b = np.frombuffer(box, "<f4")
        area = float((b[2] - b[0]) * (b[3] - b[1]))
        if path not in out or area > out[path][1]:
            out[path] = (person, area)
    return {k: v[0] for k, v in out.items()}
