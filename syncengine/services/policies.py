"""Posting policies that hold or release records: closed periods (hold or re-date) and
prerequisites missing in the ERP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from mappings.resolve import InvoicePlan, Problem
from syncengine.canonical import (
    invoice_from_dict,
    job_cost_from_dict,
    procurement_from_dict,
    timecard_from_dict,
)
from syncengine.models import Connection, DocumentKind, Operation, SyncRecord, SyncState
from syncengine.plans import PolicyInvalid, PostingPolicy
from syncengine.services.records import COST_KINDS, Outcome, _cause, _retry

PERIOD_CLOSED = "PERIOD_CLOSED"

MISSING_PREREQUISITE = "MISSING_PREREQUISITE"

UNKNOWN_VENDOR = "UNKNOWN_VENDOR"


def posting_policy(connection: Connection) -> PostingPolicy | Outcome:
    try:
        return PostingPolicy.of(connection)
    except PolicyInvalid as invalid:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            "BAD_POLICY", "The connection's posting policies cannot be read: "
            + " ".join(invalid.errors) + " Fix them on the connection's settings page.",
        ),))  # fmt: skip


def plan_in_open_period(
    plan: InvoicePlan, policy: PostingPolicy
) -> tuple[InvoicePlan, dict[str, Any]] | Outcome:
    """The plan as it may post: held (BLOCKED) or re-dated when its date is in a closed period."""
    day = _open_day(plan.posting_date, policy)
    if isinstance(day, Outcome):
        return day
    moved, notes = day
    return (dataclasses.replace(plan, posting_date=moved) if notes else plan), notes


def _open_day(day: date, policy: PostingPolicy) -> tuple[date, dict[str, Any]] | Outcome:
    """`day` when open; else held (BLOCKED) or the first open day with the note that says so."""
    until = policy.closed_until(day)
    if until is None:
        return day, {}
    if policy.closed_period_policy == "hold":
        return _held_for_period(day, until)
    moved = policy.first_open_day(day)
    note = (
        f"Posting date moved from {day} to {moved}, the first open day: "
        f"{day} is in a closed period (closed through {until})."
    )
    return moved, {"redated_from": day.isoformat(), "redated_note": note}


def _open_day_for(connection: Connection, day: date) -> tuple[date, dict[str, Any]] | Outcome:
    """`_open_day` under the connection's own policy (BLOCKED when that cannot be read)."""
    policy = posting_policy(connection)
    if isinstance(policy, Outcome):
        return policy
    return _open_day(day, policy)


def _held_for_period(day: date, until: date, *, what: str = "The posting date") -> Outcome:
    return Outcome(SyncState.BLOCKED, problems=(Problem(PERIOD_CLOSED, (
        f"{what} {day} is in a closed period (closed through {until}). Held: it posts by "
        "itself once the period is reopened on the connection's settings page; or cancel it."
    )),))  # fmt: skip


def period_holds_release(*, connection: Connection, actor: str, now: datetime) -> int:
    """Send again the records held for a closed period whose date is open now (or that the
    connection now re-dates). Called when an Admin saves the ERP settings; returns how many."""
    try:
        policy = PostingPolicy.of(connection)
    except PolicyInvalid:
        return 0
    held = SyncRecord.objects.select_for_update().filter(
        connection=connection, state=SyncState.BLOCKED, failure_cause=PERIOD_CLOSED
    )
    released = 0
    today = timezone.localdate(now, timezone=ZoneInfo(connection.time_zone))
    for record in held.select_related("document"):
        days = _posting_days(record, today=today)
        redates = policy.closed_period_policy == "redate" and record.document.kind != (
            DocumentKind.TIMECARD
        )
        if redates or all(policy.closed_until(day) is None for day in days):
            _retry(record, actor=actor, now=now,
                   detail="The closed period changed: sending again.")  # fmt: skip
            released += 1
    return released


def prerequisites_release(
    *,
    connection: Connection,
    actor: str,
    now: datetime,
    detail: str,
    found: Iterable[str] | None = None,
    vendors: Iterable[str] | None = None,
) -> int:
    """Send again the records blocked on a missing prerequisite: those waiting for one of `found`
    ("<KIND>:<code>", as a catalog read lists them), for one of `vendors` (ids just imported), or
    every one when neither is given (the connection's settings changed, e.g. it may now create
    customers). A record still missing it blocks again at once, naming it. Returns how many."""
    everything = found is None and vendors is None
    causes = {_cause(MISSING_PREREQUISITE, value) for value in found or ()}
    causes |= {_cause(UNKNOWN_VENDOR, value) for value in vendors or ()}
    released = 0
    with transaction.atomic():
        # Few records wait at a time, while a catalog read can list thousands of customers:
        # read the waiting ones and match in Python rather than send thousands of parameters.
        waiting = SyncRecord.objects.select_for_update().filter(
            connection=connection, state=SyncState.BLOCKED,
            failure_category__in=[MISSING_PREREQUISITE, UNKNOWN_VENDOR],
        )  # fmt: skip
        for record in waiting.order_by("pk"):
            if everything or record.failure_cause in causes:
                _retry(record, actor=actor, now=now, detail=detail)
                released += 1
    return released


def _posting_days(record: SyncRecord, *, today: date) -> list[date]:
    """The dates a held record would post on, by kind (for releasing closed-period holds)."""
    kind, canonical = record.document.kind, record.document.canonical
    if record.operation == Operation.VOID_CREDIT_MEMO:
        return [today]
    if kind == DocumentKind.TIMECARD:
        card = timecard_from_dict(canonical)
        return [entry.work_date for entry in card.entries] or [card.week_starting]
    if kind == DocumentKind.JOB_COST:
        return [job_cost_from_dict(canonical).used_on]
    if kind in COST_KINDS:
        return [procurement_from_dict(canonical).document_date]
    return [invoice_from_dict(canonical).transaction_date]
