"""ServiceTrade clock events → Crosswalk timecards (the shape of docs/source-formats.md#timecards).

ServiceTrade has no timecard API; its clock events (`GET /clock`, list key `events`) are the
time technicians clocked on jobs. Crosswalk turns them into one weekly timecard per technician:

- the card of technician U for the week starting Monday W (connection time zone) is **every**
  closed clock event of U whose clock-in falls in that week, read from ServiceTrade in one go.
  A card is never assembled from part of a week, so whichever way and in whatever order a week
  is read, the same events give the same card, and the idempotent timecard ingestion treats a
  repeat as unchanged;
- card id `CLK-<user id>-<week>`, one `clock` entry per event (entry id = the event id), so
  each event posts once, ever (entries already in the ERP are never sent again);
- an open event (clocked in, not out yet) is left out until it is closed; an event longer than
  24 hours or of no length is left out and named in the receipt's errors;
- ServiceTrade does not approve clock events, so a card is taken as `approved` time.

[U] The event fields are not in the sources beyond `job.id` and `appointment`: Crosswalk reads
`id`, `user {id, name | firstName, lastName}`, `job {id, number}`, `activity`, and `clockIn` /
`clockOut` as epoch seconds (or objects holding `eventTime`). `startTime`/`endTime` are read as
bounds on the clock-in time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from syncengine import services
from syncengine.erps import wire
from syncengine.models import Connection, SourceReceipt
from syncengine.sources.servicetrade_api.client import ServiceTradeClient, from_epoch, to_epoch

CLOCK = "clock"
APPROVED = "approved"
HUNDREDTH = Decimal("0.01")
MAX_SECONDS = 24 * 3600


@dataclass
class ClockResult:
    events: int = 0
    cards: int = 0
    accepted: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def week_start(moment: datetime, zone: ZoneInfo) -> date:
    local = moment.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def week_bounds(week: date, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a Monday-to-Monday week in the zone, in epoch seconds."""
    start = datetime(week.year, week.month, week.day, tzinfo=zone)
    return to_epoch(start), to_epoch(start + timedelta(days=7))


def _epoch(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("eventTime", value.get("time"))
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _object(event: dict[str, Any], name: str) -> dict[str, Any]:
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def _user(event: dict[str, Any]) -> tuple[str, str]:
    user = _object(event, "user")
    user_id = str(user.get("id", event.get("userId", ""))).strip()
    name = str(user.get("name") or "").strip()
    if not name:
        name = " ".join(str(user.get(k) or "").strip() for k in ("firstName", "lastName")).strip()
    return user_id, name or f"ServiceTrade user {user_id}"


def _card_key(event: dict[str, Any], zone: ZoneInfo) -> tuple[str, date] | None:
    user_id, _ = _user(event)
    clock_in = _epoch(event.get("clockIn"))
    if not user_id or clock_in is None:
        return None
    return user_id, week_start(from_epoch(clock_in), zone)


def weeks_named(events: Iterable[dict[str, Any]], zone: ZoneInfo) -> list[tuple[str, date]]:
    """(user id, week) of each event, each once, in order."""
    keys = [_card_key(event, zone) for event in events]
    return list(dict.fromkeys(key for key in keys if key is not None))


def timecards_from_events(
    events: Iterable[dict[str, Any]], *, zone: ZoneInfo, labor_types: dict[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Weekly cards (source-formats.md shape) from complete weeks of events, and the events
    left out with the reason. `labor_types` maps an activity (onsite, enroute …) to the labor
    type the LABOR_TYPE map knows; anything else is `standard`."""
    cards: dict[tuple[str, date], dict[str, Any]] = {}
    problems: list[str] = []
    for event in sorted(events, key=lambda e: (_epoch(e.get("clockIn")) or 0, str(e.get("id")))):
        key = _card_key(event, zone)
        event_id = str(event.get("id", "")).strip()
        if key is None or not event_id:
            problems.append(f"clock event {event_id or '?'}: no user or clock-in time")
            continue
        clock_in, clock_out = _epoch(event.get("clockIn")), _epoch(event.get("clockOut"))
        if clock_out is None:
            continue  # still clocked in: it joins its card once closed
        seconds = clock_out - (clock_in or 0)
        hours = (Decimal(seconds) / 3600).quantize(HUNDREDTH, rounding=ROUND_HALF_UP)
        if seconds > MAX_SECONDS or hours <= 0:
            problems.append(f"clock event {event_id}: {hours} hours is not between 0 and 24")
            continue
        user_id, name = _user(event)
        card = cards.setdefault(key, {
            "id": f"CLK-{user_id}-{key[1].isoformat()}",
            "technician": {"id": user_id, "name": name},
            "weekStarting": key[1].isoformat(), "status": APPROVED, "entries": [],
        })  # fmt: skip
        started = from_epoch(clock_in or 0).astimezone(zone)
        ended = from_epoch(clock_out).astimezone(zone)
        job = _object(event, "job")
        activity = str(event.get("activity") or "").lower()
        entry = {"id": event_id, "kind": "clock", "date": started.date().isoformat(),
                 "clockIn": started.strftime("%H:%M"), "clockOut": ended.strftime("%H:%M"),
                 "hours": str(hours),
                 "laborType": labor_types.get(activity, "standard")}  # fmt: skip
        if job.get("number"):
            entry["jobNumber"] = str(job["number"])
        card["entries"].append(entry)
    return list(cards.values()), problems


def clock_weeks_ingest(
    *,
    connection: Connection,
    events: list[dict[str, Any]],
    origin: str,
    now: datetime,
    labor_types: dict[str, str],
    result: ClockResult,
) -> None:
    """Ingest the cards of complete weeks of events through the timecard ingestion (a repeat
    is unchanged). The receipt keeps the cards as built, naming their events."""
    zone = ZoneInfo(connection.time_zone)
    cards, problems = timecards_from_events(events, zone=zone, labor_types=labor_types)
    result.events += len(events)
    result.errors.extend(problems)
    if not cards:
        return
    body = wire.dumps({"data": {"timecards": cards}}).encode()
    ingested = services.timecards_ingest(connection=connection, body=body,
                                         channel=SourceReceipt.Channel.API, origin=origin,
                                         now=now)  # fmt: skip
    result.cards += len(cards)
    result.accepted += len(ingested.accepted)
    result.unchanged += ingested.unchanged
    result.errors.extend(ingested.errors)


def clock_weeks_refetch(
    *,
    connection: Connection,
    st: ServiceTradeClient,
    weeks: list[tuple[str, date]],
    origin: str,
    now: datetime,
    labor_types: dict[str, str],
) -> ClockResult:
    """Read each (technician, week) whole from ServiceTrade and ingest its card."""
    zone = ZoneInfo(connection.time_zone)
    result = ClockResult()
    for user_id, week in weeks:
        start, end = week_bounds(week, zone)
        events = st.clock_events(userId=user_id, startTime=start, endTime=end)
        clock_weeks_ingest(connection=connection, events=events,
                           origin=f"{origin}: clock user {user_id} week {week.isoformat()}",
                           now=now, labor_types=labor_types, result=result)  # fmt: skip
    return result
