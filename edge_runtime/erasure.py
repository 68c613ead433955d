"""Taking a deleted person's names out of what is kept about others (audit rows, event lines)."""
from __future__ import annotations

import json
from typing import Sequence

ERASED = "[erased]"


def mentions(text: str, names: Sequence[str]) -> bool:
    """Whether `text` (a JSON line or document) holds one of `names`, raw or \\u-escaped."""
    return any(n in text or json.dumps(n)[1:-1] in text for n in names)


def scrubbed(value, names: Sequence[str]):
    """A JSON value with every string equal to one of `names` made None and every other mention of one
    (raw or \\u-escaped) replaced by "[erased]"."""
    if isinstance(value, dict):
        return {k: scrubbed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, names) for v in value]
    if isinstance(value, str):
        if value in names:
            return None
        for n in sorted(names, key=len, reverse=True):
            value = value.replace(n, ERASED).replace(json.dumps(n)[1:-1], ERASED)
    return value


def scrubbed_line(line: str, names: Sequence[str]) -> str:
    """One text line without `names`: a JSON line re-written by `scrubbed` (keeping its newline), any
    other line with each mention replaced by "[erased]"."""
    try:
        return json.dumps(scrubbed(json.loads(line), names), ensure_ascii=False) + ("\n" if line.endswith("\n") else "")
    except json.JSONDecodeError:
        return scrubbed(line, names) or ERASED
