"""Approved timecards into time entries: ingestion, the weekly catch-up and posting."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction

from mappings.catalog import catalog_cached, source_values_record
from mappings.resolve import Problem
from mappings.resolve_time import TimePlan, resolve_timecard
from mappings.services import rules_in_force
from syncengine.canonical import Timecard, timecard_from_dict, to_jsonable
from syncengine.erps.base import Connector
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    SourceDocument,
    SourceReceipt,
    SyncRecord,
    SyncState,
)
from syncengine.services.ingest import IngestResult, _receipt_create, _receipt_outcome
from syncengine.services.policies import _held_for_period, posting_policy
from syncengine.services.records import (
    SYSTEM,
    Outcome,
    _event,
    _nudge_if_ready,
    _transition,
    timecard_key,
)
from syncengine.sources import servicetrade, servicetrade_time


def timecards_ingest(
    *, connection: Connection, body: bytes, channel: str, origin: str, now: datetime
) -> IngestResult:
    """Keep the body, then accept each timecard in it on its own; only approved time posts."""
    receipt = _receipt_create(connection, body, channel, origin, now)
    result = IngestResult(receipt=receipt)
    try:
        elements = servicetrade_time.split_timecards(servicetrade.loads(body))
    except servicetrade.InvalidDocument as invalid:
        result.errors.extend(invalid.errors)
        elements = []
    for index, element in enumerate(elements):
        try:
            card = servicetrade_time.parse_timecard(element)
        except servicetrade.InvalidDocument as invalid:
            prefix = f"timecard {index + 1} of {len(elements)}: " if len(elements) > 1 else ""
            result.errors.extend(prefix + error for error in invalid.errors)
            continue
        record, changed = timecard_accept(connection=connection, receipt=receipt, payload=element,
                                          card=card, now=now)  # fmt: skip
        if changed:
            result.accepted.append(record)
        else:
            result.unchanged += 1
    receipt.outcome = _receipt_outcome(result)
    receipt.errors = result.errors
    receipt.save(update_fields=["outcome", "errors"])
    return result


APPROVED_TIME = "approved"


@transaction.atomic
def timecard_accept(
    *,
    connection: Connection,
    receipt: SourceReceipt,
    payload: Any,
    card: Timecard,
    now: datetime,
) -> tuple[SyncRecord, bool]:
    """Store one timecard and bring its record up to date. A changed card that already posted
    is sent again: entries already in the ERP are skipped by their keys, new ones post."""
    canonical = to_jsonable(card)
    content_hash = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    document = (
        SourceDocument.objects.select_for_update()
        .filter(connection=connection, kind=DocumentKind.TIMECARD, source_id=card.source_id)
        .first()
    )
    # Technicians and labor types are learned here, for the coverage warnings of validation.
    values = [("technician", card.technician_id or card.technician)]
    values += [("labor_type", entry.labor_type) for entry in card.entries]
    source_values_record(connection=connection, values=values, now=now,
                         new_document=document is None)  # fmt: skip
    if document is not None and document.content_hash == content_hash:
        return SyncRecord.objects.get(document=document, operation=Operation.CREATE), False
    if document is None:
        document = SourceDocument(connection=connection, kind=DocumentKind.TIMECARD,
                                  source_id=card.source_id, first_received_at=now)  # fmt: skip
    document.number, document.status = card.source_id, card.status
    document.customer_name, document.total = card.technician[:200], None
    document.payload, document.canonical, document.content_hash = payload, canonical, content_hash
    document.receipt, document.last_received_at = receipt, now
    document.save()
    message = not_approved(card)
    approved = not message
    state = SyncState.READY if approved else SyncState.SKIPPED
    record = (
        SyncRecord.objects.select_for_update()
        .filter(document=document, operation=Operation.CREATE)
        .first()
    )
    if record is None:
        record = SyncRecord.objects.create(
            connection=connection, document=document, operation=Operation.CREATE,
            idempotency_key=timecard_key(card.source_id), state=state, message=message,
            next_attempt_at=now if approved else None, received_at=now, state_changed_at=now,
        )  # fmt: skip
        _event(
            record,
            "",
            state,
            actor=SYSTEM,
            now=now,
            detail=message or f"Received timecard {card.source_id} of {card.technician}.",
        )
    elif record.state not in (SyncState.POSTING, SyncState.UNCERTAIN):
        detail = (
            message
            or "Timecard changed in ServiceTrade: sending it (again); entries "
            "already in the ERP are skipped."
        )
        _transition(record, state, actor=SYSTEM, now=now, detail=detail, message=message,
                    problems=[], next_attempt_at=now if approved else None)  # fmt: skip
    else:
        # Being sent right now: the weekly catch-up (or the next change) sends the new version;
        # entries already in the ERP are skipped then.
        _event(record, record.state, record.state, actor=SYSTEM, now=now,
               detail="Timecard changed in ServiceTrade while it was being sent: the new "
               "version goes with the weekly catch-up.")  # fmt: skip
    _nudge_if_ready(record)
    return record, True


def not_approved(card: Timecard) -> str:
    """Why the card is not posted (its status), or "" when it is approved."""
    if card.status == APPROVED_TIME:
        return ""
    return f"Status {card.status!r}: only approved time is posted."


def timecards_catch_up(*, now: datetime, days: int = 7) -> int:
    """Weekly: send the past week's approved timecards again; what already went is skipped
    (each entry's key), anything the real-time path missed posts. Returns how many were sent."""
    recent = now - timedelta(days=days + 7)
    records = SyncRecord.objects.filter(
        document__kind=DocumentKind.TIMECARD, document__status=APPROVED_TIME,
        document__last_received_at__gte=recent, state=SyncState.POSTED,
    )  # fmt: skip
    sent = 0
    for record in records.iterator():
        with transaction.atomic():
            locked = SyncRecord.objects.select_for_update().get(pk=record.pk)
            if locked.state != SyncState.POSTED:
                continue
            _transition(locked, SyncState.READY, actor="weekly catch-up", now=now,
                        detail="Weekly catch-up: sending again; entries already in the ERP are "
                        "skipped.", next_attempt_at=now)  # fmt: skip
            _nudge_if_ready(locked)
            sent += 1
    return sent


def _post_timecard(record: SyncRecord, connector: Connector) -> Outcome:
    card = timecard_from_dict(record.document.canonical)
    plan = timecard_plan(connection=record.connection, card=card)
    if isinstance(plan, Outcome):
        return plan
    document = connector.post_time_entries(plan=plan, key=record.idempotency_key)
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan)


def timecard_plan(*, connection: Connection, card: Timecard) -> TimePlan | Outcome:
    """The time entries a timecard is sent as, coded with the rules in force on its week;
    BLOCKED with every problem, or held while a work date is in a closed period. Only reads:
    posting and `preview_posting` (syncengine.preview) share it."""
    rules = rules_in_force(connection=connection, on=card.week_starting)
    if rules is None:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            "NO_RULES", f"No posting rules are in force on {card.week_starting}.",
        ),))  # fmt: skip
    plan = resolve_timecard(card, rules.compiled, catalog_cached(connection=connection))
    if isinstance(plan, list):
        return Outcome(SyncState.BLOCKED, problems=tuple(plan))
    held = _time_in_closed_period(connection, plan)
    return plan if held is None else held


def _time_in_closed_period(connection: Connection, plan: TimePlan) -> Outcome | None:
    """Held when any entry's work date is in a closed period, whatever the policy: a work date
    says when people worked, so it is never moved."""
    policy = posting_policy(connection)
    if isinstance(policy, Outcome):
        return policy
    for entry in plan.entries:
        day = date.fromisoformat(entry.work_date)
        until = policy.closed_until(day)
        if until is not None:
            return _held_for_period(day, until, what="The work date")
    return None
