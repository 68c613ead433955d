"""When to open the door, from a stream of per-frame recognition results. Pure and deterministic.

Rules:
  * every frame is one slot in the history of the last n frames (a frame with no face, or an
    unknown face, is a slot that agrees with nobody);
  * the door opens when one known person (Match.name not None, i.e. past the threshold) holds at
    least k of the last n slots, counting only frames from the last `window_s` seconds;
  * unknown faces never open the door;
  * a frame judged a presentation attack (liveness below the threshold) is a slot that agrees with
    nobody, so it never counts toward opening; with liveness on (`min_live_frames` > 0) the door opens
    only when, of the k matching frames, at least `min_live_frames` were judged live (a frame whose
    liveness could not be checked matches but is not live: fail-secure);
  * after an opening the history is cleared and, for `cooldown_s`, nothing opens it again and
    frames are not recorded, so the same person needs k fresh matches after the cooldown.

Each update returns one Decision:
  "open"     open the door now for `name` (given once per opening);
  "cooldown" a face is seen within cooldown_s of the last opening: nothing happens;
  "deny"     a face is seen and the door stays locked: reason "unknown" (nobody matched past the
             threshold), "agreement" (a known person, but only `votes` of the last n frames, k needed),
             ATTACK ("presentation attack suspected": this frame's face was judged an attack) or
             "liveness" (k frames agree but fewer than `min_live_frames` of them were judged live);
  "none"     no face in this frame.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..matching import Match

OPEN, COOLDOWN, DENY, NONE = "open", "cooldown", "deny", "none"
ATTACK = "presentation attack suspected"        # the deny reason of a frame judged an attack


@dataclass(frozen=True)
class Decision:
    """What to do after one frame.

    Attributes:
        action: "open", "cooldown", "deny" or "none" (see the module docstring).
        name: the person the decision is about (the matched person for "open" and for a
            known-but-not-yet-agreed "deny"), else None.
        votes: frames among the counted recent ones that matched `name` (0 when name is None).
        reason: "" for "open"/"none"; "unknown", "agreement", ATTACK or "liveness" for "deny";
            "cooldown" for "cooldown".
        score: the frame's match score, or None when no face.
        liveness: the frame's liveness score (probability real, 0..1), None when not checked.
    """

    action: str
    name: str | None = None
    votes: int = 0
    reason: str = ""
    score: float | None = None
    liveness: float | None = None


class DoorDecider:
    """k-of-n agreement with a cooldown.

    Args:
        k: frames among the last n that must match the same known person (1 <= k <= n).
        n: number of recent frames considered.
        cooldown_s: seconds after an opening during which the door is not opened again (>= 0).
        window_s: when set, frames older than this many seconds before the current one do not count.
        min_live_frames: of the k matching frames, how many must have been judged live (0 = liveness
            not checked: the door does not ask for it; see `require_live`).
    Timestamps are seconds on a monotonic clock and must not decrease.
    """

    def __init__(self, k: int = 3, n: int = 5, cooldown_s: float = 5.0, window_s: float | None = None,
                 min_live_frames: int = 0):
        if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n):
            raise ValueError(f"need whole numbers 1 <= k <= n, got k={k!r}, n={n!r}")
        if not (cooldown_s >= 0 and math.isfinite(cooldown_s)):
            raise ValueError(f"cooldown_s must be a finite number >= 0, got {cooldown_s!r}")
        if window_s is not None and not (window_s > 0):
            raise ValueError(f"window_s must be > 0 or None, got {window_s!r}")
        self.k, self.n, self.cooldown_s, self.window_s = k, n, float(cooldown_s), window_s
        self.require_live(min_live_frames)
        self._history: deque[tuple[float, str | None, bool]] = deque(maxlen=n)
        self._opened_at: float | None = None
        self._last_ts: float | None = None

    @classmethod
    def from_config(cls, cfg) -> "DoorDecider":
        """From a config.DecisionConfig."""
        return cls(cfg.k, cfg.n, cfg.cooldown_s, cfg.window_s)

    def require_live(self, min_live_frames: int) -> None:
        """From now on open only when at least `min_live_frames` of the k matching frames were judged live
        (0: liveness is not checked). Raises ValueError unless 0 <= min_live_frames <= k."""
        if not (isinstance(min_live_frames, int) and 0 <= min_live_frames <= self.k):
            raise ValueError(f"min_live_frames must be a whole number from 0 to k = {self.k} (of the k matching "
                             f"frames, how many must be live), got {min_live_frames!r}")
        self.min_live_frames = min_live_frames

    def reset(self) -> None:
        """Forget the history and any cooldown."""
        self._history.clear()
        self._opened_at = None
        self._last_ts = None

    def update(self, ts: float, match: Match | None, live: bool | None = None,
               liveness: float | None = None) -> Decision:
        """Feed one frame's result and get the decision for it.

        Args:
            ts: the frame's time (monotonic seconds).
            match: the face the door decides on, None = no face in the frame.
            live: whether that face was judged live (True), an attack (False) or not checked (None).
            liveness: its liveness score, carried into the Decision (for events and the audit log).
        """
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError(f"timestamp must be finite, got {ts!r}")
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"timestamps must not decrease ({ts} after {self._last_ts}); use a monotonic clock")
        self._last_ts = ts
        score = None if match is None else match.score
        if match is None:
            liveness = None
        if self._opened_at is not None and ts - self._opened_at < self.cooldown_s:
            if match is None:
                return Decision(NONE)
            return Decision(COOLDOWN, match.name, 0, "cooldown", score, liveness)
        name = None if match is None or live is False else match.name
        self._history.append((ts, name, live is True))
        if match is None:
            return Decision(NONE)
        if live is False:
            return Decision(DENY, match.name, 0, ATTACK, score, liveness)
        if name is None:
            return Decision(DENY, None, 0, "unknown", score, liveness)
        recent = [ok for t, nm, ok in self._history if nm == name and (self.window_s is None or ts - t <= self.window_s)]
        votes = len(recent)
        if votes >= self.k and sum(recent) >= self.min_live_frames:
            self._opened_at = ts
            self._history.clear()
            return Decision(OPEN, name, votes, "", score, liveness)
        return Decision(DENY, name, votes, "agreement" if votes < self.k else "liveness", score, liveness)
