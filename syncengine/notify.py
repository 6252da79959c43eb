"""E-mail to a connection's support contacts (`Connection.support_emails`): when records pile up,
and once a day.

- **Rises.** `notifications_check` counts the connection's records blocked by a missing
  prerequisite or mapping (`BLOCKED`, or `FAILED` with category `PREREQUISITE`) and the other
  failed ones. It mails only when a count rises above the one last told (`NotificationMark`);
  a fall lowers the mark without a mail, so the next rise is told again. A failing ERP
  connection is told separately, once, when its circuit opens (`syncengine/circuit.py`).
- **Digest.** `notifications_digest_send` sums up one day of the connection's own time zone:
  posted that day, and what waits, is blocked (by cause), failed or uncertain now, with links
  to the console (`CROSSWALK_CONSOLE_URL`). Beat asks every 15 minutes; yesterday's digest goes
  with the first run after `CROSSWALK_DIGEST_HOUR` local time, once (`DigestSent`).

Each mail is claimed in the database first (a conditional update, or a unique row), committed,
and only then sent; a send that fails gives the claim back, so the next run tries again. Nothing
is sent to a connection without support contacts.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.urls import reverse

from paymentsync.models import DigestSent, NotificationKind, NotificationMark
from syncengine.erps.base import FailureCategory
from syncengine.models import Connection, SyncRecord, SyncState

logger = logging.getLogger(__name__)

# What a person has to fix before these records can post: a mapping or a prerequisite.
BLOCKED_Q = Q(state=SyncState.BLOCKED) | Q(
    state=SyncState.FAILED, failure_category=FailureCategory.PREREQUISITE
)
FAILED_Q = Q(state=SyncState.FAILED) & ~Q(failure_category=FailureCategory.PREREQUISITE)
WAITING_STATES = (SyncState.RECEIVED, SyncState.READY, SyncState.POSTING,
                  SyncState.RETRY_SCHEDULED)  # fmt: skip
CAUSES_SHOWN = 10


def console_url(path: str, **query: str) -> str:
    """An absolute link into the console for an e-mail."""
    suffix = f"?{urlencode(query)}" if query else ""
    return f"{settings.CROSSWALK_CONSOLE_URL}{path}{suffix}"


def notification_counts(*, connection: Connection) -> dict[str, int]:
    counts = SyncRecord.objects.filter(connection=connection).aggregate(
        blocked=Count("pk", filter=BLOCKED_Q), failed=Count("pk", filter=FAILED_Q)
    )
    return {NotificationKind.BLOCKED: counts["blocked"], NotificationKind.FAILED: counts["failed"]}


# --- rises --------------------------------------------------------------------------------------


def notifications_check(*, connection: Connection, now: datetime) -> list[str]:
    """Mail the support contacts about each count that rose since it was last told; returns
    the kinds mailed. A send that fails is logged and tried again on the next run."""
    if not connection.support_emails:
        return []
    mailed = []
    for kind, count in notification_counts(connection=connection).items():
        mark, _ = NotificationMark.objects.get_or_create(connection=connection, kind=kind)
        told = mark.count_told
        if count == told:
            continue
        # Claimed by a conditional update (committed at once: no transaction is open here), so
        # two runs at the same moment do not both mail.
        claimed = NotificationMark.objects.filter(pk=mark.pk, count_told=told).update(
            count_told=count, told_at=now if count > told else mark.told_at
        )
        if not claimed or count < told:
            continue
        try:
            _send(connection, *_rise_mail(connection, kind, count, told))
        except Exception:
            logger.exception("Could not mail %s about %s records", connection.slug, kind)
            NotificationMark.objects.filter(pk=mark.pk, count_told=count).update(count_told=told)
            continue
        mailed.append(kind)
    return mailed


def _rise_mail(connection: Connection, kind: str, count: int, told: int) -> tuple[str, str]:
    blocked = kind == NotificationKind.BLOCKED
    what = "blocked: something must be mapped or set up first" if blocked else "failed"
    subject = f"Crosswalk: {count} record(s) of {connection.name} {kind.lower()}"
    records = SyncRecord.objects.filter(BLOCKED_Q if blocked else FAILED_Q, connection=connection)
    state = SyncState.BLOCKED if blocked else SyncState.FAILED
    log = reverse("console:sync-log")
    lines = [
        f"{count} record(s) of {connection.name} are {what} (last time we wrote: {told}).",
        "",
        *_cause_lines(connection, records),
        "",
        f"See them: {console_url(log, connection=connection.slug, state=state)}",
        f"Dashboard: {console_url(reverse('console:dashboard', args=[connection.slug]))}",
        "",
        "You get this e-mail when the number rises, not for every record.",
    ]
    return subject, "\n".join(lines)


def _cause_lines(connection: Connection, records: Any) -> list[str]:
    groups = (
        records.values("failure_cause")
        .annotate(count=Count("pk"))
        .order_by("-count", "failure_cause")[:CAUSES_SHOWN]
    )
    lines = []
    for group in groups:
        cause = group["failure_cause"] or "(no cause recorded)"
        example = records.filter(failure_cause=group["failure_cause"]).order_by("-pk").first()
        message = f" — {example.message[:200]}" if example and example.message else ""
        link = console_url(reverse("console:sync-log"), connection=connection.slug,
                           cause=group["failure_cause"])  # fmt: skip
        lines.append(f"- {group['count']} × {cause}{message}\n  {link}")
    return lines


# --- the daily digest ---------------------------------------------------------------------------


def digest_day_due(*, connection: Connection, now: datetime) -> date | None:
    """Yesterday in the connection's time zone, once it is past the digest hour there and that
    day's digest has not gone; otherwise None."""
    local = now.astimezone(ZoneInfo(connection.time_zone))
    if local.hour < settings.CROSSWALK_DIGEST_HOUR:
        return None
    day = local.date() - timedelta(days=1)
    if DigestSent.objects.filter(connection=connection, day=day).exists():
        return None
    return day


def notifications_digest_send(*, connection: Connection, day: date, now: datetime) -> bool:
    """Mail the digest of `day` (the connection's own day) unless it went already; returns
    whether it was sent. Raises what the mail backend raises (the claim is given back first)."""
    if not connection.support_emails:
        return False
    counts, body = digest(connection=connection, day=day)
    try:
        with transaction.atomic():
            claim = DigestSent.objects.create(connection=connection, day=day, sent_at=now,
                                              counts=counts)  # fmt: skip
    except IntegrityError:
        return False  # another run sent it
    try:
        _send(connection, f"Crosswalk daily digest for {connection.name}, {day:%a %d %b %Y}", body)
    except Exception:
        claim.delete()
        raise
    return True


def digest(*, connection: Connection, day: date) -> tuple[dict[str, Any], str]:
    """The day's figures and the mail's text."""
    zone = ZoneInfo(connection.time_zone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    records = SyncRecord.objects.filter(connection=connection)
    posted = records.filter(state=SyncState.POSTED, posted_at__gte=start,
                            posted_at__lt=start + timedelta(days=1))  # fmt: skip
    posted_sum = posted.aggregate(n=Count("pk"), total=Sum("document__total"))
    now_counts = records.aggregate(
        waiting=Count("pk", filter=Q(state__in=WAITING_STATES)),
        blocked=Count("pk", filter=BLOCKED_Q),
        failed=Count("pk", filter=FAILED_Q),
        uncertain=Count("pk", filter=Q(state=SyncState.UNCERTAIN)),
    )
    total = Decimal(posted_sum["total"] or 0).quantize(Decimal("0.01"))
    counts = {"day": day, "posted": posted_sum["n"], "posted_total": total, **now_counts}
    log = reverse("console:sync-log")

    def link(**query: str) -> str:
        return console_url(log, connection=connection.slug, **query)

    lines = [
        f"{connection.name}, {day:%A %d %B %Y} ({connection.time_zone}).",
        "",
        f"Posted that day: {counts['posted']} record(s), documents totalling {total} "
        f"{connection.currency}.",
        "",
        "Now:",
        f"- waiting to post: {counts['waiting']}",
        f"- blocked (a mapping or prerequisite is missing): {counts['blocked']}",
        f"  {link(state=SyncState.BLOCKED)}",
        *(f"  {line}" for line in _cause_lines(connection, records.filter(BLOCKED_Q))),
        f"- failed: {counts['failed']}",
        f"  {link(state=SyncState.FAILED)}",
        f"- uncertain (the ERP may have them; Crosswalk looks them up): {counts['uncertain']}",
        f"  {link(state=SyncState.UNCERTAIN)}",
        "",
        f"Dashboard: {console_url(reverse('console:dashboard', args=[connection.slug]))}",
    ]
    return counts, "\n".join(lines)


def _send(connection: Connection, subject: str, body: str) -> None:
    send_mail(subject=subject, message=body, from_email=settings.DEFAULT_FROM_EMAIL,
              recipient_list=list(connection.support_emails))  # fmt: skip


# --- beat -----------------------------------------------------------------------------------------


def _with_contacts() -> list[Connection]:
    # A handful of connections: filtered here rather than by a JSON lookup per database.
    return [c for c in Connection.objects.order_by("pk") if c.support_emails]


def notifications_check_all(*, now: datetime) -> int:
    """Every connection with support contacts; returns how many mails went."""
    return sum(len(notifications_check(connection=c, now=now)) for c in _with_contacts())


def notifications_digest_all(*, now: datetime) -> int:
    """Yesterday's digest to every connection that is due; one that fails does not stop the
    others. Returns how many went."""
    sent = 0
    for connection in _with_contacts():
        day = digest_day_due(connection=connection, now=now)
        if day is None:
            continue
        try:
            sent += notifications_digest_send(connection=connection, day=day, now=now)
        except Exception:
            logger.exception("Could not mail the digest of %s", connection.slug)
    return sent
