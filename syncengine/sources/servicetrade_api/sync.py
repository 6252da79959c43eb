"""Three ways ServiceTrade documents come in, one way they are ingested; and what goes back.

Every way hands ServiceTrade's own answer (a `{"data": …}` invoice or list page, byte for byte)
to `services.invoices_ingest`, which stores it as a receipt before parsing and treats a repeat
as a no-op. So a webhook that repeats, a poll that overlaps and a backfill that re-reads a page
all end in the same single record per invoice.

- Webhooks carry ids only. The delivery is stored as it came, then each entity is fetched
  again — an invoice by its id, a job as the invoices on it — so an old or repeated delivery
  only ever ingests ServiceTrade's current state. Dropped deliveries are caught by polling.
- Polling reads invoices `updatedAfter` the connection's cursor (minus an overlap, for clocks
  that disagree) and moves the cursor to when the poll started, once every page is in.
- Backfill reads invoices created since a date, in windows of `backfill_window_days`, page by
  page; each page is ingested in the same transaction that moves the stored position past it, so
  an interrupted backfill resumes at the first page not yet ingested and never ingests one twice.
- Clock events become weekly timecards (`clock.py`) on all three ways: a job event re-reads the
  job's clock events and then each (technician, week) they touch whole; a poll re-reads whole
  weeks from its clock cursor; a backfill reads week by week.
- Companies, locations and contacts feed two-way master data (`master.py`) on all three ways
  when the connection's `master_data` is on: a company, location or contact event re-reads
  that record; a poll reads each list `updatedAfter` its own cursor; a backfill with
  `master_data` reads each list `updatedAfter` the date, page by page, resumable.
- Write-back tells ServiceTrade how posting ended (processed, or failed with the reason) and
  stores the ERP document number as an external id on the invoice's job; each outcome is told
  once (`SourceWriteBack`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from syncengine import services
from syncengine.connections import connection_credentials_set
from syncengine.erps import wire
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    SourceCursor,
    SourceReceipt,
    SourceWriteBack,
    SyncRecord,
    SyncState,
    WebhookSubscription,
)
from syncengine.sources.servicetrade_api import clock, master
from syncengine.sources.servicetrade_api.client import (
    WEBHOOK_ENTITY_TYPES,
    Page,
    ServiceTradeClient,
    ServiceTradeError,
    StSettings,
    from_epoch,
    to_epoch,
)

logger = logging.getLogger(__name__)

INVOICE = "invoice"
SECRET_NAMES = ("client_id", "client_secret", "username", "password", "refresh_token")
FIRST_POLL_LOOKBACK = timedelta(days=1)
WEBHOOK_ACTIONS = ["created", "updated", "deleted"]
# What Crosswalk subscribes to: invoices have no webhook entity type of their own and change
# with their job, so job events make Crosswalk re-read the job's invoices; with `master_data`
# on, company, location and contact events too.
SUBSCRIBED_ENTITY_TYPES = ("job",)
WEBHOOK_ENTITY_NAMES = {str(code): name for name, code in WEBHOOK_ENTITY_TYPES.items()}


def subscribed_entity_types(settings: StSettings) -> tuple[str, ...]:
    return SUBSCRIBED_ENTITY_TYPES + (tuple(master.KINDS) if settings.master_data else ())


# --- the client of a connection -----------------------------------------------------------------


def api_settings(connection: Connection) -> StSettings:
    return StSettings.of(dict(connection.source_settings or {}))


def client_for(
    connection: Connection, *, sleep: Callable[[float], None] = time.sleep
) -> ServiceTradeClient:
    """A client with the connection's settings and decrypted credentials. A rotated OAuth2
    refresh token is stored again, encrypted, at once (the old one no longer works)."""
    stored = connection.source_secrets()
    credentials = {name: stored[name] for name in SECRET_NAMES if stored.get(name)}
    settings = api_settings(connection)
    if django_settings.CROSSWALK_SERVICETRADE_FAKE:
        # Demos without a ServiceTrade account: the in-process fake stands in for the real one.
        from syncengine.sources.servicetrade_api import fake

        demo = fake.demo_fake()
        settings = replace(settings, base_url=demo.api_url, token_url="",
                           auth_mode="oauth2_client_credentials")  # fmt: skip
        credentials = {"client_id": fake.CLIENT_ID, "client_secret": fake.CLIENT_SECRET}

    def keep_refresh_token(token: str) -> None:
        connection_credentials_set(
            connection=connection, side="source", values={"refresh_token": token},
            actor="servicetrade oauth2", now=timezone.now(),
            reason="ServiceTrade issued a new refresh token",
        )  # fmt: skip

    return ServiceTradeClient(settings=settings, secrets=credentials,
                              on_refresh_token=keep_refresh_token, sleep=sleep)  # fmt: skip


def connections_with_api() -> list[Connection]:
    """Connections whose source settings turn the ServiceTrade API on (`"api": true`)."""
    return list(Connection.objects.filter(source_settings__api=True).order_by("pk"))


def _ingest(connection: Connection, body: bytes, *, origin: str, now: datetime) -> Any:
    return services.invoices_ingest(connection=connection, body=body,
                                    channel=SourceReceipt.Channel.API, origin=origin,
                                    now=now)  # fmt: skip


@dataclass
class ReadResult:
    pages: int = 0
    invoices: int = 0
    accepted: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    clock: clock.ClockResult = field(default_factory=clock.ClockResult)
    master: master.MasterResult = field(default_factory=master.MasterResult)

    def add(self, page_items: int, result: Any) -> None:
        self.pages += 1
        self.invoices += page_items
        self.accepted += len(result.accepted)
        self.unchanged += result.unchanged
        self.errors.extend(result.errors)


# --- webhooks -----------------------------------------------------------------------------------


def is_entity_message(body: bytes) -> bool:
    """A ServiceTrade webhook message (`data` is a list of entity events) rather than an
    invoice body: the hook URL accepts both."""
    try:
        message = wire.loads(body)
    except ValueError:
        return False
    data = message.get("data") if isinstance(message, dict) else None
    return isinstance(data, list) and all(
        isinstance(event, dict) and isinstance(event.get("entity"), dict) for event in data
    )


def webhook_message_receive(
    *, connection: Connection, body: bytes, origin: str, now: datetime
) -> SourceReceipt:
    """Store the delivery (before it is acknowledged), then fetch what it names: in a worker
    when workers run (ServiceTrade waits five seconds at most), in the foreground otherwise."""
    receipt = SourceReceipt.objects.create(
        connection=connection, channel=SourceReceipt.Channel.WEBHOOK, origin=origin[:500],
        body=body.decode("utf-8", errors="replace"), body_bytes=len(body), received_at=now,
    )  # fmt: skip
    if django_settings.CROSSWALK_NUDGE_WORKERS:
        from syncengine.tasks import servicetrade_webhook_process as process_task

        transaction.on_commit(lambda: process_task.apply_async(kwargs={"receipt_id": receipt.pk}))
    else:
        webhook_message_process(receipt=receipt, now=now)
    return receipt


def webhook_events(body: str) -> list[tuple[str, str]]:
    """(entity type, id) of each event, each once, in the order first named. A type given as
    its code (5, "11" …) is read as its name (company, location …)."""
    message = wire.loads(body)
    seen: list[tuple[str, str]] = []
    for event in message.get("data") or []:
        entity = event.get("entity") or {}
        kind = str(entity.get("type", "")).strip().lower()
        key = (WEBHOOK_ENTITY_NAMES.get(kind, kind), str(entity.get("id", "")))
        if key not in seen:
            seen.append(key)
    return seen


def webhook_message_process(
    *, receipt: SourceReceipt, now: datetime, client: ServiceTradeClient | None = None
) -> SourceReceipt:
    """Fetch every invoice the stored delivery names and ingest it; the receipt's outcome and
    errors say what came of each event. A failed fetch is left to the next poll."""
    connection = receipt.connection
    errors: list[str] = []
    fetched = 0
    try:
        events = webhook_events(receipt.body)
    except (ValueError, AttributeError):
        events, errors = [], ["body: not a ServiceTrade webhook message"]
    try:
        with client or client_for(connection) as st:
            for kind, entity_id in events:
                try:
                    fetched += _refetch(connection, st, kind, entity_id, receipt, now, errors)
                except ServiceTradeError as error:
                    errors.append(f"{kind} {entity_id}: {error.message}")
    except ServiceTradeError as error:
        errors.append(f"ServiceTrade: {error.message}")
    receipt.outcome = (
        SourceReceipt.Outcome.ACCEPTED if not errors
        else SourceReceipt.Outcome.PARTLY_ACCEPTED if fetched
        else SourceReceipt.Outcome.REJECTED
    )  # fmt: skip
    receipt.errors = errors
    receipt.save(update_fields=["outcome", "errors"])
    return receipt


def _refetch(
    connection: Connection,
    st: ServiceTradeClient,
    kind: str,
    entity_id: str,
    receipt: SourceReceipt,
    now: datetime,
    errors: list[str],
) -> int:
    origin = f"webhook receipt {receipt.pk}: {kind} {entity_id}"
    if kind in master.KINDS:
        if not api_settings(connection).master_data:
            return 0
        # The record as ServiceTrade has it now: a repeated or late delivery reports the same
        # state again, which master data takes as no change (it compares change times).
        taken = master.master_refetch(connection=connection, st=st, kind=kind,
                                      entity_id=entity_id, now=now)  # fmt: skip
        errors.extend(taken.errors)
        return taken.records
    if kind == INVOICE:
        _ingest(connection, st.invoice_raw(entity_id), origin=origin, now=now)
        return 1
    if kind == "job":
        count = 0
        for page in st.invoice_pages(jobId=entity_id):
            if page.items:
                _ingest(connection, page.body, origin=f"{origin} page {page.number}", now=now)
                count += len(page.items)
        settings = api_settings(connection)
        if settings.clock_events:
            # The clock events on the job name the (technician, week) cards they belong to;
            # each card is read again whole, so a late or repeated delivery changes nothing.
            named = st.clock_events(jobId=entity_id)
            weeks = clock.weeks_named(named, ZoneInfo(connection.time_zone))
            read = clock.clock_weeks_refetch(connection=connection, st=st, weeks=weeks,
                                             origin=origin, now=now,
                                             labor_types=settings.clock_labor_types)  # fmt: skip
            count += read.events
        return count
    # Other entities carry no document Crosswalk posts. [U] No webhook entity type is
    # documented for clock events: they are reached through their job (and polling).
    return 0


# --- polling ------------------------------------------------------------------------------------


def servicetrade_poll(
    *, connection: Connection, now: datetime, client: ServiceTradeClient | None = None
) -> ReadResult:
    """Ingest invoices updated since the connection's cursor; the cursor moves to when this poll
    started once every page is in (a failed poll leaves it, and the next one reads again)."""
    settings = api_settings(connection)
    cursor, _ = SourceCursor.objects.get_or_create(
        connection=connection, entity=INVOICE, mode=SourceCursor.Mode.POLL,
        defaults={"position_epoch": to_epoch(now - FIRST_POLL_LOOKBACK), "started_at": now,
                  "moved_at": now},
    )  # fmt: skip
    started = to_epoch(now)
    after = int(cursor.position_epoch or 0) - settings.poll_overlap_seconds
    result = ReadResult()
    with client or client_for(connection) as st:
        try:
            for page in st.invoice_pages(updatedAfter=max(after, 0)):
                if page.items:
                    origin = f"poll updatedAfter={after} page {page.number}"
                    result.add(len(page.items), _ingest(connection, page.body, origin=origin,
                                                        now=now))  # fmt: skip
        except ServiceTradeError as error:
            SourceCursor.objects.filter(pk=cursor.pk).update(last_error=error.message[:500])
            raise
        _cursor_moved(cursor, started, now, result.invoices)
        if settings.clock_events:
            _clock_poll(connection, st, settings, now, result)
        if settings.master_data:
            _master_poll(connection, st, settings, now, result)
    return result


def _cursor_moved(cursor: SourceCursor, started: int, now: datetime, items: int) -> None:
    # Never backwards: a slow poll that started earlier must not undo a later one.
    SourceCursor.objects.filter(pk=cursor.pk).filter(
        Q(position_epoch__lt=started) | Q(position_epoch__isnull=True)
    ).update(position_epoch=started, moved_at=now, last_error="")
    SourceCursor.objects.filter(pk=cursor.pk).update(items_read=F("items_read") + items)


def _clock_poll(
    connection: Connection, st: ServiceTradeClient, settings: StSettings, now: datetime,
    result: ReadResult,
) -> None:  # fmt: skip
    """Clock events have no `updatedAfter`: re-read every event clocked in since the Monday of
    the week of (cursor − clock_lookback_days), so each card read is a whole week and events
    closed or edited since the last poll come in; unchanged cards are no-ops."""
    cursor, _ = SourceCursor.objects.get_or_create(
        connection=connection, entity=clock.CLOCK, mode=SourceCursor.Mode.POLL,
        defaults={"position_epoch": to_epoch(now - FIRST_POLL_LOOKBACK), "started_at": now,
                  "moved_at": now},
    )  # fmt: skip
    started = to_epoch(now)
    zone = ZoneInfo(connection.time_zone)
    back = int(cursor.position_epoch or started) - settings.clock_lookback_days * 86400
    first, _ = clock.week_bounds(clock.week_start(from_epoch(max(back, 0)), zone), zone)
    try:
        events = st.clock_events(startTime=first)
    except ServiceTradeError as error:
        SourceCursor.objects.filter(pk=cursor.pk).update(last_error=error.message[:500])
        raise
    clock.clock_weeks_ingest(connection=connection, events=events,
                             origin=f"poll clock startTime={first}", now=now,
                             labor_types=settings.clock_labor_types,
                             result=result.clock)  # fmt: skip
    _cursor_moved(cursor, started, now, len(events))


def _master_poll(
    connection: Connection, st: ServiceTradeClient, settings: StSettings, now: datetime,
    result: ReadResult,
) -> None:  # fmt: skip
    """Companies, then locations, then contacts, each `updatedAfter` its own cursor minus the
    overlap; each cursor moves to when this poll started once all its pages are taken (a
    failure leaves it, with the error, and the next poll reads the same range again)."""
    started = to_epoch(now)
    for kind in master.KINDS:
        cursor, _ = SourceCursor.objects.get_or_create(
            connection=connection, entity=kind, mode=SourceCursor.Mode.POLL,
            defaults={"position_epoch": to_epoch(now - FIRST_POLL_LOOKBACK), "started_at": now,
                      "moved_at": now},
        )  # fmt: skip
        after = max(int(cursor.position_epoch or 0) - settings.poll_overlap_seconds, 0)
        before = result.master.records
        try:
            for page in st.master_pages(kind, updatedAfter=after):
                master.master_take(connection=connection, kind=kind, records=page.items,
                                   actor=master.ACTOR_POLL, now=now,
                                   result=result.master)  # fmt: skip
        except ServiceTradeError as error:
            SourceCursor.objects.filter(pk=cursor.pk).update(last_error=error.message[:500])
            raise
        _cursor_moved(cursor, started, now, result.master.records - before)


def servicetrade_poll_due(*, now: datetime) -> int:
    """Beat: poll every API connection whose poll interval has passed; returns how many ran.
    One connection failing does not stop the others."""
    ran = 0
    for connection in connections_with_api():
        interval = api_settings(connection).poll_interval_seconds
        cursor = SourceCursor.objects.filter(
            connection=connection, entity=INVOICE, mode=SourceCursor.Mode.POLL
        ).first()
        if cursor and cursor.moved_at > now - timedelta(seconds=interval) and not cursor.last_error:
            continue
        try:
            servicetrade_poll(connection=connection, now=now)
            ran += 1
        except ServiceTradeError as error:
            logger.warning("ServiceTrade poll of %s failed: %s", connection.slug, error.message)
    return ran


# --- backfill -----------------------------------------------------------------------------------


def servicetrade_backfill(
    *,
    connection: Connection,
    since: date | datetime,
    now: datetime,
    client: ServiceTradeClient | None = None,
    on_page: Callable[[Page, SourceCursor], None] | None = None,
    invoices: bool = True,
    master_data: bool = False,
) -> ReadResult:
    """Ingest every invoice created since `since` (then the clock events), resuming an
    unfinished backfill of the same date where it stopped. `master_data`: then every company,
    location and contact updated since `since` into two-way master data, also resumable (only
    for a connection whose `master_data` is on); `invoices=False` reads only those. `on_page`
    is called after each page is committed (progress bars; the cursor's `entity` says which).

    Raises ServiceTradeError when ServiceTrade fails for good; the position stays at the first
    page not ingested, so running it again continues there. Raises BackfillRunning when another
    backfill of the connection holds the cursor (nothing is read or changed then), and
    MasterDataOff when master data is asked for but off for the connection.
    """
    settings = api_settings(connection)
    master_data = master_data or not invoices
    if master_data and not settings.master_data:
        raise MasterDataOff(
            f"Master data is off for {connection.slug}: nothing was read. Turn on "
            '"master_data" in its ServiceTrade settings first.'
        )
    token = _lease_take(connection, now)
    try:
        return _backfill_leased(connection, settings, since, now, token, client, on_page,
                                invoices=invoices, master_data=master_data)  # fmt: skip
    finally:
        SourceCursor.objects.filter(
            connection=connection, entity=INVOICE, mode=SourceCursor.Mode.BACKFILL,
            lease_token=token,
        ).update(lease_token="", lease_until=None)  # fmt: skip


class MasterDataOff(Exception):
    """A backfill of master data for a connection whose `master_data` setting is off."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackfillRunning(Exception):
    """Another backfill of the same connection holds the cursor."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


BACKFILL_LEASE = timedelta(minutes=10)


def _lease_take(connection: Connection, now: datetime) -> str:
    """Hold the connection's backfill cursor (creating it if there is none yet); refused while
    another backfill holds it and its lease has not run out (a killed backfill's lease ends
    `BACKFILL_LEASE` after its last page)."""
    cursor, _ = SourceCursor.objects.get_or_create(
        connection=connection, entity=INVOICE, mode=SourceCursor.Mode.BACKFILL,
        defaults={"started_at": now, "moved_at": now, "finished_at": now},
    )  # fmt: skip
    token = secrets.token_hex(16)
    taken = (
        SourceCursor.objects.filter(pk=cursor.pk)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .update(lease_token=token, lease_until=now + BACKFILL_LEASE)
    )
    if not taken:
        cursor.refresh_from_db()
        since = from_epoch(cursor.since_epoch).date() if cursor.since_epoch is not None else "?"
        raise BackfillRunning(
            f"Another backfill of {connection.slug} is running (since {since}, started "
            f"{cursor.started_at:%Y-%m-%d %H:%M} UTC): nothing was read. Wait for it to finish; "
            f"if it was killed, its hold ends at {cursor.lease_until:%Y-%m-%d %H:%M} UTC."
        )
    return token


def _lease_renew(cursor: SourceCursor, token: str, now: datetime) -> None:
    """Keep holding the cursor for another lease from the wall clock (inside the transaction
    of a page: if the hold was lost, the page is rolled back and the backfill stops)."""
    held = SourceCursor.objects.filter(pk=cursor.pk, lease_token=token).update(
        lease_until=max(now, timezone.now()) + BACKFILL_LEASE
    )
    if not held:
        raise BackfillRunning("Another backfill took this connection's backfill over: stopped.")


def _backfill_leased(
    connection: Connection,
    settings: StSettings,
    since: date | datetime,
    now: datetime,
    token: str,
    client: ServiceTradeClient | None,
    on_page: Callable[[Page, SourceCursor], None] | None,
    *,
    invoices: bool,
    master_data: bool,
) -> ReadResult:
    result = ReadResult()
    if not invoices:  # master data only: the invoice backfill's position is left alone
        lease = backfill_cursor_of(connection)
        assert lease is not None  # _lease_take made it
        with client or client_for(connection) as st:
            _master_backfill(connection, st, lease, to_epoch(since), now, result, token, on_page)
        return result
    cursor = _backfill_cursor(connection, to_epoch(since), now)
    window = settings.backfill_window_days * 86400
    try:
        with client or client_for(connection) as st:
            while (
                cursor.position_epoch is not None
                and cursor.until_epoch is not None
                and (cursor.position_epoch < cursor.until_epoch)
            ):
                end = min(cursor.position_epoch + window, cursor.until_epoch)
                pages = st.invoice_pages(first_page=cursor.page,
                                         createdAfter=cursor.position_epoch,
                                         createdBefore=end)  # fmt: skip
                for page in pages:
                    _backfill_page(connection, cursor, page, now, result, token)
                    if on_page is not None:
                        on_page(page, cursor)
                cursor.position_epoch, cursor.page, cursor.moved_at = end, 1, now
                cursor.save(update_fields=["position_epoch", "page", "moved_at"])
            if settings.clock_events:
                _clock_backfill(connection, st, settings, cursor, now, result, token)
            if master_data:
                _master_backfill(connection, st, cursor, int(cursor.since_epoch or 0), now,
                                 result, token, on_page)  # fmt: skip
    except ServiceTradeError as error:
        SourceCursor.objects.filter(pk=cursor.pk).update(last_error=error.message[:500])
        raise
    cursor.finished_at, cursor.last_error = now, ""
    cursor.save(update_fields=["finished_at", "last_error"])
    return result


def _clock_backfill(
    connection: Connection, st: ServiceTradeClient, settings: StSettings,
    invoices: SourceCursor, now: datetime, result: ReadResult, token: str,
) -> None:  # fmt: skip
    """Clock events from the week of `since` to the backfill's end, one whole week at a time;
    each week's cards and the move past it commit together (a rerun resumes at the next week)."""
    zone = ZoneInfo(connection.time_zone)
    since, until = int(invoices.since_epoch or 0), int(invoices.until_epoch or 0)
    first, _ = clock.week_bounds(clock.week_start(from_epoch(since), zone), zone)
    cursor = SourceCursor.objects.filter(
        connection=connection, entity=clock.CLOCK, mode=SourceCursor.Mode.BACKFILL
    ).first()
    if cursor is None or (cursor.since_epoch, cursor.until_epoch) != (since, until):
        values = {"since_epoch": since, "until_epoch": until, "position_epoch": first, "page": 1,
                  "items_read": 0, "started_at": now, "moved_at": now, "finished_at": None,
                  "last_error": ""}  # fmt: skip
        cursor, _ = SourceCursor.objects.update_or_create(
            connection=connection, entity=clock.CLOCK, mode=SourceCursor.Mode.BACKFILL,
            defaults=values,
        )  # fmt: skip
    while cursor.position_epoch is not None and cursor.position_epoch < until:
        week = clock.week_start(from_epoch(cursor.position_epoch), zone)
        start, end = clock.week_bounds(week, zone)
        events = st.clock_events(startTime=start, endTime=end)
        with transaction.atomic():
            _lease_renew(invoices, token, now)
            clock.clock_weeks_ingest(connection=connection, events=events,
                                     origin=f"backfill clock week {week.isoformat()}", now=now,
                                     labor_types=settings.clock_labor_types,
                                     result=result.clock)  # fmt: skip
            cursor.position_epoch, cursor.moved_at = end, now
            cursor.items_read += len(events)
            cursor.save(update_fields=["position_epoch", "moved_at", "items_read"])
    cursor.finished_at = now
    cursor.save(update_fields=["finished_at"])


def _master_backfill(
    connection: Connection, st: ServiceTradeClient, lease: SourceCursor, since: int,
    now: datetime, result: ReadResult, token: str,
    on_page: Callable[[Page, SourceCursor], None] | None,
) -> None:  # fmt: skip
    """Companies, then locations, then contacts updated since `since`, each list read
    `updatedAfter=since` page by page (its own `SourceCursor`, mode BACKFILL). Each page is
    taken in the same transaction that moves its cursor past it, under the backfill's hold, so
    a rerun from the same date continues at the first page not taken; once all three finished,
    or from another date, it starts over (taking the same state again changes nothing).

    No upper bound on `updated`: a record changed while the backfill runs stays in the list
    (it may be read twice, which is harmless) instead of leaving it and shifting later pages.
    """
    cursors = {
        c.entity: c
        for c in SourceCursor.objects.filter(
            connection=connection, entity__in=list(master.KINDS), mode=SourceCursor.Mode.BACKFILL
        )
    }
    resume = all(kind in cursors and cursors[kind].since_epoch == since for kind in master.KINDS)
    if not resume or all(c.finished_at is not None for c in cursors.values()):
        until = to_epoch(now)
        for kind in master.KINDS:
            cursors[kind], _ = SourceCursor.objects.update_or_create(
                connection=connection, entity=kind, mode=SourceCursor.Mode.BACKFILL,
                defaults={"since_epoch": since, "until_epoch": until, "position_epoch": since,
                          "page": 1, "items_read": 0, "started_at": now, "moved_at": now,
                          "finished_at": None, "last_error": ""},
            )  # fmt: skip
            # Polling covers what changes from here on (from this start, at the latest).
            SourceCursor.objects.get_or_create(
                connection=connection, entity=kind, mode=SourceCursor.Mode.POLL,
                defaults={"position_epoch": until, "started_at": now, "moved_at": now},
            )  # fmt: skip
    for kind in master.KINDS:
        cursor = cursors[kind]
        if cursor.finished_at is not None:
            continue
        try:
            for page in st.master_pages(kind, first_page=cursor.page, updatedAfter=since):
                with transaction.atomic():
                    _lease_renew(lease, token, now)
                    master.master_take(connection=connection, kind=kind, records=page.items,
                                       actor=master.ACTOR_BACKFILL, now=now,
                                       result=result.master)  # fmt: skip
                    cursor.page, cursor.moved_at = page.number + 1, now
                    cursor.items_read += len(page.items)
                    cursor.save(update_fields=["page", "items_read", "moved_at"])
                if on_page is not None:
                    on_page(page, cursor)
        except ServiceTradeError as error:
            SourceCursor.objects.filter(pk=cursor.pk).update(last_error=error.message[:500])
            raise
        cursor.finished_at, cursor.last_error = now, ""
        cursor.save(update_fields=["finished_at", "last_error"])


def _backfill_cursor(connection: Connection, since: int, now: datetime) -> SourceCursor:
    """The unfinished backfill from the same date, or a new one up to now. A new backfill also
    makes sure polling covers what changes while it runs (from its start, at the latest)."""
    cursor = SourceCursor.objects.filter(
        connection=connection, entity=INVOICE, mode=SourceCursor.Mode.BACKFILL
    ).first()
    if cursor is not None and cursor.since_epoch == since and cursor.finished_at is None:
        return cursor
    until = to_epoch(now)
    values = {"since_epoch": since, "until_epoch": until, "position_epoch": since, "page": 1,
              "items_read": 0, "started_at": now, "moved_at": now, "finished_at": None,
              "last_error": ""}  # fmt: skip
    cursor, _ = SourceCursor.objects.update_or_create(
        connection=connection, entity=INVOICE, mode=SourceCursor.Mode.BACKFILL, defaults=values
    )
    SourceCursor.objects.get_or_create(
        connection=connection, entity=INVOICE, mode=SourceCursor.Mode.POLL,
        defaults={"position_epoch": until, "started_at": now, "moved_at": now},
    )  # fmt: skip
    return cursor


def _backfill_page(
    connection: Connection, cursor: SourceCursor, page: Page, now: datetime, result: ReadResult,
    token: str,
) -> None:  # fmt: skip
    # The page and the move past it commit together: after a crash either both happened (the
    # next run starts after it) or neither did (the next run reads it again, once).
    with transaction.atomic():
        _lease_renew(cursor, token, now)
        if page.items:
            origin = f"backfill since {cursor.since_epoch} window {cursor.position_epoch} " \
                     f"page {page.number}"  # fmt: skip
            result.add(len(page.items), _ingest(connection, page.body, origin=origin, now=now))
        cursor.page = page.number + 1
        cursor.items_read += len(page.items)
        cursor.moved_at = now
        cursor.save(update_fields=["page", "items_read", "moved_at"])


def backfill_cursor_of(connection: Connection) -> SourceCursor | None:
    return SourceCursor.objects.filter(
        connection=connection, entity=INVOICE, mode=SourceCursor.Mode.BACKFILL
    ).first()


# --- webhook subscriptions ----------------------------------------------------------------------


def _hook_prefix(base_url: str, connection: Connection) -> str:
    path = reverse("hooks:servicetrade", args=[connection.slug, "SECRET"])
    return base_url.rstrip("/") + path.removesuffix("SECRET/")


def _entity_events(settings: StSettings) -> list[dict[str, Any]]:
    # [U] The sources disagree on the item shape ({entityType, actions|events|eventType});
    # "actions" is what most of them show.
    return [{"entityType": WEBHOOK_ENTITY_TYPES[name], "actions": WEBHOOK_ACTIONS}
            for name in subscribed_entity_types(settings)]  # fmt: skip


def webhook_subscribe(
    *,
    connection: Connection,
    base_url: str,
    now: datetime,
    client: ServiceTradeClient | None = None,
) -> WebhookSubscription:
    """Register (or re-point) Crosswalk's webhook in ServiceTrade with a new hook secret.

    The secret is kept (as a hash) only once ServiceTrade has accepted the URL, so a failed
    subscribe leaves the working one alone. Older webhooks of this connection are removed.
    """
    secret = secrets.token_urlsafe(32)
    prefix = _hook_prefix(base_url, connection)
    body = {"hookUrl": f"{prefix}{secret}/", "enabled": True, "includeChangesets": False,
            "entityEvents": _entity_events(api_settings(connection))}  # fmt: skip
    with client or client_for(connection) as st:
        ours = [hook for hook in st.webhooks() if str(hook.get("hookUrl", "")).startswith(prefix)]
        if ours:
            remote = st.webhook_update(ours[0]["id"], body)
            for extra in ours[1:]:
                st.webhook_delete(extra["id"])
        else:
            remote = st.webhook_create(body)
    with transaction.atomic():
        connection.webhook_secret_hash = Connection.hash_secret(secret)
        connection.save(update_fields=["webhook_secret_hash"])
        WebhookSubscription.objects.filter(connection=connection).exclude(
            remote_id=str(remote["id"])
        ).delete()
        subscription, _ = WebhookSubscription.objects.update_or_create(
            connection=connection, remote_id=str(remote["id"]),
            defaults={"hook_url_prefix": prefix, "entity_events": body["entityEvents"],
                      "enabled": True, "created_at": now, "checked_at": now, "problems": []},
        )  # fmt: skip
    return subscription


def webhook_check(
    *, connection: Connection, now: datetime, client: ServiceTradeClient | None = None
) -> list[str]:
    """What is wrong with the connection's webhook in ServiceTrade, in plain words ([] = fine):
    missing, disabled, unconfirmed, not sending job events (and company, location and contact
    events with `master_data` on), or pointing at an old secret."""
    subscriptions = list(WebhookSubscription.objects.filter(connection=connection))
    prefixes = {s.hook_url_prefix for s in subscriptions}
    with client or client_for(connection) as st:
        remote = st.webhooks()
    ours = [h for h in remote if any(str(h.get("hookUrl", "")).startswith(p) for p in prefixes)]
    problems = []
    if not ours:
        problems.append("No Crosswalk webhook is registered in ServiceTrade: run "
                        "`manage.py servicetrade subscribe`.")  # fmt: skip
    for hook in ours:
        problems += _hook_problems(connection, hook)
    for subscription in subscriptions:
        subscription.checked_at, subscription.problems = now, problems
        subscription.save(update_fields=["checked_at", "problems"])
    return problems


def _hook_problems(connection: Connection, hook: dict[str, Any]) -> list[str]:
    label = f"Webhook {hook.get('id')}"
    problems = []
    if not hook.get("enabled"):
        problems.append(f"{label} is disabled in ServiceTrade.")
    if hook.get("confirmed") is False:
        problems.append(f"{label} is not confirmed by ServiceTrade yet.")
    codes = {int(e.get("entityType", 0)) for e in hook.get("entityEvents") or []}
    wanted = subscribed_entity_types(api_settings(connection))
    missing = [n for n in wanted if WEBHOOK_ENTITY_TYPES[n] not in codes]
    if missing:
        problems.append(f"{label} does not send {', '.join(missing)} events.")
    secret = str(hook.get("hookUrl", "")).rstrip("/").rsplit("/", 1)[-1]
    if not hmac.compare_digest(Connection.hash_secret(secret), connection.webhook_secret_hash):
        problems.append(f"{label} uses an old hook secret: its deliveries are refused. Run "
                        "`manage.py servicetrade subscribe` again.")  # fmt: skip
    return problems


# --- write-back ---------------------------------------------------------------------------------

PROCESSED = "processed"
FAILED = "failed"


def servicetrade_write_back(
    *, connection: Connection, now: datetime, limit: int = 200,
    client: ServiceTradeClient | None = None,
) -> int:  # fmt: skip
    """Tell ServiceTrade how posting ended for invoices not told yet: `processed` plus the ERP
    document number as an external id on the job, or `failed` with the reason. Returns how many
    were told; one that fails is tried again on the next run, the others still go."""
    settings = api_settings(connection)
    if not settings.write_back:
        return 0
    told = SourceWriteBack.objects.filter(record__connection=connection)
    records = (
        SyncRecord.objects.filter(connection=connection, operation=Operation.CREATE,
                                  document__kind=DocumentKind.INVOICE,
                                  state__in=(SyncState.POSTED, SyncState.FAILED))
        .exclude(pk__in=told.filter(outcome=SyncState.POSTED, told=True).values("record"),
                 state=SyncState.POSTED)
        .exclude(pk__in=told.filter(outcome=SyncState.FAILED, told=True).values("record"),
                 state=SyncState.FAILED)
        .select_related("document").order_by("pk")[:limit]
    )  # fmt: skip
    count = 0
    with client or client_for(connection) as st:
        for record in records:
            try:
                detail = _tell(st, settings, record)
            except ServiceTradeError as error:
                logger.warning("Write-back of record %s failed: %s", record.pk, error.message)
                _write_back_kept(record, now, told=False, error=error.message)
                continue
            _write_back_kept(record, now, told=True, detail=detail)
            count += 1
    return count


def _write_back_kept(
    record: SyncRecord, now: datetime, *, told: bool, detail: str = "", error: str = ""
) -> None:
    """The outcome told (or the failed try, with ServiceTrade's answer), one row per outcome."""
    row, created = SourceWriteBack.objects.get_or_create(
        record=record, outcome=record.state,
        defaults={"at": now, "told": told, "detail": detail[:500], "error": error[:500]},
    )  # fmt: skip
    if not created:
        SourceWriteBack.objects.filter(pk=row.pk).update(
            at=now, told=told, detail=detail[:500], error=error[:500],
            attempts=F("attempts") + 1,
        )  # fmt: skip


def _tell(st: ServiceTradeClient, settings: StSettings, record: SyncRecord) -> str:
    invoice_id = record.document.source_id
    if record.state == SyncState.POSTED:
        st.invoice_status_set(invoice_id, PROCESSED)
        job_id = str((record.document.payload.get("job") or {}).get("id", ""))
        if job_id.isdigit() and record.erp_document_number:
            st.external_id_set(entity_type="job", entity_id=job_id,
                               system=settings.external_system,
                               value=record.erp_document_number)  # fmt: skip
        return f"processed; ERP document {record.erp_document_number}"
    reason = f"Crosswalk could not post this invoice to the ERP: {record.message}"[:2000]
    st.invoice_status_set(invoice_id, FAILED)
    invoice_note_add(st, invoice_id=invoice_id, text=reason)
    return "failed: " + record.message


def invoice_note_add(st: ServiceTradeClient, *, invoice_id: str, text: str) -> None:
    """The reason, as a comment when the connection names the comment entity type of invoices
    (`invoice_comment_entity_type`, [U]), else appended to the invoice's notes (a documented
    PUT field), never replacing what people wrote there."""
    code = st.settings.invoice_comment_entity_type
    if code:
        st.comment_add(entity_type=code, entity_id=invoice_id, content=text)
        return
    current = str(st.invoice(invoice_id).get("notes") or "")
    # Only the last note: a repeat after a lost answer adds nothing, while a status that comes
    # back later (partly paid, reversed, partly paid again) is noted again.
    if current.endswith(text):
        return
    notes = f"{current}\n\n{text}" if current else text
    st.put(f"/invoice/{invoice_id}", {"notes": notes})


def invoice_payment_write_back(
    *, client: ServiceTradeClient, invoice_id: str, paid: Decimal, total: Decimal,
    reopen: bool = False, reason: str = "",
) -> str:  # fmt: skip
    """What is paid in the ERP: `paid` when it covers the invoice, otherwise a note saying how
    much is paid (ServiceTrade has no partly-paid status). `reopen` (it was told `paid`, then a
    payment was reversed, voided or returned) puts the status back to `processed` first; nothing
    paid any more is a note naming the `reason`. Called by `syncengine.payments`."""
    if paid >= total:
        client.invoice_status_set(invoice_id, "paid")
        return "paid"
    if reopen:
        client.invoice_status_set(invoice_id, PROCESSED)
    if paid > 0:
        invoice_note_add(client, invoice_id=invoice_id,
                         text=f"Partially paid in the ERP: {paid} of {total}.")  # fmt: skip
        return "reopened, partially paid" if reopen else "partially paid"
    why = f" ({reason})" if reason else ""
    text = f"Payment reversed in the ERP{why}: nothing of {total} is paid now."
    invoice_note_add(client, invoice_id=invoice_id, text=text)
    return "reopened"


@dataclass(frozen=True)
class PurchaseOrderLine:
    name: str
    quantity: Decimal
    cost: Decimal
    service_line_id: int | None = None


def purchase_order_job_items(
    *, client: ServiceTradeClient, job_id: str, po_number: str, lines: list[PurchaseOrderLine]
) -> list[dict[str, Any]]:
    """A purchase order from the ERP as job items on its ServiceTrade job, each sourced to the
    PO (`source: {type: refnumber, value: "PO <number>"}`). Lines already on the job from the
    same PO are not added again. Not triggered by the engine yet."""
    reference = f"PO {po_number}"
    existing = {
        (item.get("name"), str((item.get("source") or {}).get("value", "")))
        for item in client.job_items(jobId=job_id)
    }
    created = []
    for line in lines:
        if (line.name, reference) in existing:
            continue
        body: dict[str, Any] = {"jobId": int(job_id), "name": line.name,
                                "quantity": line.quantity, "cost": line.cost,
                                "source": {"type": "refnumber", "value": reference}}  # fmt: skip
        if line.service_line_id is not None:
            body["serviceLineId"] = line.service_line_id
        created.append(client.job_item_create(body))
    return created
