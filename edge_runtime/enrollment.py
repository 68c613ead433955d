"""Enrollment and identification steps shared by the CLI (`facegate enroll`/`identify`) and the admin page.

One place decides how a bundle is opened with the config's detector settings, which photos
become templates, and how a face's match is reported, so both front ends behave the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .bundle import Bundle, load_bundle
from .config import Config
from .matching import json_score
from .recognizer import FaceResult, PhotoResult, Recognizer
from .sessions import use_providers
from .store import Person, Store, normalize_name


def open_bundle(cfg: Config, path: str | Path | None = None, threads: int = 2) -> Bundle:
    """Load the bundle at `path` (None: the shipped one) with the config's embedder and detector settings, on
    its [runtime] providers (sessions.use_providers: missing ones dropped with a warning, CPU last)."""
    use_providers(cfg.runtime.providers)
    d = cfg.detector
    return load_bundle(path, embedder=cfg.recognition.embedder, threads=threads,
                       score_threshold=d.score_threshold, nms_threshold=d.nms_threshold, max_side=d.max_side)


def check_photos(recognizer: Recognizer, photos: Sequence[tuple[str, bytes | str | Path]]) -> list[PhotoResult]:
    """Run the enrollment check (exactly one usable face) on each (label, bytes or path) photo.

    For a path the result's `source` is the path; for bytes it is the label.
    """
    return [recognizer.enrollment_photo(data, label) for label, data in photos]


@dataclass(frozen=True)
class EnrollOutcome:
    """What an enrollment did: the person after the write (None when no photo was usable) and each photo's result."""

    person: Person | None
    results: list[PhotoResult]

    @property
    def kept(self) -> list[PhotoResult]:
        return [r for r in self.results if r.ok]

    @property
    def refused(self) -> list[PhotoResult]:
        return [r for r in self.results if not r.ok]


def enroll_checked(store: Store, bundle: Bundle, name: str, results: Sequence[PhotoResult],
                   keep_images: bool = True) -> EnrollOutcome:
    """Store the good photos of `results` as templates of `name` (one transaction); refused ones are dropped.

    Returns an EnrollOutcome whose person is None (and nothing is written) when no photo was good.
    """
    good = [r for r in results if r.ok]
    if not good:
        return EnrollOutcome(None, list(results))
    images = [r.chip_jpeg for r in good] if keep_images else None
    person = store.enroll(name, np.stack([r.embedding for r in good]), bundle.id, bundle.embedder.name,
                          images=images)
    return EnrollOutcome(person, list(results))


def refuse_lookalikes(recognizer: Recognizer, name: str, results: Sequence[PhotoResult]) -> list[PhotoResult]:
    """`results` with every good photo whose face is already enrolled as someone else refused.

    recognizer: carries the store's templates (its operating point is the door's). A good photo whose
    best match is another person at or above the door's threshold would give that face two names (the
    door would open for either); it is refused with a reason naming the other person, so the caller can
    ask for an explicit override (`facegate enroll --force`). Photos matching `name` itself are kept.
    """
    own = normalize_name(name)
    good = [r for r in results if r.ok]
    if not good or len(recognizer.templates) == 0:
        return list(results)
    found = dict(zip((id(r) for r in good), recognizer.templates.nearest(np.stack([r.embedding for r in good]),
                                                                           recognizer.metric,
                                                                           recognizer.threshold)))
    out = []
    for r in results:
        m = found.get(id(r))
        if m is not None and m.name is not None and m.name != own:
            r = PhotoResult(r.source, False, f"this face is already enrolled as {m.name} (score {m.score:.3f}, at or "
                                             f"above the door's threshold {recognizer.threshold:.3f}); if they are "
                                             "different people, enroll with --force")
        out.append(r)
    return out


def attack_reason(liveness: float, threshold: float) -> str:
    """Why an enrollment photo judged a presentation attack is refused (the liveness score, the threshold, the
    two ways out)."""
    return (f"presentation attack suspected (liveness {liveness:.2f} < {threshold:.2f}): use a live photo taken by "
            f"the camera, or --no-liveness for a scanned ID photo")


def refuse_attacks(recognizer: Recognizer, results: Sequence[PhotoResult]) -> list[PhotoResult]:
    """`results` with every good photo judged a presentation attack refused (`attack_reason`).

    Only when the recognizer checks liveness (`recognizer.liveness_on`; otherwise `results` unchanged). A good
    photo whose liveness was not checked is refused too (fail-secure). Skip this step for scanned ID photos
    (`--no-liveness`, the admin page's checkbox) and say so in the audit log.
    """
    if not recognizer.liveness_on:
        return list(results)
    t = recognizer.config.liveness.threshold
    out = []
    for r in results:
        if r.ok and (r.liveness is None or not r.liveness >= t):
            why = (attack_reason(r.liveness, t) if r.liveness is not None
                   else "liveness could not be checked; use --no-liveness for a scanned ID photo")
            r = PhotoResult(r.source, False, why, liveness=r.liveness)
        out.append(r)
    return out


def liveness_details(recognizer: Recognizer, checked: bool, results: Sequence[PhotoResult]) -> dict:
    """What the enrollment's audit row says about liveness (plain JSON, no biometric data): "liveness": "checked",
    "skipped" (--no-liveness: a scanned ID photo) or "off" (the bundle cannot check it), and the scores."""
    state = "off" if not recognizer.liveness_on else "checked" if checked else "skipped"
    scores = [json_score(r.liveness) for r in results if r.liveness is not None]
    return {"liveness": state, **({"liveness_scores": scores} if scores else {})}


@dataclass(frozen=True)
class ReembedOutcome:
    """What re-embedding did: templates replaced per person, and stale templates left per person
    (no kept crop, or a crop made for another embedder: those people must re-enroll)."""

    done: dict[str, int]
    left: dict[str, int]


def reembed_kept(store: Store, bundle: Bundle) -> ReembedOutcome:
    """Re-embed, with `bundle`'s embedder, the kept aligned crops of templates made by another bundle.

    A crop is reused only when its template came from the same embedder (same alignment templates,
    so the crop is exactly what this embedder expects: for a fused embedder, one chip per part) and
    has the embedder's crop size; the whole swap is one transaction (Store.replace_templates).
    """
    from .imageio import decode_image

    emb = bundle.embedder
    new, done, sets, ids = {}, {}, [], []
    for tid, name, embedder, jpeg in store.kept_crops(bundle.id):
        if embedder != emb.name:
            continue
        chips = emb.chips_from_crop(decode_image(jpeg, f"kept crop of {name}"))
        if chips is None:
            continue
        sets.append(chips)
        ids.append((tid, name))
    for k in range(0, len(sets), 32):
        vecs = emb.embed_sets(sets[k:k + 32])
        for (tid, name), v in zip(ids[k:k + 32], vecs):
            new[tid] = v
            done[name] = done.get(name, 0) + 1
    store.replace_templates(bundle.id, emb.name, new)
    return ReembedOutcome(done, store.stale_templates(bundle.id))


def face_report(r: FaceResult) -> dict:
    """One analysed face as plain JSON: box, person (name, 'unknown' or None if unusable), score, problems."""
    return {"box": [round(float(v), 1) for v in r.face.box],
            "person": (r.match.name or "unknown") if r.match else None,
            "score": json_score(r.match.score) if r.match else None,
            "candidate": r.match.candidate if r.match else None,
            "problems": list(r.problems)}
