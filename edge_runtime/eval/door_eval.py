"""The door on LFW at the operating point it really uses: false opens and misses, with counts and intervals.

People: the *calibration* people (LFW people in no pair of pairs.txt) are what the bundle's score
model was measured on, so they are never used here. Everything below uses only the *evaluation*
people (everyone who appears in pairs.txt).

A trial (`door_trial`) enrolls N evaluation people with >= 2 photos (a seeded random choice), each
with their first min(m, photos - 1) photos, through the door's own search (TemplateGallery +
operating_point). Their next photos (at most `max_probes` each) are the genuine attempts; every
photo (at most `max_probes` each) of the evaluation people who were not enrolled is a stranger's
attempt. A stranger's attempt opens when the search names anyone; a genuine attempt is missed unless
the search names that person. Known LFW name aliases (one person filed under two names) are not
strangers of each other (`LFW_ALIASES`).
"""
from __future__ import annotations

import math

import numpy as np

from ..matching import TemplateGallery
from ..operating_point import ScoreModel, measure_model, operating_point
from .openset import pair_scores

# One person filed under two LFW names, found by listing the highest-scoring pairs of different names among
# the evaluation people and checking each pair of photos by eye: spelling variants of one name, and photos
# filed under the wrong name (the second name's photo shows the first person).
LFW_ALIASES: tuple[tuple[str, str], ...] = (
    ("Joseph_Blatter", "Sepp_Blatter"),
    ("Hasan_Wirayuda", "Hassan_Wirajuda"),
    ("Nan_Wang", "Wang_Nan"),
    ("Mireya_Moscoso", "Mireya_Elisa_Moscoso_Rodriguez"),
    ("Prince_Felipe", "Felipe_De_Borbon"),
    ("Chyung_Dai-chul", "Dai_Chul_Chyung"),
    ("Cristina_Fernandez", "Cristina_Kirchner"),
    ("Uday_Hussein", "Odai_Hussein"),
    ("Jon_Gruden", "John_Gruden"),
    ("John_Burnett", "John_Barnett"),
    ("Gabrielle_Rose", "Martha_Bowen"),      # the same photo under both names
    ("Diana_Taurasi", "Shavon_Earp"),         # Shavon_Earp_0001 shows Diana Taurasi
)


def aliases_of(name: str) -> set[str]:
    """The other LFW names of `name` (empty for most people)."""
    return {b if a == name else a for a, b in LFW_ALIASES if name in (a, b)}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a rate of k events in n trials."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def fit_model(name: str, table: dict, calibration: dict[str, list[str]], metric) -> ScoreModel:
    """A ScoreModel from the calibration people's photos, as `facegate build-bundle` measures it
    (used for a peer, whose score model no bundle carries)."""
    rels = [r for v in calibration.values() for r in v]
    return measure_model(name, *pair_scores(table, rels, metric))


def _rate(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"count": int(k), "of": int(n), "rate": k / n if n else float("nan"), "ci95": [lo, hi]}


def door_trial(table: dict, metric, model: ScoreModel, evaluation: dict[str, list[str]], enrolled: int,
               photos: int, false_open_rate: float, seed: int = 0, max_probes: int = 10,
               candidates: list[str] | None = None, probe_from: int | None = None) -> dict:
    """Enroll, search and count at the door's operating point (module docstring).

    Args:
        table: {relpath: float32 (D,) embedding}; photos without a face are absent (a genuine attempt
            without a face is a miss, a stranger's cannot open).
        metric: the embedder's metric (as TemplateGallery takes it).
        model: its score model (measured on calibration people).
        enrolled: N people to enroll (fewer if fewer candidates).
        photos: enrollment photos per person (at most photos - 1 of each person's).
        candidates: who may be enrolled (default: evaluation people with >= 2 photos).
        probe_from: genuine attempts start at this photo index (default: right after the enrolled ones).
    Returns:
        {"people", "templates", "photos", "threshold", "expected_false_open", "expected_miss",
         "false_open": rate dict, "miss": rate dict} (rate dict: count, of, rate, ci95).
    """
    pool = sorted(candidates if candidates is not None else [p for p, v in evaluation.items() if len(v) >= 2])
    chosen = [str(p) for p in np.random.default_rng(seed).permutation(pool)[:enrolled]]
    names, pids, rows, probes, owners = [], [], [], [], []
    for i, p in enumerate(chosen):
        rel = evaluation[p]
        k = min(photos, len(rel) - 1)
        kept = [r for r in rel[:k] if r in table]
        names += [p] * len(kept)
        pids += [i] * len(kept)
        rows += [table[r] for r in kept]
        start = k if probe_from is None else probe_from
        for r in rel[start:start + max_probes]:
            probes.append(r)
            owners.append(p)
    dim = len(next(iter(table.values())))
    enrolled = TemplateGallery(tuple(names), tuple(pids), np.asarray(rows, np.float32).reshape(-1, dim), metric)
    op = operating_point(model, len(enrolled), false_open_rate, people=len(enrolled.people))
    excluded = set(chosen) | {a for p in chosen for a in aliases_of(p)}
    strangers = [r for p, v in evaluation.items() if p not in excluded for r in v[:max_probes]]

    def named(rels: list[str]) -> list[str | None]:
        have = [r for r in rels if r in table]
        found = dict(zip(have, (m.name for m in enrolled.nearest(np.stack([table[r] for r in have]), metric,
                                                                op.threshold)))) if have else {}
        return [found.get(r) for r in rels]

    hits = sum(n == o for n, o in zip(named(probes), owners))
    opens = sum(n is not None for n in named(strangers))
    return {"people": len(enrolled.people), "templates": len(enrolled), "photos": photos, "threshold": op.threshold,
            "expected_false_open": op.expected_false_open, "expected_miss": op.expected_miss,
            "false_open": _rate(opens, len(strangers)), "miss": _rate(len(probes) - hits, len(probes))}


def door_report(table: dict, metric, model: ScoreModel, evaluation: dict[str, list[str]], false_open_rate: float,
                sizes=(10, 100, 1000), photo_counts=(1, 5), check_rates=(1e-2, 1e-3), seed: int = 0) -> dict:
    """Every trial the operating-point report shows, for one embedder (or peer).

    Returns:
        {"target": false_open_rate,
         "trials": [door_trial for each N in sizes x photos in photo_counts, at the target],
         "photos": [door_trial with 1, 3, 5 photos of the people with >= 6 photos, the same genuine attempts],
         "tail_check": [door_trial at each of check_rates, one photo, for each N: predicted vs measured]}
    """
    trials = [door_trial(table, metric, model, evaluation, n, m, false_open_rate, seed)
              for n in sizes for m in photo_counts]
    six = [p for p, v in evaluation.items() if len(v) >= 6]
    photos = [door_trial(table, metric, model, evaluation, len(six), m, false_open_rate, seed, candidates=six,
                         probe_from=5) for m in (1, 3, 5)]
    check = [dict(door_trial(table, metric, model, evaluation, n, 1, r, seed), target=r)
             for r in check_rates for n in sizes]
    return {"target": false_open_rate, "trials": trials, "photos": photos, "tail_check": check}


def cohort_comparison(table: dict, metric, calibration: dict[str, list[str]], evaluation: dict[str, list[str]],
                      sizes=(100, 1000), rates=(1e-2, 1e-3), seed: int = 0, max_probes: int = 10) -> dict:
    """Score normalisation against a cohort (Z-norm: each template's score minus the mean of its scores against
    the calibration people's photos, over their standard deviation), compared with raw scores at the same
    measured false-open rate (threshold set on the strangers' best scores), one enrollment photo.

    Photos absent from `table` (no face, or refused by the quality gate) follow door_trial: a template missing
    enrolls nobody, a genuine attempt missing is a miss, a stranger's cannot open (it stays in the count).

    Returns {"N=<n>": {"<rate>": {"raw": miss rate, "cohort": miss rate}}}.
    """
    from ..matching import similarity

    cohort = np.stack([table[r] for v in calibration.values() for r in v if r in table])
    dim = cohort.shape[1]

    def scores(rels: list[str], t: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """float64 (len(rels), T) similarities to the templates t; -inf for a missing photo or template."""
        have = np.array([r in table for r in rels], bool)
        s = np.full((len(rels), len(t)), -np.inf)
        if have.any() and ok.any():
            s[np.ix_(have, ok)] = similarity(np.stack([table[r] for r in rels if r in table]), t[ok], metric)
        return s
    pool = sorted(p for p, v in evaluation.items() if len(v) >= 2)
    out = {}
    for n in sizes:
        chosen = [str(p) for p in np.random.default_rng(seed).permutation(pool)[:n]]
        temp = [evaluation[p][0] for p in chosen]
        probes = [(r, i) for i, p in enumerate(chosen) for r in evaluation[p][1:1 + max_probes]]
        excluded = set(chosen) | {a for p in chosen for a in aliases_of(p)}
        strangers = [r for p, v in evaluation.items() if p not in excluded for r in v[:max_probes]]
        ok = np.array([r in table for r in temp], bool)
        t = np.stack([table[r] if r in table else np.zeros(dim, np.float32) for r in temp])
        cs = np.zeros((len(cohort), len(t)))
        cs[:, ok] = similarity(cohort, t[ok], metric)
        mu, sd = cs.mean(0), np.maximum(cs.std(0), 1e-12)
        gen = scores([r for r, _ in probes], t, ok)
        imp = scores(strangers, t, ok)
        owner = np.array([i for _, i in probes])
        row = {}
        for rate in rates:
            res = {}
            for kind, f in (("raw", lambda s: s), ("cohort", lambda s: (s - mu) / sd)):
                g, s = f(gen), f(imp)
                best = np.sort(s.max(1))[::-1]
                thr = np.nextafter(best[int(rate * len(best))], np.inf)
                hit = (g.argmax(1) == owner) & (g.max(1) >= thr)
                res[kind] = float(1 - hit.mean())
            row[f"{rate:g}"] = res
        out[f"N={n}"] = row
    return out


def _photos(m: int) -> str:
    return "1" if m == 1 else f"up to {m}"


def _pct(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{r['rate'] * 100:.3g}% ({r['count']}/{r['of']}; 95% CI {lo * 100:.2g}-{hi * 100:.2g}%)"


def door_markdown(report: dict) -> str:
    """The operating-point report (`bench openset` "door" entry) as Markdown."""
    d = report
    lines = ["# The door at its operating point on LFW",
             "",
             f"Generated by `facegate bench openset --markdown` ({d['backend']}). Target false-open rate "
             f"(`[recognition] false_open_rate`): **{d['target']:g}** per attempt. Every number below is measured at "
             "the threshold the door itself derives (bundle score model from the calibration people, the number of "
             "enrolled templates), not at an oracle threshold.",
             "",
             f"People: the score models were measured on the {d['calibration_people']} calibration people "
             f"({d['calibration_photos']} photos: LFW people in no pair of pairs.txt); every trial uses only the "
             f"{d['evaluation_people']} evaluation people (everyone in pairs.txt). Enrolled people are a seeded "
             "random choice of evaluation people with at least 2 photos, enrolled with their first photos; their next "
             "photos (at most 10 each) are the genuine attempts; every photo (at most 10 each) of the evaluation "
             "people not enrolled is a stranger's attempt. Known LFW name aliases are not strangers of each other "
             f"({len(d['aliases'])} pairs: " + ", ".join(f"{a}/{b}" for a, b in d["aliases"]) + ").",
             ""]
    for name, r in d["embedders"].items():
        lines += [f"## {name}", "",
                  "| enrolled | photos each | templates | threshold | false opens (measured) | expected | "
                  "misses (measured) | expected (1 photo) |", "|---|---|---|---|---|---|---|---|"]
        for t in r["trials"]:
            lines.append(f"| {t['people']} | {_photos(t['photos'])} "
                         f"| {t['templates']} | {t['threshold']:.3f} | {_pct(t['false_open'])} | "
                         f"{t['expected_false_open']:.2g} | {_pct(t['miss'])} | {t['expected_miss'] * 100:.3g}% |")
        lines += ["", f"Enrollment photos ({r['photos'][0]['people']} people with at least 6 photos; the same genuine "
                  "attempts, photos 6 on):", "",
                  "| photos each | templates | threshold | misses | false opens |", "|---|---|---|---|---|"]
        for t in r["photos"]:
            lines.append(f"| {t['photos']} | {t['templates']} | {t['threshold']:.3f} | {_pct(t['miss'])} | "
                         f"{_pct(t['false_open'])} |")
        lines += ["", "Tail model check (one photo each): the door's prediction against what can be measured:", "",
                  "| target | enrolled | expected false opens | measured |", "|---|---|---|---|"]
        for t in r["tail_check"]:
            lines.append(f"| {t['target']:g} | {t['people']} | {t['expected_false_open']:.2g} | {_pct(t['false_open'])} |")
        if r.get("cohort"):
            lines += ["", "Score normalisation against a cohort of calibration people (Z-norm per template), miss rate "
                      "at the same measured false-open rate, one photo each:", "",
                      "| enrolled | false-open rate | raw scores | cohort-normalised |", "|---|---|---|---|"]
            for n, row in r["cohort"].items():
                for rate, v in row.items():
                    lines.append(f"| {n[2:]} | {rate} | {v['raw'] * 100:.2f}% | {v['cohort'] * 100:.2f}% |")
        lines.append("")
    return "\n".join(lines) + "\n"
