"""Templates that age with their owners: after an opening on a confident, live match, the frame's face may be
kept as one more template of that person, so the door follows a face that changes over the years.

Rules (`update_verdict`): only a usable face judged live (never a frame whose liveness was not checked or that
was judged an attack), whose score is at least the door's threshold plus a margin (never a match near the
threshold), and for whom no other person also reaches the threshold. Per person at most `max_auto` added
templates are kept (the enrolled ones are never dropped): when one more would exceed it, the added template
most like the rest of the set goes (`templates_to_drop`), which keeps the most diverse set; when that is the
new face itself, nothing is added. Every addition is a 'template_added' audit row and can be undone
(`Store.undo_auto_templates`: `facegate people undo-update`, the admin page's person page).
"""
from __future__ import annotations

import numpy as np

from .fusion import ScoreFusion
from .matching import similarity


def update_verdict(score: float, second: float, threshold: float, margin: float, live: bool | None,
                   usable: bool = True) -> str:
    """"" when the face of an opening may become a template of its person, else why not.

    Args:
        score: the match score of the person (the door's score units); second: the best score of anyone else.
        threshold: the door's threshold now; margin: how far above it `score` must be (> 0).
        live: the face judged live (True), an attack (False) or not checked (None).
        usable: whether the face passed the quality gate.
    """
    if not usable:
        return "face not usable"
    if live is not True:
        return "liveness not checked" if live is None else "presentation attack suspected"
    if not score >= threshold + margin:
        return f"score {score:.3f} is below the threshold {threshold:.3f} + margin {margin:g}"
    if second >= threshold:
        return f"another person also matches (score {second:.3f})"
    return ""


def most_redundant(sims: np.ndarray, fixed: int) -> int:
    """The row of the square similarity matrix `sims` float (T, T) (higher = more alike), at or after `fixed`,
    most like another row: the template whose removal keeps the set most diverse (ties: the one most like all the
    others on average, then the earliest)."""
    s = np.array(sims, np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or not 0 <= fixed < s.shape[0]:
        raise ValueError(f"need a square matrix with a removable row after the first {fixed}; got {s.shape}")
    mean = (s[fixed:].sum(axis=1) - np.diag(s)[fixed:]) / max(len(s) - 1, 1)
    np.fill_diagonal(s, -np.inf)
    nearest = s[fixed:].max(axis=1)
    tied = np.flatnonzero(nearest == nearest.max())
    return fixed + int(tied[np.argmax(mean[tied])])


def templates_to_drop(enrolled: np.ndarray, auto: np.ndarray, new: np.ndarray, max_auto: int,
                      metric: str | ScoreFusion) -> list[int]:
    """Which added templates to drop so that, with `new`, at most `max_auto` remain; greedily the most redundant.

    Args:
        enrolled: float32 (E, D) the person's enrolled templates (never dropped); auto: float32 (A, D) the added
            ones, oldest first; new: float32 (D,) the candidate.
        metric: as matching.similarity.
    Returns:
        indices into `auto`, and A for `new` itself (then nothing should be added), in the order dropped.
    """
    if max_auto < 1:
        raise ValueError(f"max_auto must be >= 1, got {max_auto!r}")
    rows = np.concatenate([np.asarray(enrolled, np.float32).reshape(-1, len(new)),
                           np.asarray(auto, np.float32).reshape(-1, len(new)),
                           np.asarray(new, np.float32).reshape(1, -1)])
    fixed, n_auto = len(rows) - len(auto) - 1, len(auto)
    keep = list(range(len(rows)))
    sims = similarity(rows, rows, metric)
    dropped = []
    while len(keep) - fixed > max_auto:
        sub = sims[np.ix_(keep, keep)]
        k = keep.pop(most_redundant(sub, fixed))
        dropped.append(k - fixed)
        if k - fixed == n_auto:
            break
    return dropped


def learn(store, name: str, embedding: np.ndarray, bundle_id: str, embedder: str, metric: str | ScoreFusion,
          max_auto: int, **details) -> int | None:
    """Add `embedding` (float32 (D,), the opening frame's face) to `name`'s templates within the bound: reads the
    person's templates of `bundle_id`, drops the most redundant added ones (`templates_to_drop`) and writes
    the new one with its 'template_added' audit row (details: plain JSON, no biometric data) in one transaction.
    Returns the new template's id, or None when the new face was the most redundant (nothing written)."""
    ids, vecs, added = store.person_templates(name, bundle_id)
    fixed = [i for i, a in enumerate(added) if a is None]
    auto = [i for i, a in enumerate(added) if a is not None]
    drop = templates_to_drop(vecs[fixed], vecs[auto], np.asarray(embedding, np.float32), max_auto, metric)
    if len(auto) in drop:
        return None
    return store.add_auto_template(name, embedding, bundle_id, embedder, drop=[ids[auto[j]] for j in drop], **details)
