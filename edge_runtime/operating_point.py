"""The door's operating point: a threshold from a target false-open rate and the number of people searched.

A stranger at the door is compared with every enrolled entry (one per person, see matching). If one
comparison of a stranger with one enrolled entry scores at least t with probability p(t) (the impostor
tail), the chance that *any* of N entries does is at most N * p(t) (the union bound: it holds whatever
the correlation between the comparisons, e.g. a stranger who resembles many people). So for a target
false-open rate F per attempt the door uses

    t(F, N) = the score whose impostor exceedance is p = F / N.

p(t) is measured when the bundle is built, on the calibration people only (LFW people who appear in
no pair of pairs.txt), never on people used for evaluation. Where p lies beyond what those
comparisons can show (about 1 / comparisons), a generalised Pareto tail fitted to the largest
impostor scores (peaks over threshold) gives it; its shape is never taken lighter than exponential. The expected miss rate per attempt is the fraction
of the calibration people's genuine comparisons below t.

An attempt is counted as one frame: a stranger who resembles someone resembles them in every frame,
so k-of-n voting does not lower the false-open rate, and it is not credited.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import FacegateError


class OperatingPointError(FacegateError):
    """An operating-point description is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class GpdTail:
    """A generalised Pareto tail above `u`: P(s >= u + y) = p_u * (1 + xi * y / sigma) ** (-1 / xi).

    Attributes:
        u: the score above which the tail is modelled.
        p_u: measured fraction of impostor comparisons at or above u.
        xi: shape (0 = exponential tail, < 0 bounded, > 0 heavy).
        sigma: scale (> 0), in score units.
    """

    u: float
    p_u: float
    xi: float
    sigma: float

    def exceedance(self, t: float) -> float:
        """P(s >= t) for t >= u."""
        y = max(float(t) - self.u, 0.0)
        if abs(self.xi) < 1e-9:
            return self.p_u * math.exp(-y / self.sigma)
        base = 1.0 + self.xi * y / self.sigma
        return 0.0 if base <= 0 else self.p_u * base ** (-1.0 / self.xi)

    def quantile(self, p: float) -> float:
        """The score t >= u with exceedance(t) = p, for 0 < p <= p_u."""
        r = float(p) / self.p_u
        if abs(self.xi) < 1e-9:
            return self.u - self.sigma * math.log(r)
        return self.u + self.sigma / self.xi * (r ** (-self.xi) - 1.0)


def fit_gpd(exceedances: np.ndarray) -> tuple[float, float]:
    """(xi, sigma) of a generalised Pareto distribution by probability-weighted moments (Hosking & Wallis 1987).

    Args:
        exceedances: float (K,) values above the tail threshold minus it (>= 0), K >= 10.
    """
    y = np.sort(np.asarray(exceedances, np.float64))
    n = len(y)
    if n < 10 or not np.all(np.isfinite(y)) or y[0] < 0:
        raise ValueError(f"need at least 10 finite non-negative exceedances, got {n}")
    a0 = y.mean()
    a1 = np.mean(y * (1.0 - (np.arange(1, n + 1) - 0.35) / n))
    if a0 <= 0 or a0 - 2 * a1 <= 0:
        raise ValueError("degenerate exceedances (all equal)")
    k = a0 / (a0 - 2 * a1) - 2.0            # Hosking's k = -xi
    sigma = 2.0 * a0 * a1 / (a0 - 2 * a1)
    return float(-k), float(sigma)


@dataclass(frozen=True)
class ScoreModel:
    """The impostor and genuine score distributions of one embedder (or fusion) of a bundle.

    Attributes:
        embedder: the embedder or fusion name it was measured for.
        impostor_pairs: impostor comparisons measured (calibration people).
        probs: float exceedance probabilities, descending, from 1 down to the tail's p_u.
        scores: the measured impostor score at each of `probs` (ascending with them descending).
        tail: the fitted tail beyond the last of `probs`.
        genuine: sorted genuine scores of the calibration people (one photo against another).
        normalization: "none" or "cohort" (scores z-normalised per enrolled entry against the
            bundle's cohort, see cohort.py); the model describes scores of that kind.
    """

    embedder: str
    impostor_pairs: int
    probs: tuple[float, ...]
    scores: tuple[float, ...]
    tail: GpdTail
    genuine: tuple[float, ...]
    normalization: str = "none"

    def __post_init__(self):
        if len(self.probs) != len(self.scores) or len(self.probs) < 2:
            raise OperatingPointError(f"operating point of {self.embedder}: {len(self.probs)} probabilities and "
                                      f"{len(self.scores)} scores; need the same number, at least 2")
        p = np.asarray(self.probs, float)
        s = np.asarray(self.scores, float)
        if np.any(np.diff(p) >= 0) or np.any(np.diff(s) < 0) or not (0 < p[-1] and p[0] <= 1):
            raise OperatingPointError(f"operating point of {self.embedder}: probabilities must fall and scores "
                                      f"rise, within (0, 1]")
        t = self.tail
        if not (t.sigma > 0 and math.isfinite(t.xi) and math.isclose(t.p_u, p[-1], rel_tol=1e-9)
                and math.isclose(t.u, s[-1], rel_tol=1e-9, abs_tol=1e-12)):
            raise OperatingPointError(f"operating point of {self.embedder}: the tail must start at the last "
                                      f"measured point (u = {s[-1]}, p_u = {p[-1]}) with sigma > 0")
        if self.normalization not in ("none", "cohort"):
            raise OperatingPointError(f"unknown score normalisation {self.normalization!r}")
        if not self.genuine:
            raise OperatingPointError(f"operating point of {self.embedder} has no genuine scores")

    def exceedance(self, t: float) -> float:
        """Fraction of impostor comparisons scoring >= t (measured above the tail, modelled in it)."""
        s = np.asarray(self.scores, float)
        if t >= s[-1]:
            return self.tail.exceedance(t)
        # log-linear between measured points; below the first (p = 1 when measured by measure_model): all
        return float(np.exp(np.interp(t, s, np.log(np.asarray(self.probs, float)), left=0.0)))

    def quantile(self, p: float) -> float:
        """The score whose impostor exceedance is p (0 < p <= probs[0])."""
        if not 0 < p <= self.probs[0]:
            raise OperatingPointError(f"a per-comparison false-match rate must lie in (0, {self.probs[0]}]; got {p}")
        if p <= self.probs[-1]:
            return self.tail.quantile(p)
        lp = np.log(np.asarray(self.probs, float))
        return float(np.interp(math.log(p), lp[::-1], np.asarray(self.scores, float)[::-1]))

    def miss_rate(self, t: float) -> float:
        """Fraction of genuine comparisons scoring below t."""
        g = np.asarray(self.genuine, float)
        return float(np.searchsorted(g, t, side="left") / len(g))

    def to_json(self) -> dict:
        return {"embedder": self.embedder, "impostor_pairs": self.impostor_pairs, "probs": list(self.probs),
                "scores": list(self.scores), "tail": {"u": self.tail.u, "p_u": self.tail.p_u, "xi": self.tail.xi,
                                                       "sigma": self.tail.sigma},
                "genuine": list(self.genuine), "normalization": self.normalization}

    @classmethod
    def from_json(cls, d: dict) -> "ScoreModel":
        """Raises OperatingPointError when a field is missing or bad."""
        try:
            t = d["tail"]
            return cls(str(d["embedder"]), int(d["impostor_pairs"]), tuple(float(v) for v in d["probs"]),
                       tuple(float(v) for v in d["scores"]),
                       GpdTail(float(t["u"]), float(t["p_u"]), float(t["xi"]), float(t["sigma"])),
                       tuple(sorted(float(v) for v in d["genuine"])), str(d.get("normalization", "none")))
        except (KeyError, TypeError, ValueError) as e:
            raise OperatingPointError(f"operating point entry is incomplete: missing or bad field {e}") from None


def measure_model(embedder: str, impostor: np.ndarray, genuine: np.ndarray, normalization: str = "none",
                  tail_fraction: float = 1e-3, min_tail: int = 200, points_per_decade: int = 8) -> ScoreModel:
    """A ScoreModel from measured comparison scores.

    Args:
        impostor: float (M,) scores of comparisons between different people.
        genuine: float (G,) scores of comparisons between two photos of one person.
        tail_fraction: the tail is fitted to the largest max(tail_fraction * M, min_tail) impostor scores.
    """
    imp = np.sort(np.asarray(impostor, np.float64)[np.isfinite(impostor)])[::-1]
    m = len(imp)
    if m < 40:
        raise ValueError(f"need at least 40 impostor scores to model the tail, got {m}")
    k = min(m // 4, max(math.ceil(tail_fraction * m), min_tail))        # the largest k scores form the tail
    p_u = k / m
    u = float(imp[k - 1])
    xi, sigma = fit_gpd(imp[:k] - u)
    if xi < 0:
        # A bounded fit predicts too few strangers far out: lookalikes, twins and label errors make the far
        # tail heavier than its body suggests. Never model it lighter than exponential (sigma: its MLE).
        xi, sigma = 0.0, float(np.mean(imp[:k] - u))
    # measured points from p = 1 (the lowest impostor score) down to the tail
    probs = np.logspace(0.0, math.log10(p_u), max(2, int(round(-math.log10(p_u) * points_per_decade)) + 1))
    scores = [float(imp[max(int(round(p * m)) - 1, 0)]) for p in probs]
    scores[-1] = u
    scores = np.maximum.accumulate(scores).tolist()
    gen = np.sort(np.asarray(genuine, np.float64)[np.isfinite(genuine)])
    return ScoreModel(embedder, m, tuple(float(p) for p in probs), tuple(scores), GpdTail(u, p_u, xi, sigma),
                      tuple(float(g) for g in gen), normalization)


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold the door uses now and what it is expected to give.

    Attributes:
        people: people enrolled.
        templates: enrolled templates searched (N of the union bound: a person's best template counts).
        threshold: score at or above which a face is a known person.
        source: "false_open_rate" (derived from the target and N) or "threshold" (set in the config).
        target_false_open: the configured target per attempt (None when the threshold is set by hand).
        expected_false_open: modelled fraction of a stranger's attempts that open (min(1, N * p(t))),
            None when the bundle has no score model.
        expected_miss: fraction of an enrolled person's attempts below the threshold (calibration
            people's genuine comparisons of one photo with another), None without a score model.
    """

    people: int
    templates: int
    threshold: float
    source: str
    target_false_open: float | None
    expected_false_open: float | None
    expected_miss: float | None

    def describe(self) -> str:
        """One line for logs and `config show` (no names, nothing biometric)."""
        how = (f"from false_open_rate {self.target_false_open:g}" if self.source == "false_open_rate"
               else "set by [recognition] threshold")
        exp = ("expected false-open rate per attempt "
               + (f"{self.expected_false_open:.2g}" if self.expected_false_open is not None else "unknown")
               + ", expected miss rate per attempt "
               + (f"{self.expected_miss:.1%}" if self.expected_miss is not None else "unknown"))
        who = f"{self.people} {'person' if self.people == 1 else 'people'} enrolled"
        return (f"{who} ({self.templates} template{'' if self.templates == 1 else 's'}), threshold "
                f"{self.threshold:.4f} ({how}); {exp}")

    def to_json(self) -> dict:
        return {"people": self.people, "templates": self.templates, "threshold": self.threshold,
                "source": self.source, "target_false_open_rate": self.target_false_open,
                "expected_false_open_rate": self.expected_false_open, "expected_miss_rate": self.expected_miss}


def operating_point(model: ScoreModel | None, templates: int, false_open_rate: float,
                    threshold: float | None = None, people: int | None = None) -> OperatingPoint:
    """The door's threshold when `templates` enrolled templates are searched.

    Args:
        model: the bundle's score model for the embedder in use (None: only an explicit threshold works).
        templates: N, the number of templates a probe is compared with (0 is treated as 1).
        false_open_rate: target fraction of strangers' attempts that open the door.
        threshold: an explicit threshold (the config's), which overrides the target.
        people: people those templates belong to (for the report; default = templates).
    Raises:
        OperatingPointError when neither a model nor a threshold is given.
    """
    n = max(int(templates), 1)
    people = int(templates) if people is None else int(people)
    if threshold is not None:
        t = float(threshold)
        fo = min(1.0, n * model.exceedance(t)) if model is not None else None
        return OperatingPoint(people, int(templates), t, "threshold", None, fo,
                              model.miss_rate(t) if model is not None else None)
    if model is None:
        raise OperatingPointError("this bundle has no score model for its embedder, so the threshold cannot be "
                                  "derived from [recognition] false_open_rate; measure one with `facegate "
                                  "fit-operating-point --bundle DIR` or set [recognition] threshold")
    p = min(float(false_open_rate) / n, model.probs[0])
    t = model.quantile(p)
    return OperatingPoint(people, int(templates), t, "false_open_rate", float(false_open_rate),
                          min(1.0, n * model.exceedance(t)), model.miss_rate(t))
