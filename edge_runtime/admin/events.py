"""Events: what the door decided and what administrators did, from the store's audit log; CSV export."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Response, render_template, request

from ..store import AuditRow
from .services import store

bp = Blueprint("events", __name__)

DEFAULT_LIMIT = 200
MAX_LIMIT = 10000
CSV_FIELDS = ("id", "time", "event", "person", "details")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FilterError(ValueError):
    """An event filter (time, limit) cannot be understood."""


@dataclass(frozen=True)
class EventFilter:
    """A validated events query; the only source of the page's links (never the raw query arguments)."""

    event: str | None = None
    person: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT

    def query_args(self) -> dict:
        """The filter as query arguments for url_for: the fields that are set, nothing else."""
        args = {"event": self.event, "person": self.person, "since": _number(self.since),
                "until": _number(self.until), "limit": self.limit if self.limit != DEFAULT_LIMIT else None}
        return {k: v for k, v in args.items() if v is not None}


def _number(ts: float | None) -> int | float | None:
    """A timestamp as written in a link: 1000 rather than 1000.0."""
    return int(ts) if ts is not None and ts.is_integer() else ts


def parse_time(text: str, field: str) -> float | None:
    """Seconds since the epoch from '' (None), a number, or ISO 8601 (no zone = the device's local time).

    Raises FilterError unless the time is one the device's clock can show (finite, within its calendar).
    """
    text = (text or "").strip()
    if not text:
        return None
    try:
        ts = float(text)
    except ValueError:
        try:
            ts = datetime.fromisoformat(text).timestamp()
        except ValueError:
            raise FilterError(f"{field}={text!r} is not a time: use ISO 8601 such as 2024-05-01T08:00 or "
                              f"seconds since 1970") from None
    try:
        datetime.fromtimestamp(ts)
    except (OverflowError, OSError, ValueError):
        raise FilterError(f"{field}={text!r} is outside the dates this device can show") from None
    return ts


def input_time(ts: float | None) -> str:
    """A filter time as a datetime-local input's value (device local time), '' when unset."""
    if ts is None:
        return ""
    t = datetime.fromtimestamp(ts)
    return t.strftime("%Y-%m-%dT%H:%M:%S" if t.second else "%Y-%m-%dT%H:%M")


def parse_filter(args) -> EventFilter:
    """An EventFilter from query arguments event, person, since, until, limit. Raises FilterError."""
    try:
        limit = int(args.get("limit") or DEFAULT_LIMIT)
    except ValueError:
        raise FilterError(f"limit={args.get('limit')!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit={limit} must be between 1 and {MAX_LIMIT}")
    return EventFilter((args.get("event") or "").strip() or None, (args.get("person") or "").strip() or None,
                       parse_time(args.get("since"), "since"), parse_time(args.get("until"), "until"), limit)


def query(f: EventFilter) -> list[AuditRow]:
    return store().audit(limit=f.limit, event=f.event, since=f.since, until=f.until, person=f.person)


def iso(ts: float) -> str:
    """Local time with its UTC offset, to the second."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def row_json(r: AuditRow) -> dict:
    return {"id": r.id, "ts": r.ts, "time": iso(r.ts), "event": r.event, "person": r.person_name,
            "details": r.details}


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas (a name such as '=HYPERLINK(...)' stays text)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def to_csv(rows: list[AuditRow]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        w.writerow([r.id, iso(r.ts), _cell(r.event), _cell(r.person_name or ""),
                    _cell(json.dumps(r.details, ensure_ascii=False, sort_keys=True))])
    return out.getvalue()


def event_kinds() -> list[str]:
    return [r[0] for r in store().conn.execute("SELECT DISTINCT event FROM audit ORDER BY event").fetchall()]


@bp.route("/events")
def index():
    try:
        f = parse_filter(request.args)
    except FilterError as e:
        return render_template("events.html", rows=[], f=EventFilter(), kinds=event_kinds(), thumbs={},
                               error=str(e), input_time=input_time), 400
    rows = query(f)
    thumbs = {p.name: p.id for p in store().people() if p.images}
    return render_template("events.html", rows=rows, f=f, kinds=event_kinds(), thumbs=thumbs, iso=iso,
                           input_time=input_time)


@bp.route("/events.csv")
def export():
    try:
        f = parse_filter(request.args)
    except FilterError as e:
        return Response(str(e) + "\n", 400, mimetype="text/plain")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Response(to_csv(query(f)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="facegate-events-{stamp}.csv"'})
