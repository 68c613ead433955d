"""Faces -> people with stable ids, and door names for people enrolled at the door.

`organize` places the faces that have no person yet: a face joins an existing person when its mean
score with that person's faces reaches the linkage threshold, otherwise new faces group among
themselves into new people. Existing people are never split, merged or renumbered by it.
`recluster` groups again every face of the people the user never touched (named, merged, moved),
reusing each old id for the new group that holds most of its faces; the user's people stay as they are
and can only gain faces. Faces the user moved stay where they were put.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..fusion import ScoreFusion
from ..matching import TemplateGallery
from .cluster import average_linkage
from .db import PhotoDB


@dataclass(frozen=True)
class DoorNames:
    """The door's enrolled templates (store.templates of this bundle) and the door's threshold."""

    templates: TemplateGallery
    threshold: float


@dataclass(frozen=True)
class OrganizeReport:
    placed: int           # faces given a person
    new_people: int
    door_named: int       # people named after someone enrolled at the door


def organize(db: PhotoDB, bundle_id: str, metric: str | ScoreFusion, threshold: float,
             door: DoorNames | None = None) -> OrganizeReport:
    """Place every usable face without a person (one transaction); name people after the door's."""
    t = db.usable_faces(bundle_id)
    keep = ~(t.pinned & (t.person_ids < 0))          # faces the user put in "unsorted" stay there
    idx = np.flatnonzero(keep)
    new = t.person_ids[idx] < 0
    if not new.any():
        return OrganizeReport(0, 0, name_from_door(db, bundle_id, door))
    labels = average_linkage(t.embeddings[idx], t.photo_ids[idx], t.person_ids[idx], metric, threshold)
    with db.write("sort faces into people") as c:
        made = _write_labels(c, t.face_ids[idx][new], labels[new], set(t.person_ids[idx][~new].tolist()), {})
    return OrganizeReport(int(new.sum()), made, name_from_door(db, bundle_id, door))


def recluster(db: PhotoDB, bundle_id: str, metric: str | ScoreFusion, threshold: float,
              door: DoorNames | None = None) -> OrganizeReport:
    """Group again the faces of people the user never touched; old ids reused by largest overlap."""
    t = db.usable_faces(bundle_id)
    touched = {r[0] for r in db.read("SELECT id FROM people WHERE user_touched = 1 OR name_source = 'user'")}
    keep = ~(t.pinned & (t.person_ids < 0))
    idx = np.flatnonzero(keep)
    old = t.person_ids[idx]
    loose = ~np.isin(old, list(touched)) | (old < 0)
    initial = np.where(loose, -1, old)
    labels = average_linkage(t.embeddings[idx], t.photo_ids[idx], initial, metric, threshold)
    reuse = _reuse_ids(old[loose], labels[loose])
    with db.write("sort faces into people again") as c:
        made = _write_labels(c, t.face_ids[idx][loose], labels[loose], set(old[~loose].tolist()), reuse)
        c.execute("DELETE FROM people WHERE name_source IS NOT 'user' AND user_touched = 0 AND id NOT IN "
                  "(SELECT person_id FROM faces WHERE person_id IS NOT NULL)")
    return OrganizeReport(int(loose.sum()), made, name_from_door(db, bundle_id, door))


def _reuse_ids(old: np.ndarray, new: np.ndarray) -> dict[int, int]:
    """{new label: old person id}: greedily, the pair sharing most faces first, each id used once."""
    pairs = {}
    for o, n in zip(old.tolist(), new.tolist()):
        if o >= 0:
            pairs[(n, o)] = pairs.get((n, o), 0) + 1
    out, used = {}, set()
    for (n, o), _ in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        if n not in out and o not in used:
            out[n] = o
            used.add(o)
    return out


def _write_labels(c, face_ids: np.ndarray, labels: np.ndarray, existing: set[int], reuse: dict[int, int]) -> int:
    """Set each face's person: existing ids as they are, reused ids, or a new person per other label.
    Returns the number of people created."""
    ids, made, now = {}, 0, time.time()
    for lab in np.unique(labels).tolist():
        if lab in existing:
            ids[lab] = lab
        elif lab in reuse:
            ids[lab] = reuse[lab]
        else:
            ids[lab] = c.execute("INSERT INTO people (created_at) VALUES (?)", (now,)).lastrowid
            made += 1
    c.executemany("UPDATE faces SET person_id = ? WHERE id = ?",
                  [(ids[lab], fid) for fid, lab in zip(face_ids.tolist(), labels.tolist())])
    return made


def name_from_door(db: PhotoDB, bundle_id: str, door: DoorNames | None) -> int:
    """Name each person the user has not named after the enrolled person whose templates score, on
    average over the person's faces, at or above the door's threshold (door names that no longer
    match are removed). Never writes to the door's store. Returns the people named."""
    if door is None:
        return 0
    t = db.usable_faces(bundle_id)
    user_named = {r[0] for r in db.read("SELECT id FROM people WHERE name_source = 'user'")}
    names = {}
    if len(door.templates) and len(t.face_ids):
        scores = door.templates.person_scores(t.embeddings)          # (F, P)
        for pid in np.unique(t.person_ids[t.person_ids >= 0]).tolist():
            if pid in user_named:
                continue
            mean = scores[t.person_ids == pid].mean(axis=0)
            best = int(np.argmax(mean))
            if mean[best] >= door.threshold:
                names[pid] = door.templates.people[best]
    with db.write("name people after the door's") as c:
        c.execute("UPDATE people SET name = NULL, name_source = NULL WHERE name_source = 'door'")
        c.executemany("UPDATE people SET name = ?, name_source = 'door' WHERE id = ?",
                      [(n, pid) for pid, n in names.items()])
    return len(names)
