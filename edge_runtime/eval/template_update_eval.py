"""Templates that age, measured on LFW: does letting confident matches add templates help the people enrolled
from one photo, and do impostors get in?

Protocol (`template_update_stream`): LFW people with at least 3 photos; each person's photos sorted by file name
are their time order; the first is enrolled, the later ones (at most `max_photos` in all) are mated probes. Photos
of people with a single photo (never enrolled) are impostor probes. The stream takes the people's second
photos, then their third photos, ... (round by round, people by name), with the impostor probes spread evenly
through it. The threshold is fixed at the start: FPIR 1% of the impostor probes against the one-photo gallery.
Each probe is searched 1:N; a mated probe is missed unless its own person is the best and at or above the
threshold (FNIR); an impostor probe is a false positive when anyone reaches the threshold (FPIR). With updates,
after each search the same rule as the door decides (`template_update.update_verdict`: score at least threshold +
margin, nobody else at the threshold; LFW photos count as live) and the bound keeps the most diverse set
(`templates_to_drop`). Counted: templates added, and those added from an impostor probe or to the wrong person.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fusion import ScoreFusion
from ..matching import similarity
from ..template_update import templates_to_drop, update_verdict
from .openset import threshold_at_fpir


def lfw_time_ordered(lfw_dir: str | Path, min_photos: int = 3, max_photos: int = 6, impostors: int = 1000
                     ) -> tuple[dict[str, list[str]], list[str]]:
    """({person: their relpaths sorted by file name, at most max_photos} for people with >= min_photos photos,
    `impostors` relpaths of people with a single photo, evenly spaced over those people sorted by name)."""
    root = Path(lfw_dir)
    people, singles = {}, []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f.name for f in d.glob("*.jpg"))
        if len(files) >= min_photos:
            people[d.name] = [f"{d.name}/{f}" for f in files[:max_photos]]
        elif len(files) == 1:
            singles.append(f"{d.name}/{files[0]}")
    if impostors < len(singles):
        singles = [singles[i] for i in np.linspace(0, len(singles) - 1, impostors).round().astype(int)]
    return people, singles


def template_update_stream(people: dict[str, list[str]], impostors: list[str]) -> list[tuple[str, str | None]]:
    """The probes in time order: (relpath, the person it shows, None for an impostor); see the module docstring."""
    mated = [(photos[r], name) for r in range(1, max(map(len, people.values()), default=1))
             for name, photos in people.items() if r < len(photos)]
    out, k = [], 0
    for i, probe in enumerate(mated):
        while k < len(impostors) and k * len(mated) <= i * len(impostors):
            out.append((impostors[k], None))
            k += 1
        out.append(probe)
    out += [(r, None) for r in impostors[k:]]
    return out


class _Gallery:
    """The growing gallery of the simulation: one row per template, its owner, whether it was added."""

    def __init__(self, vecs: np.ndarray, names: list[str]):
        self.names = sorted(set(names))
        self.index = {n: i for i, n in enumerate(self.names)}
        self.rows = list(np.asarray(vecs, np.float32))
        self.owner = [self.index[n] for n in names]
        self.added = [False] * len(names)

    def best(self, probe: np.ndarray, metric) -> tuple[int, float, float]:
        """(best person's index, its best score, the best score of anyone else)."""
        s = similarity(probe[None], np.stack(self.rows), metric)[0]
        per = np.full(len(self.names), -np.inf)
        np.maximum.at(per, np.asarray(self.owner), s)
        top = int(np.argmax(per))
        second = np.max(np.delete(per, top)) if len(per) > 1 else -np.inf
        return top, float(per[top]), float(second)

    def learn(self, who: int, vec: np.ndarray, max_auto: int, metric) -> bool:
        """Add `vec` to person `who` within the bound; False when it was itself the most redundant."""
        mine = [i for i, o in enumerate(self.owner) if o == who]
        fixed = [i for i in mine if not self.added[i]]
        auto = [i for i in mine if self.added[i]]
        drop = templates_to_drop(np.stack([self.rows[i] for i in fixed]),
                                 np.stack([self.rows[i] for i in auto]) if auto else np.zeros((0, len(vec))),
                                 vec, max_auto, metric)
        if len(auto) in drop:
            return False
        for j in sorted((auto[j] for j in drop), reverse=True):
            del self.rows[j], self.owner[j], self.added[j]
        self.rows.append(np.asarray(vec, np.float32))
        self.owner.append(who)
        self.added.append(True)
        return True


def simulate(table: dict[str, np.ndarray], metric: str | ScoreFusion, people: dict[str, list[str]],
             stream: list[tuple[str, str | None]], threshold: float, margin: float | None, max_auto: int = 5) -> dict:
    """Run the stream once: margin None = no updates. table: {relpath: float32 (D,)}; photos without a face are
    skipped (an enrolled photo without one drops that person). Returns counts, FNIR and FPIR at `threshold`, the
    additions (wrong_additions: each template added from an impostor probe or to the wrong person), and FNIR at
    the threshold that gives FPIR 1% over the run's own impostor probes (more templates give impostors more
    chances, so FPIR at the fixed threshold grows with updates; the door raises its threshold with the template
    count, see operating_point.py)."""
    enrolled = {n: p[0] for n, p in people.items() if p[0] in table}
    g = _Gallery(np.stack([table[r] for r in enrolled.values()]), list(enrolled))
    c = dict(mated=0, misses=0, impostor_probes=0, false_positives=0, added=0, added_from_impostors=0,
             added_to_wrong_person=0, dropped_as_redundant=0, wrong_additions=[])
    mated_scores, impostor_scores = [], []
    for rel, truth in stream:
        if rel not in table or (truth is not None and truth not in enrolled):
            continue
        vec = table[rel]
        top, score, second = g.best(vec, metric)
        if truth is None:
            c["impostor_probes"] += 1
            c["false_positives"] += score >= threshold
            impostor_scores.append(score)
        else:
            c["mated"] += 1
            c["misses"] += not (g.names[top] == truth and score >= threshold)
            mated_scores.append(score if g.names[top] == truth else -np.inf)
        if margin is not None and update_verdict(score, second, threshold, margin, True) == "":
            if g.learn(top, vec, max_auto, metric):
                c["added"] += 1
                c["added_from_impostors"] += truth is None
                c["added_to_wrong_person"] += truth is not None and g.names[top] != truth
                if g.names[top] != truth:
                    c["wrong_additions"].append({"probe": rel, "shows": truth, "added_to": g.names[top],
                                                 "score": round(score, 3)})
            else:
                c["dropped_as_redundant"] += 1
    c["fnir"] = c["misses"] / max(c["mated"], 1)
    c["fpir"] = c["false_positives"] / max(c["impostor_probes"], 1)
    c["templates"] = len(g.rows)
    # the same searches at the threshold that gives FPIR 1% over this run's own impostor probes
    c["threshold_fpir_1pct_in_stream"] = threshold_at_fpir(np.array(impostor_scores), 0.01)
    c["fnir_at_fpir_1pct_in_stream"] = float(np.mean(np.array(mated_scores) < c["threshold_fpir_1pct_in_stream"]))
    return c


def evaluate_template_updates(table: dict[str, np.ndarray], metric: str | ScoreFusion, people: dict[str, list[str]],
                              impostors: list[str], margins=(0.5, 1.0, 2.0), max_auto: int = 5,
                              fpir: float = 0.01) -> dict:
    """The report: the threshold at `fpir` from the impostors against the one-photo gallery, then the stream
    without updates and with updates at each margin (score units of `metric`)."""
    enrolled = {n: p[0] for n, p in people.items() if p[0] in table}
    g = _Gallery(np.stack([table[r] for r in enrolled.values()]), list(enrolled))
    nonmated = np.array([g.best(table[r], metric)[1] for r in impostors if r in table])
    threshold = threshold_at_fpir(nonmated, fpir)
    stream = template_update_stream(people, impostors)
    runs = {"no_updates": simulate(table, metric, people, stream, threshold, None, max_auto)}
    for m in margins:
        runs[f"updates_margin_{m:g}"] = simulate(table, metric, people, stream, threshold, m, max_auto)
    return {"people": len(enrolled), "mated_probes": runs["no_updates"]["mated"],
            "impostor_probes": len(nonmated), "fpir_target": fpir, "threshold": threshold,
            "max_per_person": max_auto, "margins": list(margins), "runs": runs}
