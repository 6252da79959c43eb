"""ServiceTrade timecard JSON → canonical `Timecard` (shape in docs/source-formats.md).

ServiceTrade publishes no timecard API, so this is Crosswalk's documented import shape: one
approved weekly timecard per technician, entries of three kinds (labor on a job, clock-in/out
pairs, generic time such as PTO or holiday whose pay type comes from its label).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from syncengine.canonical import Timecard, TimeEntry, TimeKind
from syncengine.money import ZERO
from syncengine.sources.servicetrade import InvalidDocument, _Reader

HOURS_IN_A_DAY = Decimal(24)


def split_timecards(envelope: Any) -> list[Any]:
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise InvalidDocument(['body: expected a JSON object with a "data" member'])
    data = envelope["data"]
    if isinstance(data, dict) and isinstance(data.get("timecards"), list):
        return list(data["timecards"])
    if isinstance(data, dict):
        return [data]
    raise InvalidDocument(['data: expected a timecard object or {"timecards": [...]}'])


def parse_timecard(data: Any) -> Timecard:
    errors: list[str] = []
    root = _Reader(errors, "data", data)
    technician = root.child("technician")
    entries = root.obj.get("entries")
    if not isinstance(entries, list) or not entries:
        errors.append("data.entries: expected a non-empty list of time entries")
        entries = []
    card = Timecard(
        source_id=root.text("id"),
        technician_id=technician.text("id"),
        technician=technician.text("name"),
        week_starting=_date(root, "weekStarting") or date.min,
        status=root.text("status").lower(),
        entries=tuple(
            _entry(_Reader(errors, f"data.entries[{index}]", entry))
            for index, entry in enumerate(entries)
        ),
    )
    if errors:
        raise InvalidDocument(errors)
    return card


def _entry(reader: _Reader) -> TimeEntry:
    kind = reader.text("kind", required=False).lower() or TimeKind.LABOR
    if kind not in TimeKind.ALL:
        reader.errors.append(
            f"{reader.path}.kind: {kind!r} is not one of {', '.join(TimeKind.ALL)}"
        )
    hours = reader.decimal("hours") or ZERO
    if not ZERO < hours <= HOURS_IN_A_DAY:
        reader.errors.append(f"{reader.path}.hours: {hours} is not between 0 and 24")
    entry = TimeEntry(
        source_id=reader.text("id"),
        work_date=_date(reader, "date") or date.min,
        kind=kind,
        hours=hours,
        labor_type=reader.text("laborType", required=kind == TimeKind.GENERIC) or "standard",
        job_number=reader.text("jobNumber", required=kind == TimeKind.LABOR),
        service_line=reader.text("serviceLine", required=False),
        office=reader.text("office", required=False),
        clock_in=reader.text("clockIn", required=kind == TimeKind.CLOCK),
        clock_out=reader.text("clockOut", required=kind == TimeKind.CLOCK),
    )
    return entry


def _date(reader: _Reader, name: str) -> date | None:
    text = reader.text(name)
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        reader.errors.append(f"{reader.path}.{name}: {text!r} is not a date (YYYY-MM-DD)")
        return None
