"""Taking a deleted person's names out of what is kept about others (audit rows, event lines).

The rule, for JSON values: a string equal to one of the names becomes null; in a field that holds a
whole name (`NAME_KEYS`) nothing else changes, so another person whose name contains this one keeps
theirs; in any other string each mention of a name as a whole word (not inside a longer word) becomes
"[erased]".
"""
from __future__ import annotations

import json
import re
from typing import Sequence

ERASED = "[erased]"
NAME_KEYS = frozenset({"person", "candidate", "person_name", "name", "from", "previous", "new_name"})


def mentions(text: str, names: Sequence[str]) -> bool:
    """Whether `text` (a JSON line or document) may hold one of `names`, raw or \\u-escaped (a quick
    superset test; `scrubbed` decides)."""
    return any(n in text or json.dumps(n)[1:-1] in text for n in names)


def _words(names: Sequence[str]) -> re.Pattern:
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alts})(?!\w)")


def scrubbed(value, names: Sequence[str], _key: str | None = None):
    """A JSON value without `names` (see the module docstring for the rule)."""
    if isinstance(value, dict):
        return {k: scrubbed(v, names, k) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, names, _key) for v in value]
    if isinstance(value, str):
        if value in names:
            return None
        if _key not in NAME_KEYS:
            return _words(names).sub(ERASED, value)
    return value


def names_in(value, names: Sequence[str]) -> bool:
    """Whether a JSON value names one of `names` by the same rule (what `scrubbed` would change)."""
    return scrubbed(value, names) != value


def scrubbed_line(line: str, names: Sequence[str]) -> str:
    """One text line without `names`: a JSON line re-written by `scrubbed` (keeping its newline), any
    other line with each whole-word mention (raw or \\u-escaped) replaced by "[erased]"."""
    try:
        return json.dumps(scrubbed(json.loads(line), names), ensure_ascii=False) + ("\n" if line.endswith("\n") else "")
    except json.JSONDecodeError:
        return _words([*names, *(json.dumps(n)[1:-1] for n in names)]).sub(ERASED, line)
