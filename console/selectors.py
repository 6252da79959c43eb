"""Reads for the console: one connection's dashboard, and the record filters the sync log uses.

The dashboard's numbers are database aggregates: one `aggregate()` with filtered `Count`s for the
state numbers, and `TruncDate` + `Count` per day for the 30-day chart. Only the latency
percentiles are computed in Python, over a bounded sample of the latest postings.

Days and weeks (starting on Monday) are the reader's: the view passes the time zone the console
is showing (console/timezones.py), and "today", "this week" and the chart's days follow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils.timesince import timesince

from syncengine.erps.base import FailureCategory
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    SyncEvent,
    SyncRecord,
    SyncRecordQuerySet,
    SyncState,
)

# Posted soon without anyone doing anything: due, being retried with backoff, or in flight.
WAITING_STATES = (SyncState.READY, SyncState.RETRY_SCHEDULED, SyncState.POSTING)
# Named groups the sync log's state filter accepts besides the SyncState values.
STATE_GROUPS: dict[str, tuple[str, ...]] = {"WAITING": WAITING_STATES}
STATE_GROUP_CHOICES = [("WAITING", "Waiting to post")]

CHART_DAYS = 30
LATENCY_DAYS = 7
# Percentiles are sorted in Python: cap the sample so a busy week costs a bounded query.
LATENCY_SAMPLE = 5000


# What the sync log's "Kind" filter offers: each a (document kind, operation) pair.
KIND_FILTERS: dict[str, tuple[str, str]] = {
    "invoice": (DocumentKind.INVOICE, Operation.CREATE),
    "credit_memo": (DocumentKind.INVOICE, Operation.VOID_CREDIT_MEMO),
    "timecard": (DocumentKind.TIMECARD, Operation.CREATE),
}
KIND_FILTER_CHOICES = [
    ("invoice", "Invoices"),
    ("credit_memo", "Credit memos for voids"),
    ("timecard", "Timecards"),
]
# The "Failure category" filter: the ERP's answers by kind, plus RULES for every record the
# posting rules blocked (their category is the problem's code, e.g. UNMAPPED_SERVICE_LINE).
CONNECTOR_CATEGORIES = {
    FailureCategory.AUTH: "Sign-in refused by the ERP",
    FailureCategory.CONNECTION: "ERP unreachable",
    FailureCategory.RATE_LIMIT: "ERP rate limit",
    FailureCategory.VALUE: "Value refused by the ERP",
    FailureCategory.MISSING_REFERENCE: "Missing in the ERP",
    FailureCategory.DUPLICATE: "Duplicate in the ERP",
    FailureCategory.PREREQUISITE: "Prerequisite missing",
    FailureCategory.INTERNAL: "Crosswalk error",
}
RULES_CATEGORY = "RULES"
CATEGORY_FILTER_CHOICES = [
    (RULES_CATEGORY, "Posting rules (blocked)"),
    *CONNECTOR_CATEGORIES.items(),
]


def records_filtered(
    records: SyncRecordQuerySet,
    *,
    connection: str = "",
    state: str = "",
    cause: str = "",
    kind: str = "",
    category: str = "",
    received_from: datetime | None = None,
    received_before: datetime | None = None,
) -> SyncRecordQuerySet:
    """The sync log's and the bulk retry's filters; unknown values are ignored, like empty ones.

    `received_from` / `received_before` bound `received_at` (inclusive / exclusive): the view
    turns the dates a person typed into midnights of their time zone.
    """
    if connection:
        records = records.filter(connection__slug=connection)
    if state in STATE_GROUPS:
        records = records.filter(state__in=STATE_GROUPS[state])
    elif state in SyncState.values:
        records = records.filter(state=state)
    if cause:
        records = records.filter(failure_cause=cause)
    if kind in KIND_FILTERS:
        document_kind, operation = KIND_FILTERS[kind]
        records = records.filter(document__kind=document_kind, operation=operation)
    if category == RULES_CATEGORY:
        records = records.exclude(failure_category="").exclude(
            failure_category__in=list(CONNECTOR_CATEGORIES)
        )
    elif category in CONNECTOR_CATEGORIES:
        records = records.filter(failure_category=category)
    if received_from is not None:
        records = records.filter(received_at__gte=received_from)
    if received_before is not None:
        records = records.filter(received_at__lt=received_before)
    return records


# --- the dashboard ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    posted_today: int
    posted_this_week: int
    waiting: int
    blocked: int
    failed: int
    uncertain: int
    last_posted_at: datetime | None


@dataclass(frozen=True)
class Latency:
    """Received → posted, over the postings of the last `LATENCY_DAYS` days."""

    sample: int
    p50_seconds: float
    p95_seconds: float

    @property
    def p50(self) -> str:
        return duration_text(self.p50_seconds)

    @property
    def p95(self) -> str:
        return duration_text(self.p95_seconds)


@dataclass(frozen=True)
class Health:
    level: str  # "ok", "idle" or "problem": the CSS modifier of the health line
    text: str


@dataclass(frozen=True)
class Dashboard:
    today: date
    week_start: date
    counts: Counts
    causes: list[dict[str, Any]]
    latency: Latency | None
    chart: Chart
    health: Health


def connection_dashboard(*, connection: Connection, now: datetime, zone: tzinfo = UTC) -> Dashboard:
    records = SyncRecord.objects.filter(connection=connection)
    today = now.astimezone(zone).date()
    week_start = today - timedelta(days=today.weekday())
    counts = _counts(records, today=today, week_start=week_start, zone=zone)
    return Dashboard(
        today=today,
        week_start=week_start,
        counts=counts,
        causes=records.failure_causes(),
        latency=_latency(records, now=now),
        chart=_chart(connection, records, today=today, zone=zone),
        health=_health(connection, counts, now=now),
    )


def _start_of(day: date, zone: tzinfo) -> datetime:
    """Midnight at the start of `day` in `zone` (a zone's own rules, DST included)."""
    return datetime.combine(day, time.min).replace(tzinfo=zone)


def _counts(records: SyncRecordQuerySet, *, today: date, week_start: date, zone: tzinfo) -> Counts:
    """A few small queries, each answered from an index ((connection, state) and (connection,
    posted_at)), rather than one pass over every record of the connection."""
    posted = records.filter(state=SyncState.POSTED)
    since_today, since_monday = _start_of(today, zone), _start_of(week_start, zone)
    open_states = (*WAITING_STATES, SyncState.BLOCKED, SyncState.FAILED, SyncState.UNCERTAIN)
    by_state = dict(
        records.filter(state__in=open_states)
        .values_list("state")
        .annotate(count=Count("pk"))
        .order_by()
    )
    last_posted_at = (
        posted.filter(posted_at__isnull=False)
        .order_by("-posted_at")
        .values_list("posted_at", flat=True)
        .first()
    )
    return Counts(
        posted_today=posted.filter(posted_at__gte=since_today).count(),
        posted_this_week=posted.filter(posted_at__gte=since_monday).count(),
        waiting=sum(by_state.get(state, 0) for state in WAITING_STATES),
        blocked=by_state.get(SyncState.BLOCKED, 0),
        failed=by_state.get(SyncState.FAILED, 0),
        uncertain=by_state.get(SyncState.UNCERTAIN, 0),
        last_posted_at=last_posted_at,
    )


def _latency(records: SyncRecordQuerySet, *, now: datetime) -> Latency | None:
    pairs = (
        records.filter(state=SyncState.POSTED, posted_at__gte=now - timedelta(days=LATENCY_DAYS))
        .order_by("-posted_at")
        .values_list("received_at", "posted_at")[:LATENCY_SAMPLE]
    )
    seconds = sorted(
        (posted - received).total_seconds() for received, posted in pairs if posted is not None
    )
    if not seconds:
        return None
    return Latency(
        sample=len(seconds),
        p50_seconds=percentile(seconds, 50),
        p95_seconds=percentile(seconds, 95),
    )


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list: always one of the observed values."""
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def duration_text(seconds: float) -> str:
    """'under 1 s', '45 s', '3 min 20 s', '2 h 5 min', '3 d 4 h'."""
    whole = int(seconds)
    if whole < 1:
        return "under 1 s"
    for unit, size, smaller, smaller_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= size:
            rest = (whole % size) // smaller_size
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{whole} s"


def _failed_events(connection: Connection, since: datetime) -> QuerySet[SyncEvent]:
    """Transitions into FAILED since then. Events, not current states, so a record that failed
    and was fixed since still counts on the day (and in the hour) it failed."""
    return SyncEvent.objects.filter(
        record__connection=connection, to_state=SyncState.FAILED, at__gte=since
    )


def _health(connection: Connection, counts: Counts, *, now: datetime) -> Health:
    failed = (
        _failed_events(connection, now - timedelta(hours=1))
        .aggregate(records=Count("record", distinct=True))
        .get("records")
    )
    if failed:
        return Health(
            "problem", f"{failed} record{'s' if failed != 1 else ''} failed in the last hour"
        )
    if counts.last_posted_at is None:
        return Health("idle", "No postings yet")
    if now - counts.last_posted_at < timedelta(minutes=1):
        return Health("ok", "Healthy: last posting less than a minute ago")
    ago = timesince(counts.last_posted_at, now, depth=1)
    return Health("ok", f"Healthy: last posting {ago} ago")


# --- the 30-day chart -------------------------------------------------------------------------

# Geometry of the inline SVG, in viewBox units; the template only places what is computed here.
CHART_WIDTH = 720
CHART_HEIGHT = 250
PLOT_LEFT = 44
PLOT_RIGHT = 712
PLOT_TOP = 12
PLOT_BOTTOM = 200
BAR_WIDTH = 8
BAR_GAP = 1


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class ChartDay:
    day: date
    posted: int
    failed: int
    x: float  # left edge of the day's column
    center: float
    posted_bar: Bar | None
    failed_bar: Bar | None
    label: str  # x-axis label, on every 7th day counting back from today

    @property
    def title(self) -> str:
        when = f"{self.day:%a} {self.day.day} {self.day:%b %Y}"
        return f"{when}: {self.posted} posted, {self.failed} failed"


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class Chart:
    days: list[ChartDay]
    ticks: list[Tick]
    total_posted: int
    total_failed: int
    zone_name: str = "UTC"  # whose days these are
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    plot_left: int = PLOT_LEFT
    plot_right: int = PLOT_RIGHT
    plot_top: int = PLOT_TOP
    plot_bottom: int = PLOT_BOTTOM

    @property
    def plot_height(self) -> int:
        return PLOT_BOTTOM - PLOT_TOP

    @property
    def column_width(self) -> float:
        return (PLOT_RIGHT - PLOT_LEFT) / max(len(self.days), 1)

    @property
    def summary(self) -> str:
        """The chart in one sentence, for its aria-label."""
        first, last = self.days[0].day, self.days[-1].day
        span = (
            f"Posted and failed per day, {first.day} {first:%b} to {last.day} {last:%b %Y} "
            f"({self.zone_name})"
        )
        if not self.total_posted and not self.total_failed:
            return f"{span}: nothing posted or failed."
        busiest = max(self.days, key=lambda day: (day.posted, day.day))
        return (
            f"{span}: {self.total_posted} posted, {self.total_failed} failed; "
            f"most posted in a day: {busiest.posted} on {busiest.day.day} {busiest.day:%b}."
        )


def _chart(
    connection: Connection, records: SyncRecordQuerySet, *, today: date, zone: tzinfo
) -> Chart:
    first = today - timedelta(days=CHART_DAYS - 1)
    posted = _per_day(
        records.filter(state=SyncState.POSTED, posted_at__gte=_start_of(first, zone)),
        field="posted_at",
        count=Count("pk"),
        zone=zone,
    )
    failed = _per_day(
        _failed_events(connection, _start_of(first, zone)),
        field="at",
        count=Count("record", distinct=True),
        zone=zone,
    )
    days = [first + timedelta(days=offset) for offset in range(CHART_DAYS)]
    top = _scale_top(max([*posted.values(), *failed.values(), 0]))
    return Chart(
        days=[
            _chart_day(index, day, posted.get(day, 0), failed.get(day, 0), top)
            for index, day in enumerate(days)
        ],
        ticks=[Tick(value, _y(value, top)) for value in range(0, top + 1, top // 4)],
        total_posted=sum(posted.values()),
        total_failed=sum(failed.values()),
        zone_name=str(zone),
    )


def _per_day(rows: QuerySet[Any], *, field: str, count: Count, zone: tzinfo) -> dict[date, int]:
    per_day = (
        rows.annotate(day=TruncDate(field, tzinfo=zone))
        .values("day")
        .annotate(n=count)
        .order_by("day")
    )
    return {row["day"]: row["n"] for row in per_day}


def _scale_top(largest: int) -> int:
    """The y-axis maximum: four equal steps of 1, 2 or 5 × 10ⁿ that cover the largest value."""
    step = 1
    while step * 4 < largest:
        for factor in (2, 2.5, 2):  # 1 → 2 → 5 → 10 → 20 → 50 …
            step = int(step * factor)
            if step * 4 >= largest:
                break
    return step * 4


def _y(value: int, top: int) -> float:
    return round(PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * value / top, 1)


def _bar(x: float, value: int, top: int) -> Bar | None:
    if not value:
        return None
    # At least one unit tall, so a day with a single failure among hundreds still shows.
    y = min(_y(value, top), PLOT_BOTTOM - 1)
    return Bar(x=round(x, 1), y=y, height=round(PLOT_BOTTOM - y, 1))


def _chart_day(index: int, day: date, posted: int, failed: int, top: int) -> ChartDay:
    column = (PLOT_RIGHT - PLOT_LEFT) / CHART_DAYS
    x = PLOT_LEFT + index * column
    bars_left = x + (column - 2 * BAR_WIDTH - BAR_GAP) / 2
    return ChartDay(
        day=day,
        posted=posted,
        failed=failed,
        x=round(x, 1),
        center=round(x + column / 2, 1),
        posted_bar=_bar(bars_left, posted, top),
        failed_bar=_bar(bars_left + BAR_WIDTH + BAR_GAP, failed, top),
        label=f"{day.day} {day:%b}" if (CHART_DAYS - 1 - index) % 7 == 0 else "",
    )


# --- a bulk retry's progress --------------------------------------------------------------------


@dataclass(frozen=True)
class RetryProgress:
    """Where the records of one bulk retry stand now."""

    total: int
    posted: int
    failed: int  # needs a person again: failed, blocked or uncertain
    waiting: int  # still on its way: ready, retry scheduled, posting

    @property
    def done(self) -> bool:
        return self.waiting == 0

    @property
    def settled(self) -> int:
        return self.total - self.waiting

    @property
    def percent(self) -> int:
        return round(100 * self.settled / self.total) if self.total else 100


def retry_batch_progress(*, records: SyncRecordQuerySet, batch: str) -> RetryProgress:
    """Counted by the database over the batch's records among `records` (those the reader may
    see), found by the `retry_batch` index."""
    again = (SyncState.FAILED, SyncState.BLOCKED, SyncState.UNCERTAIN)
    counts = records.filter(retry_batch=batch).aggregate(
        total=Count("pk"),
        posted=Count("pk", filter=Q(state=SyncState.POSTED)),
        failed=Count("pk", filter=Q(state__in=again)),
        waiting=Count("pk", filter=Q(state__in=WAITING_STATES)),
    )
    return RetryProgress(**counts)
