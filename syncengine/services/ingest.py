"""Taking ServiceTrade invoices in: receipts, canonical documents, sync records by approval status,
changes before and after posting, voids.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, transaction

from mappings.catalog import SourceValueBatch, source_values_record
from syncengine.bulk import rows_insert
from syncengine.canonical import Invoice, invoice_from_dict, to_jsonable
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    PostedChange,
    SourceDocument,
    SourceReceipt,
    SyncRecord,
    SyncState,
)
from syncengine.money import ZERO
from syncengine.services.records import (
    CREDIT_MEMO_PREFIX,
    SYSTEM,
    VOID_STATUS,
    _diff,
    _event,
    _nudge_if_ready,
    _transition,
    credit_memo_key,
    events_written_together,
    invoice_key,
    void_key,
)
from syncengine.sources import servicetrade


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
    parsed = [
        (element, invoice)
        for index, element in enumerate(elements)
        if (invoice := _parsed(connection, element, index, len(elements), result)) is not None
    ]
    # One commit for the whole body. Invoices new to Crosswalk and exact repeats are written in
    # bulk; changed ones (and any the bulk write refuses) one by one, each in its own savepoint,
    # so a failing one is rolled back alone and the others are kept. Workers are nudged once it
    # commits.
    with transaction.atomic():
        one_by_one = _accept_in_bulk(connection, receipt, parsed, now, result)
        for element, invoice in one_by_one:
            _accept_one(connection, receipt, element, invoice, now, result)
        result.seen.flush(connection=connection, now=now)
    return _receipt_finish(result)


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


def _parsed(
    connection: Connection, element: Any, index: int, count: int, result: IngestResult
) -> Invoice | None:
    try:
        return servicetrade.parse_invoice(
            element, currency=connection.currency, time_zone=connection.time_zone
        )
    except servicetrade.InvalidDocument as invalid:
        label = _element_label(element, index, count)
        result.errors.extend(f"{label}{error}" for error in invalid.errors)
        return None


def _accept_one(
    connection: Connection,
    receipt: SourceReceipt,
    element: Any,
    invoice: Invoice,
    now: datetime,
    result: IngestResult,
) -> None:
    accept = functools.partial(
        invoice_accept, connection=connection, receipt=receipt, payload=element,
        invoice=invoice, now=now, seen=result.seen,
    )  # fmt: skip
    try:
        record, changed = accept()
    except IntegrityError:
        # The same new invoice arrived twice at once and the other delivery created it first;
        # accepting again now finds that row.
        record, changed = accept()
    if changed:
        result.accepted.append(record)
    else:
        result.unchanged += 1


@dataclass
class _Arrival:
    element: Any
    invoice: Invoice
    canonical: dict[str, Any]
    content_hash: str


def _accept_in_bulk(
    connection: Connection,
    receipt: SourceReceipt,
    parsed: list[tuple[Any, Invoice]],
    now: datetime,
    result: IngestResult,
) -> list[tuple[Any, Invoice]]:
    """Accept the invoices that need no decision in a few statements for the whole body: those
    new to Crosswalk (document, record and event inserted in bulk) and exact repeats (their
    receipt time updated in one statement). Returns the rest, in body order, for one by one:
    changed invoices, and any invoice that occurs twice in the body (the later one must see
    the earlier).
    """
    occurrences = Counter(invoice.source_id for _, invoice in parsed)
    arrivals = {
        invoice.source_id: _arrival(element, invoice)
        for element, invoice in parsed
        if occurrences[invoice.source_id] == 1
    }
    known = {
        document.source_id: document
        for document in SourceDocument.objects.select_for_update()
        .filter(connection=connection, kind=DocumentKind.INVOICE, source_id__in=list(arrivals))
        .only("pk", "source_id", "content_hash")
    }
    repeats = {
        source_id
        for source_id, arrival in arrivals.items()
        if source_id in known and known[source_id].content_hash == arrival.content_hash
    }
    SourceDocument.objects.filter(pk__in=[known[source_id].pk for source_id in repeats]).update(
        last_received_at=now
    )
    result.unchanged += len(repeats)
    new = [arrival for source_id, arrival in arrivals.items() if source_id not in known]
    created = bool(new) and _records_create_in_bulk(connection, receipt, new, now, result)
    done = repeats | ({arrival.invoice.source_id for arrival in new} if created else set())
    for source_id in done:
        # Repeats are still seen: keeps their values "recent" for coverage warnings.
        invoice = arrivals[source_id].invoice
        result.seen.add(_source_values(invoice), new_document=source_id not in known)
    return [(element, invoice) for element, invoice in parsed if invoice.source_id not in done]


def _arrival(element: Any, invoice: Invoice) -> _Arrival:
    canonical = to_jsonable(invoice)
    return _Arrival(element, invoice, canonical, _content_hash(canonical))


def _content_hash(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _records_create_in_bulk(
    connection: Connection,
    receipt: SourceReceipt,
    arrivals: list[_Arrival],
    now: datetime,
    result: IngestResult,
) -> bool:
    """Documents, records and their first events for invoices new to Crosswalk, in three
    statements. False (nothing written) if the database refuses any of them, such as a new
    invoice another delivery is creating at this moment: the caller then takes them one by one.
    """
    documents = [
        _document_fill(SourceDocument(connection=connection, kind=DocumentKind.INVOICE,
                                      source_id=arrival.invoice.source_id, first_received_at=now),
                       receipt, arrival.element, arrival.invoice, arrival.canonical,
                       arrival.content_hash, now)
        for arrival in arrivals
    ]  # fmt: skip
    try:
        with transaction.atomic():
            rows_insert(documents, key="source_id")
            records = [_record_new(connection, document, arrival.invoice, now)
                       for document, arrival in zip(documents, arrivals, strict=True)]  # fmt: skip
            rows_insert(records, key="document")
            with events_written_together():
                for record, arrival in zip(records, arrivals, strict=True):
                    detail = record.message or f"Received invoice {arrival.invoice.number}."
                    _event(record, "", record.state, actor=SYSTEM, now=now, detail=detail)
    except (IntegrityError, DataError):
        return False
    for record in records:
        _nudge_if_ready(record)
    result.accepted.extend(records)
    return True


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


def key_for_invoice(invoice: Invoice) -> str:
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
    content_hash = _content_hash(canonical)
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
    document = _document_fill(document, receipt, payload, invoice, canonical, content_hash, now)
    document.save()
    return document


def _document_fill(
    document: SourceDocument,
    receipt: SourceReceipt,
    payload: Any,
    invoice: Invoice,
    canonical: dict[str, Any],
    content_hash: str,
    now: datetime,
) -> SourceDocument:
    document.number = invoice.number
    document.status = invoice.status
    document.customer_name = invoice.customer.name[:200]
    document.total = invoice.total
    document.payload = payload
    document.canonical = canonical
    document.content_hash = content_hash
    document.receipt = receipt
    document.last_received_at = now
    return document


def _record_create(
    connection: Connection, document: SourceDocument, invoice: Invoice, now: datetime
) -> SyncRecord:
    record = _record_new(connection, document, invoice, now)
    record.save()
    _event(
        record,
        "",
        record.state,
        actor=SYSTEM,
        now=now,
        detail=record.message or f"Received invoice {invoice.number}.",
    )
    _nudge_if_ready(record)
    return record


def _record_new(
    connection: Connection, document: SourceDocument, invoice: Invoice, now: datetime
) -> SyncRecord:
    """The first sync record of a new invoice, not yet saved: ready, or skipped by its status."""
    state, message = state_for_status(connection, invoice.status)
    return SyncRecord(
        connection=connection,
        document=document,
        operation=Operation.CREATE,
        idempotency_key=key_for_invoice(invoice),
        state=state,
        message=message,
        next_attempt_at=now if state == SyncState.READY else None,
        received_at=now,
        state_changed_at=now,
    )


def state_for_status(connection: Connection, status: str) -> tuple[str, str]:
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
        state, message = state_for_status(record.connection, invoice.status)
        # An invoice edited into a credit (or back) takes the other key, unless an attempt may
        # have landed under the old one: then the old key stays, so the lookup still finds it.
        key = key_for_invoice(invoice) if record.attempts == 0 else record.idempotency_key
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


def _current_posting(document: SourceDocument) -> SyncRecord:
    """The record whose ERP document stands for the document now: its latest reissue, if any."""
    return (
        SyncRecord.objects.filter(document=document, operation__in=(Operation.CREATE,
                                                                    Operation.REISSUE))
        .order_by("-revision")
        .first()
    ) or SyncRecord.objects.get(document=document, operation=Operation.CREATE)  # fmt: skip


def _receipt_finish(result: IngestResult) -> IngestResult:
    result.receipt.outcome = _receipt_outcome(result)
    result.receipt.errors = result.errors
    result.receipt.save(update_fields=["outcome", "errors"])
    return result
