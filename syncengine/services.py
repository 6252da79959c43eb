"""Writes of the sync engine: ingest source documents, claim and post sync records, retry.

The rules that keep postings single and nothing lost:
- A sync record is unique per (connection, idempotency key); receiving a document again updates
  the same row and never creates a second one.
- A claim is a short transaction that moves the row to POSTING under a lease; the ERP is called
  with no transaction open; the outcome is written in a second short transaction, and only by the
  worker that still holds the lease.
- Any attempt after the first looks the document up in the ERP by its key before creating it, so
  a crash between "the ERP accepted it" and "we recorded it" ends in POSTED, not a duplicate.
- Every transition writes exactly one `SyncEvent` in the same transaction as the change.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import random
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from mappings.catalog import SourceValueBatch, catalog_cached, source_values_record
from mappings.resolve import InvoicePlan, Problem, invoice_plan_from_dict, resolve_invoice
from mappings.resolve_cost import (
    JournalPlan,
    PurchasePlan,
    resolve_inventory_adjustment,
    resolve_job_cost,
    resolve_purchase_invoice,
)
from mappings.resolve_time import TimePlan, resolve_timecard
from mappings.services import rules_in_force
from syncengine.canonical import (
    Invoice,
    JobCost,
    ProcurementDocument,
    ProcurementKind,
    Timecard,
    invoice_from_dict,
    job_cost_from_dict,
    procurement_from_dict,
    timecard_from_dict,
    to_jsonable,
)
from syncengine.circuit import circuit_failure, circuit_success
from syncengine.erps.base import Connector, ConnectorError, ErpDocument, FailureCategory
from syncengine.erps.exchanges import exchanges_captured, exchanges_made
from syncengine.erps.registry import connector_for
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    PostedChange,
    SourceDocument,
    SourceReceipt,
    SyncEvent,
    SyncRecord,
    SyncRecordQuerySet,
    SyncState,
)
from syncengine.money import ZERO
from syncengine.plans import (
    PolicyInvalid,
    PostingPolicy,
    is_credit,
    is_mixed,
    part_key,
    split,
)
from syncengine.ratelimit import rate_budget_charge, rate_budget_take
from syncengine.sources import procurement, servicetrade, servicetrade_jobcost, servicetrade_time

logger = logging.getLogger(__name__)

SYSTEM = "system"
VOID_STATUS = "void"
BACKOFF_CAP_SECONDS = 3600


# --- ingestion --------------------------------------------------------------------------------


@dataclass
class IngestResult:
    receipt: SourceReceipt
    accepted: list[SyncRecord] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    seen: SourceValueBatch = field(default_factory=SourceValueBatch)


def invoices_ingest(
    *, connection: Connection, body: bytes, channel: str, origin: str, now: datetime
) -> IngestResult:
    """Keep the body, then accept each invoice in it on its own.

    A malformed invoice is reported (every problem, each naming its field) and the others in the
    same body are still accepted. Never raises for bad input.
    """
    receipt = _receipt_create(connection, body, channel, origin, now)
    result = IngestResult(receipt=receipt)
    try:
        elements = servicetrade.split_invoices(servicetrade.loads(body))
    except servicetrade.InvalidDocument as invalid:
        result.errors.extend(invalid.errors)
        elements = []
    # One commit for the whole body; each invoice is its own savepoint, so a failing one is
    # rolled back alone and the others are kept. Workers are nudged once it commits.
    with transaction.atomic():
        for index, element in enumerate(elements):
            _ingest_one(connection, receipt, element, index, len(elements), now, result)
        result.seen.flush(connection=connection, now=now)
    receipt.outcome = _receipt_outcome(result)
    receipt.errors = result.errors
    receipt.save(update_fields=["outcome", "errors"])
    return result


def _receipt_create(
    connection: Connection, body: bytes, channel: str, origin: str, now: datetime
) -> SourceReceipt:
    """The body as it arrived, kept before anything else happens (base64 if not UTF-8)."""
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    return SourceReceipt.objects.create(
        connection=connection, channel=channel, origin=origin[:500], body=text,
        body_is_base64=is_base64, body_bytes=len(body), received_at=now,
    )  # fmt: skip


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


def timecard_key(source_id: str) -> str:
    return _erp_key("ST-TC-", source_id)


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
    approved = card.status == APPROVED_TIME
    state = SyncState.READY if approved else SyncState.SKIPPED
    message = "" if approved else f"Status {card.status!r}: only approved time is posted."
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


def _ingest_one(
    connection: Connection,
    receipt: SourceReceipt,
    element: Any,
    index: int,
    count: int,
    now: datetime,
    result: IngestResult,
) -> None:
    try:
        invoice = servicetrade.parse_invoice(
            element, currency=connection.currency, time_zone=connection.time_zone
        )
    except servicetrade.InvalidDocument as invalid:
        label = _element_label(element, index, count)
        result.errors.extend(f"{label}{error}" for error in invalid.errors)
        return
    try:
        record, changed = invoice_accept(
            connection=connection,
            receipt=receipt,
            payload=element,
            invoice=invoice,
            now=now,
            seen=result.seen,
        )
    except IntegrityError:
        # The same new invoice arrived twice at once and the other delivery created it first;
        # accepting again now finds that row.
        record, changed = invoice_accept(
            connection=connection,
            receipt=receipt,
            payload=element,
            invoice=invoice,
            now=now,
            seen=result.seen,
        )
    if changed:
        result.accepted.append(record)
    else:
        result.unchanged += 1


def _element_label(element: Any, index: int, count: int) -> str:
    if count == 1:
        return ""
    number = element.get("invoiceNumber") if isinstance(element, dict) else None
    return f"invoice {index + 1} of {count}" + (f" ({number})" if number else "") + ": "


def _receipt_outcome(result: IngestResult) -> str:
    if not result.errors:
        return SourceReceipt.Outcome.ACCEPTED
    if result.accepted or result.unchanged:
        return SourceReceipt.Outcome.PARTLY_ACCEPTED
    return SourceReceipt.Outcome.REJECTED


ERP_KEY_LENGTH = 35  # Business Central's externalDocumentNumber, the shortest target field


def _erp_key(prefix: str, source_id: str) -> str:
    """prefix + source id, or prefix + a hash of it when that would not fit the ERP's field."""
    key = f"{prefix}{source_id}"
    if len(key) <= ERP_KEY_LENGTH:
        return key
    return prefix + hashlib.sha256(source_id.encode()).hexdigest()[: ERP_KEY_LENGTH - len(prefix)]


def invoice_key(source_id: str) -> str:
    """The idempotency key written into the ERP document; at most 35 characters (BC's limit)."""
    return _erp_key("ST-INV-", source_id)


CREDIT_MEMO_PREFIX = "ST-CM-"


def credit_memo_key(source_id: str) -> str:
    """The key of a credit issued in ServiceTrade (an invoice whose total is negative)."""
    return _erp_key(CREDIT_MEMO_PREFIX, source_id)


def _key_for(invoice: Invoice) -> str:
    credit = invoice.total < ZERO
    return credit_memo_key(invoice.source_id) if credit else invoice_key(invoice.source_id)


@transaction.atomic
def invoice_accept(
    *,
    connection: Connection,
    receipt: SourceReceipt,
    payload: Any,
    invoice: Invoice,
    now: datetime,
    seen: SourceValueBatch | None = None,
) -> tuple[SyncRecord, bool]:
    """Store one parsed invoice and bring its sync record up to date.

    Returns the record and whether anything changed (False for an exact repeat delivery).
    Source values go to `seen` when given (written once per body), else straight away.
    """
    canonical = to_jsonable(invoice)
    content_hash = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    document = (
        SourceDocument.objects.select_for_update()
        .filter(connection=connection, kind=DocumentKind.INVOICE, source_id=invoice.source_id)
        .first()
    )
    # Still seen, even when unchanged: keeps the values "recent" for coverage warnings.
    if seen is not None:
        seen.add(_source_values(invoice), new_document=document is None)
    else:
        source_values_record(
            connection=connection, values=_source_values(invoice), now=now,
            new_document=document is None,
        )  # fmt: skip
    if document is not None and document.content_hash == content_hash:
        document.last_received_at = now
        document.save(update_fields=["last_received_at"])
        return SyncRecord.objects.get(document=document, operation=Operation.CREATE), False
    previous = document.canonical if document is not None else None
    document = _document_save(
        document, connection, receipt, payload, invoice, canonical, content_hash, now
    )
    record = (
        SyncRecord.objects.select_for_update()
        .filter(document=document, operation=Operation.CREATE)
        .first()
    )
    if record is None:
        record = _record_create(connection, document, invoice, now)
    else:
        _record_source_changed(record, invoice, previous, canonical, now)
    return record, True


def _source_values(invoice: Invoice) -> list[tuple[str, str]]:
    """What validation checks for coverage: the values this invoice needs mapped."""
    values = [
        ("office", invoice.office.name),
        ("job_type", invoice.job.job_type),
        ("location_state", invoice.location.address.state),
        ("tax_rate", str(invoice.tax_rate)),
    ]
    values += [("service_line", line.service_line) for line in invoice.lines]
    values += [("item_type", line.item_type) for line in invoice.lines]
    values += [("customer_tag", tag) for tag in invoice.customer_tags]
    return values


def _document_save(
    document: SourceDocument | None,
    connection: Connection,
    receipt: SourceReceipt,
    payload: Any,
    invoice: Invoice,
    canonical: dict[str, Any],
    content_hash: str,
    now: datetime,
) -> SourceDocument:
    if document is None:
        document = SourceDocument(
            connection=connection,
            kind=DocumentKind.INVOICE,
            source_id=invoice.source_id,
            first_received_at=now,
        )
    document.number = invoice.number
    document.status = invoice.status
    document.customer_name = invoice.customer.name[:200]
    document.total = invoice.total
    document.payload = payload
    document.canonical = canonical
    document.content_hash = content_hash
    document.receipt = receipt
    document.last_received_at = now
    document.save()
    return document


def _record_create(
    connection: Connection, document: SourceDocument, invoice: Invoice, now: datetime
) -> SyncRecord:
    state, message = _state_for_status(connection, invoice.status)
    record = SyncRecord.objects.create(
        connection=connection,
        document=document,
        operation=Operation.CREATE,
        idempotency_key=_key_for(invoice),
        state=state,
        message=message,
        next_attempt_at=now if state == SyncState.READY else None,
        received_at=now,
        state_changed_at=now,
    )
    _event(
        record,
        "",
        state,
        actor=SYSTEM,
        now=now,
        detail=message or f"Received invoice {invoice.number}.",
    )
    _nudge_if_ready(record)
    return record


def _state_for_status(connection: Connection, status: str) -> tuple[str, str]:
    if status == VOID_STATUS:
        return SyncState.SKIPPED, "Voided in ServiceTrade before it was posted: nothing to post."
    if status not in {approved.lower() for approved in connection.approved_statuses}:
        approved = ", ".join(connection.approved_statuses)
        return (
            SyncState.SKIPPED,
            f"Status {status!r} is not approved for posting (approved: {approved}).",
        )
    return SyncState.READY, ""


# States in which a record has not reached the ERP and may be re-evaluated from new source data.
_NOT_YET_SENT = {
    SyncState.RECEIVED,
    SyncState.BLOCKED,
    SyncState.READY,
    SyncState.RETRY_SCHEDULED,
    SyncState.FAILED,
    SyncState.SKIPPED,
}


def _record_source_changed(
    record: SyncRecord,
    invoice: Invoice,
    previous: dict[str, Any] | None,
    canonical: dict[str, Any],
    now: datetime,
) -> None:
    diff = _diff(previous or {}, canonical)
    if invoice.status == VOID_STATUS:
        _void_received(record, invoice, diff, now)
        return
    if record.state in _NOT_YET_SENT:
        state, message = _state_for_status(record.connection, invoice.status)
        # An invoice edited into a credit (or back) takes the other key, unless an attempt may
        # have landed under the old one: then the old key stays, so the lookup still finds it.
        key = _key_for(invoice) if record.attempts == 0 else record.idempotency_key
        _transition(
            record,
            state,
            actor=SYSTEM,
            now=now,
            detail=message or "Changed in ServiceTrade before posting; will post the new version.",
            data={"changes": diff},
            message=message,
            problems=[],
            next_attempt_at=now if state == SyncState.READY else None,
            idempotency_key=key,
        )
        _nudge_if_ready(record)
        return
    if record.state == SyncState.CANCELLED:
        _event(record, record.state, record.state, actor=SYSTEM, now=now, data={"changes": diff},
               detail="Changed in ServiceTrade after it was cancelled: nothing to do.")  # fmt: skip
        return
    # Sent or being sent: never re-post and never drop silently; a person decides.
    _posted_change_flag(record, previous or {}, canonical, now)


def _posted_change_flag(
    record: SyncRecord, previous: dict[str, Any], canonical: dict[str, Any], now: datetime
) -> None:
    """Open (or bring up to date) the change a person must decide on, diffed against the
    version that is in the ERP: the last reissued one, else the first one posted."""
    pending = record.changes.select_for_update().filter(
        decision=PostedChange.Decision.PENDING
    ).first()  # fmt: skip
    reissued = record.changes.filter(decision=PostedChange.Decision.VOID_AND_REISSUE).last()
    earliest = record.changes.order_by("id").first()
    posted = reissued.after if reissued else (earliest.before if earliest else previous)
    change = pending or PostedChange(record=record, before=posted,
                                     total_before=invoice_from_dict(posted).total)  # fmt: skip
    change.after, change.changes = canonical, _diff(posted, canonical)
    change.total_after, change.detected_at = invoice_from_dict(canonical).total, now
    change.save()
    when = "after it was posted" if record.state == SyncState.POSTED else "while it was being sent"
    again = " again; the decision waiting shows the latest version" if pending else ""
    _event(record, record.state, record.state, actor=SYSTEM, now=now,
           detail=f"Changed in ServiceTrade {when}{again}: total {change.total_before} → "
           f"{change.total_after}. Waiting for a person to void and reissue it, or ignore it.",
           data={"change": change.pk, "changes": change.changes})  # fmt: skip


def _void_received(
    record: SyncRecord, invoice: Invoice, diff: list[dict[str, Any]], now: datetime
) -> None:
    """A void cancels an invoice that never reached the ERP, and is offset by a credit memo for
    one that did (or may have). A repeated void changes nothing."""
    data = {"changes": diff}
    # A failed or retrying record that was attempted may be in the ERP (an unknown outcome):
    # it is offset like a posted one; the credit memo looks the invoice up first.
    possibly_sent = record.attempts > 0 and record.state in (
        SyncState.FAILED,
        SyncState.RETRY_SCHEDULED,
    )
    if record.state in _NOT_YET_SENT and not possibly_sent:
        _transition(
            record,
            SyncState.CANCELLED,
            actor=SYSTEM,
            now=now,
            data=data,
            detail="Voided in ServiceTrade before it was posted: cancelled, nothing to post.",
            message="Voided in ServiceTrade before it was posted.",
            next_attempt_at=None,
        )
        return
    credit = SyncRecord.objects.filter(
        document=record.document, operation=Operation.VOID_CREDIT_MEMO
    ).first()
    if record.idempotency_key.startswith(CREDIT_MEMO_PREFIX):
        _event(record, record.state, record.state, actor=SYSTEM, now=now, data=data,
               detail="Void of a credit memo: recognised and skipped; a credit is not offset "
               "by another credit. Reverse it in the ERP by hand if it must go.")  # fmt: skip
        return
    if credit is not None or record.state == SyncState.CANCELLED:
        _event(
            record,
            record.state,
            record.state,
            actor=SYSTEM,
            now=now,
            data=data,
            detail="Void received again: already handled, nothing more to do.",
        )
        return
    credit = SyncRecord.objects.create(
        connection=record.connection, document=record.document,
        operation=Operation.VOID_CREDIT_MEMO, idempotency_key=void_key(invoice.source_id),
        state=SyncState.READY, next_attempt_at=now, received_at=now, state_changed_at=now,
    )  # fmt: skip
    _event(
        credit,
        "",
        SyncState.READY,
        actor=SYSTEM,
        now=now,
        data=data,
        detail=f"Invoice {invoice.number} was voided in ServiceTrade: a credit memo will "
        "offset it exactly.",
    )
    _event(
        record,
        record.state,
        record.state,
        actor=SYSTEM,
        now=now,
        data=data,
        detail=f"Voided in ServiceTrade: credit memo record {credit.pk} will offset it.",
    )
    _nudge_if_ready(credit)


def void_key(source_id: str) -> str:
    return _erp_key("ST-VOID-", source_id)


def _current_posting(document: SourceDocument) -> SyncRecord:
    """The record whose ERP document stands for the document now: its latest reissue, if any."""
    return (
        SyncRecord.objects.filter(document=document, operation__in=(Operation.CREATE,
                                                                    Operation.REISSUE))
        .order_by("-revision")
        .first()
    ) or SyncRecord.objects.get(document=document, operation=Operation.CREATE)  # fmt: skip


def _pending_change(record: SyncRecord) -> PostedChange:
    change = (
        PostedChange.objects.select_for_update()
        .filter(record=record, decision=PostedChange.Decision.PENDING)
        .first()
    )
    if change is None:
        raise ValueError("This record has no change waiting for a decision.")
    return change


@transaction.atomic
def sync_record_change_ignore(
    *, record: SyncRecord, actor: str, now: datetime, reason: str
) -> PostedChange:
    """Keep the posted document as it is; the change is recorded as ignored, by whom and why.

    Raises ValueError without a reason or when no change waits for a decision."""
    if not reason.strip():
        raise ValueError("Say why: ignoring a change needs a reason.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    change = _pending_change(record)
    change.decision, change.decided_by, change.decided_at = (
        PostedChange.Decision.IGNORED, actor, now,
    )  # fmt: skip
    change.reason = reason.strip()[:500]
    change.save()
    _event(record, record.state, record.state, actor=actor, now=now,
           detail=f"Change ignored: {change.reason}. The posted document stays as it is.",
           data={"change": change.pk, "decision": change.decision})  # fmt: skip
    return change


@transaction.atomic
def sync_record_change_reissue(
    *, record: SyncRecord, actor: str, now: datetime, reason: str = ""
) -> PostedChange:
    """Void and reissue: a credit memo for the posted version, then the new version posted
    under a new key once the credit memo is in. Raises ValueError when no change waits, or the
    posted document cannot be reversed this way (not posted yet, a credit, split, voided)."""
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    change = _pending_change(record)
    current = _current_posting(record.document)
    _check_reversible(record, current)
    revision = current.revision + 1
    source_id = record.document.source_id
    credit, reissue = (
        SyncRecord.objects.create(
            connection=record.connection, document=record.document, operation=operation,
            revision=revision, idempotency_key=_erp_key(f"ST-{prefix}{revision}-", source_id),
            state=SyncState.READY, next_attempt_at=now, received_at=now, state_changed_at=now,
        )
        for operation, prefix in ((Operation.REVERSAL_CREDIT_MEMO, "RV"),
                                  (Operation.REISSUE, "RI"))
    )  # fmt: skip
    change.decision, change.decided_by, change.decided_at = (
        PostedChange.Decision.VOID_AND_REISSUE, actor, now,
    )  # fmt: skip
    change.reason, change.credit_record, change.reissue_record = (
        reason.strip()[:500],
        credit,
        reissue,
    )
    change.save()
    data = {"change": change.pk, "decision": change.decision}
    _event(
        credit,
        "",
        SyncState.READY,
        actor=actor,
        now=now,
        data=data,
        detail=f"Void and reissue: a credit memo will offset {current.erp_document_number}.",
    )
    _event(
        reissue,
        "",
        SyncState.READY,
        actor=actor,
        now=now,
        data=data,
        detail=f"Void and reissue: the edited version ({change.total_after}) posts once "
        f"credit memo record {credit.pk} is in.",
    )
    _event(record, record.state, record.state, actor=actor, now=now, data=data,
           detail=f"Void and reissue requested{': ' + change.reason if change.reason else ''}. "
           f"Credit record {credit.pk}, reissue record {reissue.pk}.")  # fmt: skip
    _nudge_if_ready(credit)
    _nudge_if_ready(reissue)
    return change


def _check_reversible(record: SyncRecord, current: SyncRecord) -> None:
    if current.state != SyncState.POSTED:
        raise ValueError(
            f"The document in the ERP is not settled yet ({current.get_state_display().lower()}):"
            " wait until it is posted, then decide."
        )
    if current.idempotency_key.startswith(CREDIT_MEMO_PREFIX) or _posted_parts(current):
        raise ValueError(
            "The posted document is a credit memo or was split in two: reverse it in the ERP "
            "by hand, then ignore this change with the reason."
        )
    if SyncRecord.objects.filter(document=record.document,
                                 operation=Operation.VOID_CREDIT_MEMO).exists():  # fmt: skip
        raise ValueError("The invoice was voided: there is nothing to reissue.")


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(before) | set(after))
    return [
        {"field": key, "before": before.get(key), "after": after.get(key)}
        for key in keys
        if before.get(key) != after.get(key)
    ]


# --- transitions and events -------------------------------------------------------------------


def _event(
    record: SyncRecord,
    from_state: str,
    to_state: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> SyncEvent:
    return SyncEvent.objects.create(
        record=record,
        at=now,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        detail=detail,
        data=json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder)),
    )


def _transition(
    record: SyncRecord,
    to_state: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    from_state = record.state
    record.state = to_state
    record.state_changed_at = now
    for name, value in fields.items():
        setattr(record, name, value)
    # Only what changed: rewriting every column would re-send the plan and problems (JSON) on
    # each of a record's several transitions.
    record.save(update_fields=None if record.pk is None else ["state", "state_changed_at", *fields])
    _event(record, from_state, to_state, actor=actor, now=now, detail=detail, data=data)


def _nudge_if_ready(record: SyncRecord) -> None:
    if record.state == SyncState.READY:
        sync_record_nudge(record_id=record.pk)


def sync_record_nudge(*, record_id: int) -> None:
    """After commit, wake a worker for this record. A lost message only delays it: the sweeper
    finds every due record in the database."""
    if not settings.CROSSWALK_NUDGE_WORKERS:
        return
    from syncengine.tasks import sync_record_post as sync_record_post_task

    transaction.on_commit(
        lambda: sync_record_post_task.apply_async(kwargs={"record_id": record_id}), robust=True
    )


# --- posting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    record_id: int
    token: str
    lookup_first: bool
    at: datetime


@dataclass(frozen=True)
class Outcome:
    state: str
    erp_document: ErpDocument | None = None
    found_by_lookup: bool = False
    plan: InvoicePlan | TimePlan | JournalPlan | PurchasePlan | None = None
    problems: tuple[Problem, ...] = ()
    error: ConnectorError | None = None
    detail: str = ""
    duplicate_refused: bool = False
    # Added to the stored plan and the POSTED event: the parts of a split, a re-dated posting.
    notes: dict[str, Any] = field(default_factory=dict)
    # The attempt's requests and responses (redacted, bounded), for the event that ends it.
    exchanges: dict[str, Any] = field(default_factory=dict)


def sync_record_post(
    *, record_id: int | None = None, now: Callable[[], datetime], actor: str = "worker"
) -> SyncRecord | None:
    """Claim one due record (this one, or the most overdue) and post it. None if nothing was due.

    Never raises for an ERP or data problem: the outcome is written on the record.
    """
    claim = _claim(record_id=record_id, now=now(), actor=actor)
    if claim is None:
        return None
    outcome = _attempt(claim)
    return _finish(claim, outcome, now=now(), actor=actor)


def _claim(*, record_id: int | None, now: datetime, actor: str) -> Claim | None:
    """Take the lease on one due record. Records whose workers keep dying are failed on the way
    (each in its own transaction) so they neither loop forever nor hide the records behind them."""
    while True:
        with transaction.atomic():
            # Lock only the record row: `runnable` joins the connection (circuit breaker), and
            # locking that shared row too would make concurrent claims skip each other's work.
            due = SyncRecord.objects.runnable(now).select_for_update(skip_locked=True, of=("self",))
            if record_id is not None:
                due = due.filter(pk=record_id)
            record = due.order_by("next_attempt_at", "id").first()
            if record is None:
                return None
            if record.state == SyncState.POSTING and _attempts_left(record) <= 0:
                _fail_abandoned(record, now=now, actor=actor)
                continue
            return _lease(record, now=now, actor=actor)


def _fail_abandoned(record: SyncRecord, *, now: datetime, actor: str) -> None:
    _transition(
        record,
        SyncState.FAILED,
        actor=actor,
        now=now,
        detail=f"The worker stopped during each of the last {record.attempts} attempts. "
        "Check the worker logs, then retry; the retry looks the invoice up first.",
        failure_category=FailureCategory.INTERNAL,
        next_attempt_at=None,
        message="Workers stopped while posting this record.",
        **_LEASE_CLEARED,
    )


def _lease(record: SyncRecord, *, now: datetime, actor: str) -> Claim:
    abandoned = record.state == SyncState.POSTING
    lookup_first = record.attempts > 0
    token = uuid.uuid4().hex
    detail = f"Attempt {record.attempts + 1}" + (
        " after the previous worker stopped: checking the ERP first."
        if abandoned
        else (": checking the ERP first." if lookup_first else ".")
    )
    _transition(
        record,
        SyncState.POSTING,
        actor=actor,
        now=now,
        detail=detail,
        attempts=record.attempts + 1,
        lease_token=token,
        lease_until=now + timedelta(seconds=settings.CROSSWALK_LEASE_SECONDS),
    )
    return Claim(record_id=record.pk, token=token, lookup_first=lookup_first, at=now)


def _attempt(claim: Claim) -> Outcome:
    """Talk to the ERP. Runs with no transaction open and no row locked. What was sent and what
    came back goes with the outcome, to be kept on the event that ends the attempt."""
    with exchanges_captured() as capture:
        outcome = _outcome_of_attempt(claim)
    return dataclasses.replace(outcome, exchanges=capture.as_data())


def _outcome_of_attempt(claim: Claim) -> Outcome:
    try:
        return _post_or_find(claim)
    except SoftTimeLimitExceeded:
        # The ERP call may have gone through: settle it by lookup on a later attempt.
        return Outcome(
            SyncState.FAILED,
            error=ConnectorError(
                "The ERP took too long to answer; whether it took the document is unknown.",
                category=FailureCategory.CONNECTION,
                transient=True,
                outcome_unknown=True,
            ),
        )
    except Exception as error:  # a bug must stop this record, not the worker or the others
        logger.exception("Unexpected error posting sync record %s", claim.record_id)
        return Outcome(
            SyncState.FAILED,
            error=ConnectorError(
                f"Unexpected error: {type(error).__name__}: {error}",
                category=FailureCategory.INTERNAL,
                transient=False,
            ),
        )


def _post_or_find(claim: Claim) -> Outcome:
    record = SyncRecord.objects.select_related("connection", "document").get(pk=claim.record_id)
    connector = connector_for(record.connection)
    wait = rate_budget_take(connection=record.connection, requests=1 + claim.lookup_first,
                            now=claim.at)  # fmt: skip
    if wait:
        return Outcome(SyncState.FAILED, error=ConnectorError(
            f"Holding back to stay within {record.connection.rate_limit_per_minute} ERP requests "
            "a minute.",
            category=FailureCategory.RATE_LIMIT, transient=True, retry_after_seconds=wait,
            throttled_locally=True,
        ))  # fmt: skip
    try:
        return _post_or_find_record(record, connector, claim)
    finally:
        # The budget was taken for one request (two with a lookup); an ERP whose posting takes
        # several (Business Central: lookups, a $batch, the post) is charged what it really made.
        extra = exchanges_made() - (1 + claim.lookup_first)
        if extra > 0:
            rate_budget_charge(connection=record.connection, requests=extra, now=claim.at)


def _post_or_find_record(record: SyncRecord, connector: Connector, claim: Claim) -> Outcome:
    try:
        if record.document.kind in COST_KINDS:
            return _post_cost_document(record, connector, lookup_first=claim.lookup_first)
        if claim.lookup_first:
            existing = connector.find_invoice(key=record.idempotency_key)
            if existing is not None:
                return Outcome(SyncState.POSTED, erp_document=existing, found_by_lookup=True)
        if record.operation == Operation.VOID_CREDIT_MEMO:
            return _credit_void(record, connector, now=claim.at)
        if record.operation == Operation.REVERSAL_CREDIT_MEMO:
            return _credit_reissued(record, connector)
        if record.document.kind == DocumentKind.TIMECARD:
            return _post_timecard(record, connector)
        if record.document.status == VOID_STATUS:
            # Voided while it waited (e.g. failed, then retried): never post a voided invoice.
            return Outcome(SyncState.SKIPPED, detail="Voided in ServiceTrade: not posted.")
        if record.operation == Operation.REISSUE:
            return _reissue(record, connector, lookup_first=claim.lookup_first)
        invoice = invoice_from_dict(record.document.canonical)
        return _post_invoice(record, connector, invoice, lookup_first=claim.lookup_first)
    except ConnectorError as error:
        if error.category == FailureCategory.PREREQUISITE and not error.transient:
            # Something the document needs is missing in the ERP: it waits, blocked, and is sent
            # again when the thing appears (`prerequisites_release`), not failed by the hundred.
            return Outcome(SyncState.BLOCKED, problems=(
                Problem(MISSING_PREREQUISITE, error.message, error.missing),
            ))  # fmt: skip
        if error.category == FailureCategory.DUPLICATE:
            # The ERP itself refused a second copy: our lookup should have found it first, so
            # this is recorded (`duplicate_refused`) and the reliability tests count it.
            existing = connector.find_invoice(key=record.idempotency_key)
            if existing is not None:
                return Outcome(SyncState.POSTED, erp_document=existing, found_by_lookup=True,
                               duplicate_refused=True)  # fmt: skip
        return Outcome(SyncState.FAILED, error=error)


def _post_invoice(
    record: SyncRecord, connector: Connector, invoice: Invoice, *, lookup_first: bool
) -> Outcome:
    """Code the invoice, apply the connection's posting policies, post one or two documents."""
    plan = _plan(record.connection, invoice)
    if isinstance(plan, list):
        return Outcome(SyncState.BLOCKED, problems=tuple(plan))
    policy = _policy(record.connection)
    if isinstance(policy, Outcome):
        return policy
    plan_or_hold = _open_period(plan, policy)
    if isinstance(plan_or_hold, Outcome):
        return plan_or_hold
    plan, notes = plan_or_hold
    if policy.mixed_sign == "split" and is_mixed(plan):
        outcome = _post_split(record, connector, plan, invoice, lookup_first=lookup_first)
        return dataclasses.replace(outcome, notes={**outcome.notes, **notes})
    document = _post_plan(connector, plan, record.idempotency_key)
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan, notes=notes)


PERIOD_CLOSED = "PERIOD_CLOSED"
MISSING_PREREQUISITE = "MISSING_PREREQUISITE"
UNKNOWN_VENDOR = "UNKNOWN_VENDOR"


def _policy(connection: Connection) -> PostingPolicy | Outcome:
    try:
        return PostingPolicy.of(connection)
    except PolicyInvalid as invalid:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            "BAD_POLICY", "The connection's posting policies cannot be read: "
            + " ".join(invalid.errors) + " Fix them on the connection's settings page.",
        ),))  # fmt: skip


def _open_period(
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


def _credit_reissued(record: SyncRecord, connector: Connector) -> Outcome:
    """The credit memo that takes the previous version out of the ERP before its reissue."""
    previous = SyncRecord.objects.get(
        document=record.document, revision=record.revision - 1,
        operation=Operation.CREATE if record.revision == 1 else Operation.REISSUE,
    )  # fmt: skip
    posting_date = timezone.localdate(timezone=ZoneInfo(record.connection.time_zone))
    document = connector.post_credit_memo(
        original_id=previous.erp_document_id, key=record.idempotency_key, posting_date=posting_date
    )
    return Outcome(SyncState.POSTED, erp_document=document)


def _reissue(record: SyncRecord, connector: Connector, *, lookup_first: bool) -> Outcome:
    """The edited version, coded and posted like an invoice, once its credit memo is in."""
    credit = SyncRecord.objects.get(document=record.document, revision=record.revision,
                                    operation=Operation.REVERSAL_CREDIT_MEMO)  # fmt: skip
    if credit.state != SyncState.POSTED:
        raise ConnectorError(
            f"Waiting for credit memo record {credit.pk} to post before reissuing.",
            category=FailureCategory.PREREQUISITE, transient=True,
        )  # fmt: skip
    change = PostedChange.objects.get(reissue_record=record)
    invoice = invoice_from_dict(change.after)
    return _post_invoice(record, connector, invoice, lookup_first=lookup_first)


def _post_plan(connector: Connector, plan: InvoicePlan, key: str) -> ErpDocument:
    """A credit (negative total) as a credit memo, anything else as an invoice."""
    if is_credit(plan):
        return connector.post_source_credit_memo(plan=plan, key=key)
    return connector.post_invoice(plan=plan, key=key)


def _post_split(
    record: SyncRecord,
    connector: Connector,
    plan: InvoicePlan,
    invoice: Invoice,
    *,
    lookup_first: bool,
) -> Outcome:
    """The positive lines as an invoice, the negative ones as a credit memo, each under its own
    key. A retry looks each part up first, so a part that landed is never created again."""
    posted: list[dict[str, Any]] = []
    for part in split(plan, invoice, record.idempotency_key):
        found = connector.find_invoice(key=part.key) if lookup_first else None
        document = found or _post_plan(connector, part.plan, part.key)
        posted.append({"suffix": part.suffix, "key": part.key, "total": part.plan.total,
                       "found_by_lookup": found is not None,
                       "erp_document": to_jsonable(document)})  # fmt: skip
    first, second = posted[0]["erp_document"], posted[1]["erp_document"]
    document = ErpDocument(id=first["id"], number=f"{first['number']} + {second['number']}",
                           url=first["url"])  # fmt: skip
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan, notes={"parts": posted})


def _posted_parts(record: SyncRecord) -> list[dict[str, Any]]:
    """The documents a split posting made (empty for a posting in one document)."""
    return list((record.plan or {}).get("parts") or [])


# Original invoice states in which its void must wait: it may still reach the ERP.
_ORIGINAL_IN_FLIGHT = {SyncState.READY, SyncState.POSTING, SyncState.RETRY_SCHEDULED,
                       SyncState.UNCERTAIN, SyncState.RECEIVED}  # fmt: skip


def _credit_void(record: SyncRecord, connector: Connector, *, now: datetime) -> Outcome:
    original = _current_posting(record.document)
    if original.state in _ORIGINAL_IN_FLIGHT:
        raise ConnectorError(
            "Waiting for the voided invoice to settle before crediting it.",
            category=FailureCategory.PREREQUISITE, transient=True,
        )  # fmt: skip
    parts = _posted_parts(original)
    original_id = original.erp_document_id
    if original.state != SyncState.POSTED and original.attempts > 0:
        # An attempt may have landed without being recorded: the ERP decides.
        found = connector.find_invoice(key=original.idempotency_key)
        original_id = found.id if found else ""
    if not original_id:
        return Outcome(SyncState.SKIPPED, detail=(
            f"The voided invoice never posted ({original.get_state_display().lower()}): "
            "nothing to offset."
        ))  # fmt: skip
    policy = _policy(record.connection)
    if isinstance(policy, Outcome):
        return policy
    # Credited on the day the engine posts it, in the connection's time zone.
    today = timezone.localdate(now, timezone=ZoneInfo(record.connection.time_zone))
    day = _open_day(today, policy)
    if isinstance(day, Outcome):
        return day
    posting_date, notes = day
    if parts:
        outcome = _void_split(record, connector, original, parts, posting_date)
        return dataclasses.replace(outcome, notes={**outcome.notes, **notes})
    document = connector.post_credit_memo(
        original_id=original_id, key=record.idempotency_key, posting_date=posting_date
    )
    return Outcome(SyncState.POSTED, erp_document=document, notes=notes)


def _void_split(
    record: SyncRecord,
    connector: Connector,
    original: SyncRecord,
    parts: list[dict[str, Any]],
    posting_date: date,
) -> Outcome:
    """Offset both documents of a split posting exactly: a credit memo applied to its invoice
    part, and an invoice reversing its credit memo part (the same lines, signs turned), each
    under its own key (`<void key>-P`, `-N`) and looked up before it is created. The two parts
    are worked out again from the stored plan and must come to the amounts that posted."""
    plan = invoice_plan_from_dict(original.plan or {})  # parts are only ever kept with a plan
    invoice_part, credit_part = split(plan, invoice_from_dict(original.document.canonical),
                                      original.idempotency_key)  # fmt: skip
    if [str(invoice_part.plan.total), str(credit_part.plan.total)] != [
        str(part["total"]) for part in parts
    ]:
        numbers = " and ".join(part["erp_document"]["number"] for part in parts)
        raise ConnectorError(
            f"The invoice was posted split into {numbers}, and its parts cannot be worked out "
            "again to the cent: reverse both documents in the ERP, then mark this record "
            "resolved.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip
    credit_key = part_key(record.idempotency_key, "P")
    credit = connector.find_invoice(key=credit_key) or connector.post_credit_memo(
        original_id=parts[0]["erp_document"]["id"], key=credit_key, posting_date=posting_date
    )
    reversal = dataclasses.replace(
        credit_part.plan, posting_date=posting_date, total=-credit_part.plan.total,
        lines=tuple(line._replace(amount=-line.amount) for line in credit_part.plan.lines),
    )  # fmt: skip
    reversal_key = part_key(record.idempotency_key, "N")
    reversed_credit = connector.find_invoice(key=reversal_key) or connector.post_invoice(
        plan=reversal, key=reversal_key
    )
    posted = [
        {"suffix": "P", "key": credit_key, "total": -invoice_part.plan.total,
         "erp_document": to_jsonable(credit)},
        {"suffix": "N", "key": reversal_key, "total": reversal.total,
         "erp_document": to_jsonable(reversed_credit)},
    ]  # fmt: skip
    document = ErpDocument(id=credit.id, number=f"{credit.number} + {reversed_credit.number}",
                           url=credit.url)  # fmt: skip
    return Outcome(SyncState.POSTED, erp_document=document, notes={"parts": posted})


def _post_timecard(record: SyncRecord, connector: Connector) -> Outcome:
    card = timecard_from_dict(record.document.canonical)
    rules = rules_in_force(connection=record.connection, on=card.week_starting)
    if rules is None:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            "NO_RULES", f"No posting rules are in force on {card.week_starting}.",
        ),))  # fmt: skip
    plan = resolve_timecard(card, rules.compiled, catalog_cached(connection=record.connection))
    if isinstance(plan, list):
        return Outcome(SyncState.BLOCKED, problems=tuple(plan))
    held = _time_in_closed_period(record.connection, plan)
    if held is not None:
        return held
    document = connector.post_time_entries(plan=plan, key=record.idempotency_key)
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan)


def _time_in_closed_period(connection: Connection, plan: TimePlan) -> Outcome | None:
    """Held when any entry's work date is in a closed period, whatever the policy: a work date
    says when people worked, so it is never moved."""
    policy = _policy(connection)
    if isinstance(policy, Outcome):
        return policy
    for entry in plan.entries:
        day = date.fromisoformat(entry.work_date)
        until = policy.closed_until(day)
        if until is not None:
            return _held_for_period(day, until, what="The work date")
    return None


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


def _plan(connection: Connection, invoice: Invoice) -> InvoicePlan | list[Problem]:
    """Code the invoice with the rule version in force on its date and the cached catalog."""
    rules = rules_in_force(connection=connection, on=invoice.transaction_date)
    if rules is None:
        return [Problem(
            "NO_RULES",
            f"No posting rules are in force on {invoice.transaction_date}: finance must publish "
            "a rule set effective on or before that date.",
        )]  # fmt: skip
    catalog = catalog_cached(connection=connection)
    if not catalog.lists:
        return [Problem(
            "NO_CATALOG",
            "The ERP's catalog (accounts, tax codes …) has not been read yet: refresh it on the "
            "connection's catalog page, then retry.",
        )]  # fmt: skip
    return resolve_invoice(invoice, rules.compiled, catalog)


def _finish(claim: Claim, outcome: Outcome, *, now: datetime, actor: str) -> SyncRecord | None:
    with transaction.atomic():
        record = SyncRecord.objects.select_for_update().get(pk=claim.record_id)
        if record.state != SyncState.POSTING or record.lease_token != claim.token:
            # Our lease expired and another worker took over; it settles the record by lookup.
            logger.warning(
                "Lost the lease on sync record %s; leaving it to its new owner", record.pk
            )
            return record
        if outcome.state == SyncState.POSTED:
            _finish_posted(record, outcome, now=now, actor=actor)
        elif outcome.state == SyncState.BLOCKED:
            _finish_blocked(record, outcome, now=now, actor=actor)
        elif outcome.state == SyncState.SKIPPED:
            _transition(
                record,
                SyncState.SKIPPED,
                actor=actor,
                now=now,
                detail=outcome.detail,
                data=outcome.exchanges,
                message=outcome.detail,
                next_attempt_at=None,
                **_LEASE_CLEARED,
            )
        else:
            assert outcome.error is not None
            _finish_failed(record, outcome.error, now=now, actor=actor, exchanges=outcome.exchanges)
        return record


_LEASE_CLEARED: dict[str, Any] = {"lease_until": None, "lease_token": ""}


def _finish_posted(record: SyncRecord, outcome: Outcome, *, now: datetime, actor: str) -> None:
    document = outcome.erp_document
    assert document is not None
    circuit_success(connection_id=record.connection_id)
    how = "Found in the ERP by its key" if outcome.found_by_lookup else "Posted"
    redated = f" {outcome.notes['redated_note']}" if "redated_note" in outcome.notes else ""
    plan = {**to_jsonable(outcome.plan), **outcome.notes} if outcome.plan else None
    _transition(
        record,
        SyncState.POSTED,
        actor=actor,
        now=now,
        detail=f"{how}: ERP document {document.number}.{redated}",
        data={
            "erp_document": to_jsonable(document),
            "found_by_lookup": outcome.found_by_lookup,
            "duplicate_refused": outcome.duplicate_refused,
            "plan": plan,
            **outcome.notes,
            **outcome.exchanges,
        },
        erp_document_id=document.id,
        erp_document_number=document.number,
        erp_document_url=document.url,
        posted_at=now,
        rule_version=outcome.plan.rule_version if outcome.plan else record.rule_version,
        next_attempt_at=None,
        failure_category="",
        failure_cause="",
        message="",
        problems=[],
        plan=plan or record.plan,
        **_LEASE_CLEARED,
    )


def _finish_blocked(record: SyncRecord, outcome: Outcome, *, now: datetime, actor: str) -> None:
    problems = [to_jsonable(problem) for problem in outcome.problems]
    summary = " ".join(problem.message for problem in outcome.problems)
    _transition(
        record,
        SyncState.BLOCKED,
        actor=actor,
        now=now,
        detail=summary,
        data={"problems": problems, **outcome.exchanges},
        problems=problems,
        message=summary,
        failure_category=outcome.problems[0].code,
        failure_cause=_cause(outcome.problems[0].code, outcome.problems[0].source_value),
        next_attempt_at=None,
        **_LEASE_CLEARED,
    )


def _cause(code: str, source_value: str = "") -> str:
    return f"{code}:{source_value}"[:200] if source_value else code


def _attempts_left(record: SyncRecord) -> int:
    """Automatic attempts left since the record was last retried by hand."""
    return settings.CROSSWALK_MAX_ATTEMPTS - (record.attempts - record.attempts_before_retry)


def _finish_failed(
    record: SyncRecord,
    error: ConnectorError,
    *,
    now: datetime,
    actor: str,
    exchanges: dict[str, Any] | None = None,
) -> None:
    common = {
        "failure_category": error.category,
        "failure_cause": _cause(error.category),
        "message": error.message,
        **_LEASE_CLEARED,
    }
    data = {
        "category": error.category,
        "transient": error.transient,
        "outcome_unknown": error.outcome_unknown,
        **(exchanges or {}),
    }
    if error.throttled_locally:
        _transition(record, SyncState.RETRY_SCHEDULED, actor=actor, now=now, data=data,
                    detail=error.message, attempts_before_retry=record.attempts_before_retry + 1,
                    next_attempt_at=now + timedelta(seconds=error.retry_after_seconds or 1),
                    **common)  # fmt: skip
        return
    connection = circuit_failure(connection_id=record.connection_id, error=error, now=now)
    if connection.circuit_retry_at is not None and connection.circuit_retry_at > now:
        # The ERP is unusable for everyone: wait with the others, without using up attempts.
        state = SyncState.UNCERTAIN if error.outcome_unknown else SyncState.RETRY_SCHEDULED
        _transition(record, state, actor=actor, now=now, data=data,
                    detail=f"Waiting: {connection.name} cannot reach its ERP ({error.message}).",
                    next_attempt_at=connection.circuit_retry_at,
                    attempts_before_retry=record.attempts_before_retry + 1, **common)  # fmt: skip
        return
    if error.transient and _attempts_left(record) > 0:
        delay = retry_delay_seconds(attempts=record.attempts, retry_after=error.retry_after_seconds)
        state = SyncState.UNCERTAIN if error.outcome_unknown else SyncState.RETRY_SCHEDULED
        _transition(
            record,
            state,
            actor=actor,
            now=now,
            detail=f"{error.message} Next attempt in {delay} s.",
            data=data,
            next_attempt_at=now + timedelta(seconds=delay),
            **common,
        )
        return
    if error.transient:
        data["gave_up_after_attempts"] = record.attempts - record.attempts_before_retry
    _transition(
        record,
        SyncState.FAILED,
        actor=actor,
        now=now,
        detail=error.message,
        data=data,
        next_attempt_at=None,
        **common,
    )


def retry_delay_seconds(*, attempts: int, retry_after: int | None) -> int:
    """Exponential backoff with ±20 % jitter, never sooner than the ERP's Retry-After."""
    base = settings.CROSSWALK_RETRY_BASE_SECONDS
    backoff = min(base * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)
    jittered = int(backoff * random.uniform(0.8, 1.2))
    return max(jittered, retry_after or 0, 1)


def sync_run_until_idle(
    *, now: Callable[[], datetime], on_record: Callable[[SyncRecord], None] | None = None
) -> int:
    """Post every due record in this process; return how many attempts were made."""
    attempts = 0
    while (record := sync_record_post(now=now, actor="sync --until-idle")) is not None:
        attempts += 1
        if on_record:
            on_record(record)
    return attempts


def sync_records_sweep(*, now: datetime, limit: int = 500) -> int:
    """Nudge workers for every due record: the recovery path for lost messages and dead workers."""
    due_ids = list(
        SyncRecord.objects.runnable(now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    from syncengine.tasks import sync_record_post as sync_record_post_task

    for record_id in due_ids:
        sync_record_post_task.apply_async(kwargs={"record_id": record_id})
    return len(due_ids)


@transaction.atomic
def sync_record_retry(*, record: SyncRecord, actor: str, now: datetime) -> SyncRecord:
    """Send a blocked or failed record again, re-coded with the rules in force now.

    Raises ValueError for a record that is not blocked or failed.
    """
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state not in {SyncState.BLOCKED, SyncState.FAILED}:
        raise ValueError(
            f"Only blocked or failed records can be retried; this one is "
            f"{record.get_state_display().lower()}."
        )
    _retry(record, actor=actor, now=now, detail="Retry requested.")
    return record


RETRYABLE = (SyncState.BLOCKED, SyncState.FAILED)
CANCELLABLE = (SyncState.RECEIVED, SyncState.READY, SyncState.BLOCKED, SyncState.FAILED,
               SyncState.RETRY_SCHEDULED, SyncState.SKIPPED)  # fmt: skip
# Settled by a person who checked the ERP: these may or may not be there.
RESOLVABLE = (SyncState.BLOCKED, SyncState.FAILED, SyncState.UNCERTAIN, SyncState.RETRY_SCHEDULED)


def sync_records_retry_bulk(
    *,
    records: SyncRecordQuerySet,
    actor: str,
    now: datetime,
    on_progress: Callable[[int, int], None] | None = None,
    batch: str = "",
) -> int:
    """Retry every blocked or failed record of a filter (e.g. one failure cause), in chunks of
    200 so a large set neither locks the table nor holds one long transaction. Returns how many
    were queued; `on_progress(done, total)` after each chunk. Each record remembers `batch`, so
    the console can show how the retried set is getting on (`retry_batch_progress`)."""
    ids = list(records.filter(state__in=RETRYABLE).order_by("pk").values_list("pk", flat=True))
    queued = 0
    for start in range(0, len(ids), 200):
        with transaction.atomic():
            for record in SyncRecord.objects.select_for_update().filter(
                pk__in=ids[start : start + 200], state__in=RETRYABLE
            ):
                _retry(record, actor=actor, now=now, detail="Retry requested (bulk).", batch=batch)
                queued += 1
        if on_progress:
            on_progress(min(start + 200, len(ids)), len(ids))
    return queued


def _retry(record: SyncRecord, *, actor: str, now: datetime, detail: str, batch: str = "") -> None:
    _transition(record, SyncState.READY, actor=actor, now=now, detail=detail,
                next_attempt_at=now, failure_category="", failure_cause="", message="",
                problems=[], attempts_before_retry=record.attempts,
                retry_batch=batch)  # fmt: skip
    _nudge_if_ready(record)


@transaction.atomic
def sync_record_cancel(*, record: SyncRecord, actor: str, now: datetime, reason: str) -> SyncRecord:
    """Stop a record that has not reached the ERP. Raises ValueError without a reason or when
    the record may already be in the ERP (posted, posting or uncertain)."""
    if not reason.strip():
        raise ValueError("Say why: cancelling needs a reason.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state not in CANCELLABLE:
        raise ValueError(
            f"A record that is {record.get_state_display().lower()} cannot be "
            "cancelled: it may already be in the ERP."
        )
    _transition(record, SyncState.CANCELLED, actor=actor, now=now, detail=f"Cancelled: {reason}",
                data={"reason": reason}, message=f"Cancelled by {actor}: {reason}",
                next_attempt_at=None, failure_cause="")  # fmt: skip
    return record


@transaction.atomic
def sync_record_resolve_outside(
    *, record: SyncRecord, actor: str, now: datetime, reason: str, erp_document_number: str = ""
) -> SyncRecord:
    """A person settled this record in the ERP by hand (or checked it is there); Crosswalk stops
    trying. Raises ValueError without a reason or for a record in another state."""
    if not reason.strip():
        raise ValueError("Say why: marking a record resolved needs a reason.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state not in RESOLVABLE:
        raise ValueError(
            f"A record that is {record.get_state_display().lower()} cannot be marked resolved."
        )
    detail = f"Resolved outside Crosswalk: {reason}" + (
        f" (ERP document {erp_document_number})" if erp_document_number else ""
    )
    _transition(record, SyncState.SKIPPED, actor=actor, now=now, detail=detail,
                data={"reason": reason, "erp_document_number": erp_document_number},
                message=detail, next_attempt_at=None, failure_cause="",
                erp_document_number=erp_document_number or record.erp_document_number)  # fmt: skip
    return record


@transaction.atomic
def sync_record_redrive(*, record: SyncRecord, actor: str, now: datetime, reason: str) -> None:
    """Make a record runnable again now, settling by lookup first (used by reconciliation).

    A record that may be in the ERP becomes UNCERTAIN, so no attempt posts blind. Records in
    the middle of an attempt are left to it.
    """
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state == SyncState.POSTING:
        return
    sent = record.state == SyncState.POSTED or record.attempts > 0
    state = SyncState.UNCERTAIN if sent else SyncState.READY
    _transition(record, state, actor=actor, now=now, detail=reason, next_attempt_at=now,
                message=reason, **_LEASE_CLEARED)  # fmt: skip
    sync_record_nudge(record_id=record.pk)


def connection_webhook_secret_rotate(*, connection: Connection) -> str:
    """A new hook secret for the connection; returned once, only its hash is kept."""
    secret = secrets.token_urlsafe(32)
    connection.webhook_secret_hash = Connection.hash_secret(secret)
    connection.save(update_fields=["webhook_secret_hash"])
    return secret


# --- job item costs and procurement -------------------------------------------------------------
#
# The same path as invoices and timecards: the body is kept (SourceReceipt), each record is
# accepted on its own into a SourceDocument and one SyncRecord under a deterministic key, and
# posting claims, calls the connector with no transaction open and settles by lookup. A job item
# cost and an inventory adjustment post as a balanced G/L journal, a purchase invoice as an AP
# document; vendors, purchase orders and receipts are kept and recorded as not posted, with the
# reason (docs/source-formats.md says why for each).

COST_KINDS = frozenset({
    DocumentKind.JOB_COST, DocumentKind.VENDOR, DocumentKind.PURCHASE_ORDER,
    DocumentKind.RECEIPT, DocumentKind.PURCHASE_INVOICE, DocumentKind.INVENTORY_ADJUSTMENT,
})  # fmt: skip
_PROCUREMENT_KINDS = {
    ProcurementKind.VENDOR: (DocumentKind.VENDOR, "ST-VN-"),
    ProcurementKind.PURCHASE_ORDER: (DocumentKind.PURCHASE_ORDER, "ST-PO-"),
    ProcurementKind.RECEIPT: (DocumentKind.RECEIPT, "ST-RC-"),
    ProcurementKind.PURCHASE_INVOICE: (DocumentKind.PURCHASE_INVOICE, "ST-PI-"),
    ProcurementKind.INVENTORY_ADJUSTMENT: (DocumentKind.INVENTORY_ADJUSTMENT, "ST-IA-"),
}
NOT_POSTED: dict[str, str] = {
    DocumentKind.VENDOR: "A vendor is master data: it is created in the ERP as a prerequisite "
    "of the first purchase invoice that names it.",
    DocumentKind.PURCHASE_ORDER: "Purchase orders are kept, not posted: an order moves no money, "
    "and Business Central's purchaseOrders page has no field to carry Crosswalk's key, so a lost "
    "answer could not be told from a missing order.",
    DocumentKind.RECEIPT: "Receipts are kept, not posted: their cost reaches the ledger with the "
    "purchase invoice (Business Central's receiveAndInvoice would invoice the order a second "
    "time).",
}


def job_cost_key(source_id: str) -> str:
    return _erp_key("ST-JC-", source_id)


def procurement_key(kind: str, source_id: str) -> str:
    return _erp_key(_PROCUREMENT_KINDS[kind][1], source_id)


@dataclass(frozen=True)
class _Incoming:
    """One parsed cost or procurement record, as `_cost_document_accept` stores it."""

    kind: str
    source_id: str
    number: str
    status: str
    name: str
    total: Any
    canonical: dict[str, Any]
    payload: Any
    key: str


def job_costs_ingest(
    *, connection: Connection, body: bytes, channel: str, origin: str, now: datetime
) -> IngestResult:
    """Keep the body, then accept each job item with a cost on its own (docs/source-formats.md).

    A malformed item is reported (every problem, each naming its field) and the others are still
    accepted. Never raises for bad input."""
    receipt = _receipt_create(connection, body, channel, origin, now)
    result = IngestResult(receipt=receipt)
    try:
        elements = servicetrade_jobcost.split_job_items(servicetrade.loads(body))
    except servicetrade.InvalidDocument as invalid:
        result.errors.extend(invalid.errors)
        elements = []
    for index, element in enumerate(elements):
        label = f"job item {index + 1} of {len(elements)}: " if len(elements) > 1 else ""
        try:
            cost = servicetrade_jobcost.parse_job_item(
                element, currency=connection.currency, time_zone=connection.time_zone
            )
        except servicetrade.InvalidDocument as invalid:
            result.errors.extend(label + error for error in invalid.errors)
            continue
        _accept_into(result, connection, receipt, _job_cost_incoming(cost, element), now)
    return _receipt_finish(result)


def job_costs_from_api(
    *, connection: Connection, items: list[dict[str, Any]], now: datetime
) -> IngestResult:
    """Job items read from ServiceTrade's API (`ServiceTradeClient.job_items`): those with a
    cost are ingested like a file of them, kept as one API receipt."""
    costed = [item for item in items if servicetrade_jobcost.has_cost(item)]
    body = json.dumps({"data": {"jobItems": costed}}, cls=DjangoJSONEncoder).encode()
    return job_costs_ingest(connection=connection, body=body, channel=SourceReceipt.Channel.API,
                            origin="ServiceTrade /jobitem", now=now)  # fmt: skip


def procurement_ingest(
    *, connection: Connection, body: bytes, channel: str, origin: str, now: datetime
) -> IngestResult:
    """Keep the body, then accept each vendor, order, receipt, AP invoice and inventory
    adjustment on its own; a bad record is reported by list, position and field."""
    receipt = _receipt_create(connection, body, channel, origin, now)
    result = IngestResult(receipt=receipt)
    try:
        elements = procurement.split_procurement(servicetrade.loads(body))
    except servicetrade.InvalidDocument as invalid:
        result.errors.extend(invalid.errors)
        elements = []
    vendors: list[str] = []
    for element in elements:
        try:
            document = procurement.parse_record(element, currency=connection.currency)
        except servicetrade.InvalidDocument as invalid:
            result.errors.extend(invalid.errors)
            continue
        incoming = _procurement_incoming(document, element.data)
        _accept_into(result, connection, receipt, incoming, now)
        if document.kind == ProcurementKind.VENDOR:
            vendors.append(document.source_id)
    if vendors:
        prerequisites_release(
            connection=connection, actor=SYSTEM, now=now, vendors=vendors,
            detail="The vendor it waited for was imported: sending again.",
        )  # fmt: skip
    return _receipt_finish(result)


def _receipt_finish(result: IngestResult) -> IngestResult:
    result.receipt.outcome = _receipt_outcome(result)
    result.receipt.errors = result.errors
    result.receipt.save(update_fields=["outcome", "errors"])
    return result


def _accept_into(
    result: IngestResult,
    connection: Connection,
    receipt: SourceReceipt,
    incoming: _Incoming,
    now: datetime,
) -> None:
    try:
        record, changed = _cost_document_accept(connection, receipt, incoming, now)
    except IntegrityError:  # the same new record arrived twice at once: the other one won
        record, changed = _cost_document_accept(connection, receipt, incoming, now)
    if changed:
        result.accepted.append(record)
    else:
        result.unchanged += 1


def _job_cost_incoming(cost: JobCost, payload: Any) -> _Incoming:
    return _Incoming(
        kind=DocumentKind.JOB_COST, source_id=cost.source_id,
        number=f"{cost.job_number}/{cost.source_id}"[:64], status="costed",
        name=cost.description, total=cost.amount, canonical=to_jsonable(cost), payload=payload,
        key=job_cost_key(cost.source_id),
    )  # fmt: skip


def _procurement_incoming(document: ProcurementDocument, payload: Any) -> _Incoming:
    kind = _PROCUREMENT_KINDS[document.kind][0]
    return _Incoming(
        kind=kind, source_id=document.source_id, number=document.number or document.source_id,
        status=document.kind, name=document.vendor_name or document.vendor_id or document.reason,
        total=None if kind == DocumentKind.VENDOR else document.total,
        canonical=to_jsonable(document), payload=payload,
        key=procurement_key(document.kind, document.source_id),
    )  # fmt: skip


@transaction.atomic
def _cost_document_accept(
    connection: Connection, receipt: SourceReceipt, incoming: _Incoming, now: datetime
) -> tuple[SyncRecord, bool]:
    """Store one record and bring its sync record up to date; an exact repeat changes nothing.

    Changed before it reached the ERP: the new version is sent. Changed after: never re-posted;
    the change is an event on the record for a person to correct in the ERP."""
    content_hash = hashlib.sha256(
        json.dumps(incoming.canonical, sort_keys=True).encode()
    ).hexdigest()
    document = (
        SourceDocument.objects.select_for_update()
        .filter(connection=connection, kind=incoming.kind, source_id=incoming.source_id)
        .first()
    )
    if document is not None and document.content_hash == content_hash:
        document.last_received_at = now
        document.save(update_fields=["last_received_at"])
        return SyncRecord.objects.get(document=document, operation=Operation.CREATE), False
    previous = document.canonical if document is not None else {}
    if document is None:
        document = SourceDocument(connection=connection, kind=incoming.kind,
                                  source_id=incoming.source_id, first_received_at=now)  # fmt: skip
    document.number, document.status = incoming.number[:64], incoming.status
    document.customer_name, document.total = incoming.name[:200], incoming.total
    document.payload, document.canonical = incoming.payload, incoming.canonical
    document.content_hash, document.receipt, document.last_received_at = content_hash, receipt, now
    document.save()
    skip = NOT_POSTED.get(incoming.kind, "")
    state = SyncState.SKIPPED if skip else SyncState.READY
    record = (
        SyncRecord.objects.select_for_update()
        .filter(document=document, operation=Operation.CREATE)
        .first()
    )
    label = document.get_kind_display().lower()
    if record is None:
        record = SyncRecord.objects.create(
            connection=connection, document=document, operation=Operation.CREATE,
            idempotency_key=incoming.key, state=state, message=skip,
            next_attempt_at=None if skip else now, received_at=now, state_changed_at=now,
        )  # fmt: skip
        _event(record, "", state, actor=SYSTEM, now=now,
               detail=skip or f"Received {label} {incoming.number}.")  # fmt: skip
    elif record.state in _NOT_YET_SENT and record.attempts == 0:
        _transition(record, state, actor=SYSTEM, now=now, message=skip, problems=[],
                    detail=skip or f"Changed in the source before posting: will post the new "
                    f"version of {label} {incoming.number}.",
                    data={"changes": _diff(previous, incoming.canonical)},
                    next_attempt_at=None if skip else now)  # fmt: skip
    else:
        _event(record, record.state, record.state, actor=SYSTEM, now=now,
               data={"changes": _diff(previous, incoming.canonical)},
               detail=f"Changed in the source after it was sent: not sent again. Correct "
               f"{label} {incoming.number} in the ERP by hand if it must change.")  # fmt: skip
    _nudge_if_ready(record)
    return record, True


def _post_cost_document(record: SyncRecord, connector: Connector, *, lookup_first: bool) -> Outcome:
    """A job cost or inventory adjustment as a journal, a purchase invoice as an AP document;
    looked up by key first whenever an earlier attempt may have landed."""
    kind = record.document.kind
    if kind in NOT_POSTED:
        return Outcome(SyncState.SKIPPED, detail=NOT_POSTED[kind])
    posting = "PURCHASE_INVOICE" if kind == DocumentKind.PURCHASE_INVOICE else "JOURNAL"
    if lookup_first:
        found = connector.find_posting(kind=posting, key=record.idempotency_key)
        if found is not None:
            return Outcome(SyncState.POSTED, erp_document=found, found_by_lookup=True)
    plan = _cost_plan(record)
    if isinstance(plan, Outcome):
        return plan
    policy = _policy(record.connection)
    if isinstance(policy, Outcome):
        return policy
    day = _open_day(plan.posting_date, policy)
    if isinstance(day, Outcome):
        return day
    posting_date, notes = day
    if notes:
        plan = dataclasses.replace(plan, posting_date=posting_date)
    try:
        if isinstance(plan, PurchasePlan):
            document = connector.post_purchase(plan=plan, key=record.idempotency_key)
        else:
            document = connector.post_journal(plan=plan, key=record.idempotency_key)
    except ConnectorError as error:
        if error.category != FailureCategory.DUPLICATE:
            raise
        found = connector.find_posting(kind=posting, key=record.idempotency_key)
        if found is None:
            raise
        return Outcome(SyncState.POSTED, erp_document=found, found_by_lookup=True,
                       duplicate_refused=True)  # fmt: skip
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan, notes=notes)


def _cost_plan(record: SyncRecord) -> JournalPlan | PurchasePlan | Outcome:
    """Code the record with the rules in force on its date; BLOCKED with every problem."""
    kind, canonical = record.document.kind, record.document.canonical
    document: JobCost | ProcurementDocument
    if kind == DocumentKind.JOB_COST:
        document = job_cost_from_dict(canonical)
        on = document.used_on
    else:
        document = procurement_from_dict(canonical)
        on = document.document_date
    rules = rules_in_force(connection=record.connection, on=on)
    if rules is None:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            "NO_RULES", f"No posting rules are in force on {on}: finance must publish a rule "
            "set effective on or before that date.",
        ),))  # fmt: skip
    catalog = catalog_cached(connection=record.connection)
    plan: JournalPlan | PurchasePlan | list[Problem]
    if isinstance(document, JobCost):
        plan = resolve_job_cost(document, rules.compiled, catalog)
    elif kind == DocumentKind.INVENTORY_ADJUSTMENT:
        plan = resolve_inventory_adjustment(document, rules.compiled, catalog)
    else:
        vendor = _vendor_of(record.connection, document)
        if isinstance(vendor, Outcome):
            return vendor
        plan = resolve_purchase_invoice(vendor, rules.compiled, catalog)
    if isinstance(plan, list):
        return Outcome(SyncState.BLOCKED, problems=tuple(plan))
    return plan


def _vendor_of(
    connection: Connection, document: ProcurementDocument
) -> ProcurementDocument | Outcome:
    """The purchase document with its vendor's name, from the vendor imported before it; a
    vendor never imported blocks the document, naming the vendor."""
    vendor = SourceDocument.objects.filter(
        connection=connection, kind=DocumentKind.VENDOR, source_id=document.vendor_id
    ).first()
    if vendor is None:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            UNKNOWN_VENDOR, f"Vendor {document.vendor_id} is in no procurement import yet: "
            "import it (the vendors list); this record is then sent again by itself.",
            document.vendor_id,
        ),))  # fmt: skip
    return dataclasses.replace(document, vendor_name=vendor.canonical.get("vendor_name", ""))
