"""Payments applied in the ERP, brought back to the invoice in ServiceTrade.

Per connection, `payments_sync` reads the payment applications the ERP changed since a stored
cursor (`Connector.payments`), keeps each one by its ERP id (`AppliedPayment`: read again, it
changes nothing, or updates the row when the ERP changed it), and sums them per posted invoice to
the cent. That sum decides the invoice's payment status (`InvoicePayment`):

    applied >= invoice total  -> PAID
    0 < applied < total       -> PARTIALLY_PAID
    applied <= 0              -> UNPAID   (after a reversal, void or NSF: the invoice is reopened)

Then, after that transaction has committed, `payments_tell` tells ServiceTrade every status it
has not heard yet, through `invoice_payment_write_back`: paid; a part payment as a note; a
reopened invoice back to `processed` with a note. What ServiceTrade accepted is written to
`InvoicePayment.told_*` and as an event on the record's timeline, so each change is told once;
a call that fails is tried again on the next run. Nothing here changes a sync record's state.

The cursor is re-read with an overlap (`CURSOR_OVERLAP`): an ERP can commit an older change after
a newer one was read, and entries already seen cost nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q, Sum

from paymentsync.models import AppliedPayment, InvoicePayment, PaymentCursor, PaymentStatus
from syncengine.erps.base import Connector, ConnectorError, ErpPayment
from syncengine.erps.registry import connector_for
from syncengine.models import Connection, DocumentKind, Operation, SyncEvent, SyncRecord
from syncengine.money import ZERO, to_cents

logger = logging.getLogger(__name__)

ACTOR = "payments"
CURSOR_OVERLAP = timedelta(minutes=15)


@dataclass
class PaymentsResult:
    read: int = 0
    changed: int = 0  # payment applications new or changed
    unmatched: int = 0  # applied to invoices Crosswalk did not post
    invoices_changed: int = 0  # invoices whose payment status or amount moved
    told: int = 0
    tell_failures: int = 0


def payment_status(*, applied: Decimal, total: Decimal) -> str:
    if applied >= total:
        return PaymentStatus.PAID
    if applied > ZERO:
        return PaymentStatus.PARTIALLY_PAID
    return PaymentStatus.UNPAID


def payments_sync(
    *, connection: Connection, now: datetime, connector: Connector | None = None
) -> PaymentsResult:
    """Read the connection's new payments, update each invoice's payment status, then tell
    ServiceTrade what changed (when its write-back is on).

    Raises ConnectorError when the ERP cannot be read (the cursor stays; the error is kept on
    it); LookupError when the connection's target has no connector.
    """
    connector = connector or connector_for(connection)
    cursor, _ = PaymentCursor.objects.get_or_create(connection=connection)
    since = cursor.changed_at - CURSOR_OVERLAP if cursor.changed_at else None
    try:
        payments = list(connector.payments(since=since))
    except ConnectorError as error:
        PaymentCursor.objects.filter(pk=cursor.pk).update(
            last_run_at=now, last_error=error.message[:500]
        )
        raise
    result = payments_store(connection=connection, payments=payments, now=now)
    result.told, result.tell_failures = payments_tell(connection=connection, now=now)
    return result


@transaction.atomic
def payments_store(
    *, connection: Connection, payments: Iterable[ErpPayment], now: datetime
) -> PaymentsResult:
    """Keep the payments read, move the cursor, and recompute the invoices they touch. One
    transaction; the cursor row is locked so two runs for one connection take turns."""
    cursor = PaymentCursor.objects.select_for_update().get(connection=connection)
    latest = {payment.id: payment for payment in payments}  # one id read twice: the last wins
    result = PaymentsResult(read=len(latest))
    records = _records_for(connection, latest.values())
    known = {
        row.erp_id: row
        for row in AppliedPayment.objects.filter(connection=connection, erp_id__in=list(latest))
    }
    touched: set[int] = set()
    for payment in latest.values():
        record = records.match(payment)
        if record is None:
            result.unmatched += 1
            continue
        moved = _keep(connection, known.get(payment.id), payment, record, now)
        result.changed += bool(moved)
        touched |= moved
    newest = max((payment.changed_at for payment in latest.values()), default=None)
    if newest is not None and (cursor.changed_at is None or newest > cursor.changed_at):
        cursor.changed_at = newest
    cursor.last_run_at, cursor.last_error = now, ""
    cursor.save(update_fields=["changed_at", "last_run_at", "last_error"])
    result.invoices_changed = sum(
        _recompute(record, now) for record in SyncRecord.objects.filter(pk__in=touched)
        .select_related("document", "connection")
    )  # fmt: skip
    return result


class _RecordIndex:
    """The posted invoice records payments can name: by key, ERP id or ERP number."""

    def __init__(self, records: Iterable[SyncRecord]):
        self.by_key: dict[str, SyncRecord] = {}
        self.by_id: dict[str, SyncRecord] = {}
        self.by_number: dict[str, SyncRecord] = {}
        for record in records:
            self.by_key[record.idempotency_key] = record
            self.by_id[record.erp_document_id.lower()] = record
            if record.erp_document_number:
                self.by_number[record.erp_document_number] = record

    def match(self, payment: ErpPayment) -> SyncRecord | None:
        return (
            (payment.invoice_key and self.by_key.get(payment.invoice_key))
            or (payment.invoice_id and self.by_id.get(payment.invoice_id.lower()))
            or (payment.invoice_number and self.by_number.get(payment.invoice_number))
            or None
        )


def _records_for(connection: Connection, payments: Iterable[ErpPayment]) -> _RecordIndex:
    keys, ids, numbers = set(), set(), set()
    for payment in payments:
        keys.add(payment.invoice_key)
        ids |= {payment.invoice_id, payment.invoice_id.lower()}
        numbers.add(payment.invoice_number)
    named = Q(idempotency_key__in=keys - {""}) | Q(erp_document_id__in=ids - {""})
    named |= Q(erp_document_number__in=numbers - {""})
    records = SyncRecord.objects.filter(
        named, connection=connection, operation=Operation.CREATE,
        document__kind=DocumentKind.INVOICE,
    ).exclude(erp_document_id="")  # fmt: skip
    return _RecordIndex(records)


def _keep(
    connection: Connection,
    row: AppliedPayment | None,
    payment: ErpPayment,
    record: SyncRecord,
    now: datetime,
) -> set[int]:
    """Store one payment application; the records whose sums it changes."""
    values: dict[str, Any] = {
        "record": record, "amount": to_cents(payment.amount), "currency": connection.currency,
        "payment_date": payment.payment_date, "reason": payment.reason[:100],
        "changed_at": payment.changed_at,
    }  # fmt: skip
    if row is None:
        AppliedPayment.objects.create(
            connection=connection, erp_id=payment.id, first_seen_at=now, **values
        )
        return {record.pk}
    same = (row.record_id, row.amount, row.payment_date, row.reason) == (
        record.pk, values["amount"], values["payment_date"], values["reason"]
    )  # fmt: skip
    if same:
        return set()
    touched = {row.record_id, record.pk}  # re-pointed to another invoice: both sums move
    for name, value in values.items():
        setattr(row, name, value)
    row.save()
    return touched


def _recompute(record: SyncRecord, now: datetime) -> bool:
    """The invoice's sum and status from every payment kept for it; an event when they moved."""
    applied = to_cents(
        AppliedPayment.objects.filter(record=record).aggregate(total=Sum("amount", default=ZERO))[
            "total"
        ]
    )
    if record.document.total is None or record.document.total <= ZERO:
        return False  # nothing is owed on it (a credit); there is no status to tell
    total = to_cents(record.document.total)
    status = payment_status(applied=applied, total=total)
    row = InvoicePayment.objects.select_for_update().filter(record=record).first()
    if row is not None and (row.applied, row.status) == (applied, status):
        return False
    if row is None:
        row = InvoicePayment(record=record, connection=record.connection, told_at=None)
    row.total, row.applied, row.status, row.changed_at = total, applied, status, now
    row.currency = str(record.document.canonical.get("currency") or record.connection.currency)
    row.save()
    label = PaymentStatus(status).label.lower()
    _event(record, now=now, detail=f"Payments in the ERP: {applied} of {total} applied ({label}).",
           data={"applied": applied, "total": total, "status": status})  # fmt: skip
    return True


def _event(record: SyncRecord, *, now: datetime, detail: str, data: dict[str, Any]) -> None:
    """A timeline entry that leaves the record's state as it is (the fields of
    `services.records._event`, which stays private to the engine)."""
    SyncEvent.objects.create(
        record=record, at=now, actor=ACTOR, from_state=record.state, to_state=record.state,
        detail=detail, data=json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
    )  # fmt: skip


# --- telling ServiceTrade -----------------------------------------------------------------------


def _untold(connection: Connection) -> Any:
    amount_moved = Q(status=PaymentStatus.PARTIALLY_PAID) & ~Q(applied=F("told_applied"))
    return (
        InvoicePayment.objects.filter(connection=connection)
        .filter(~Q(status=F("told_status")) | amount_moved)
        .select_related("record__document")
        .order_by("pk")
    )


def payments_tell(*, connection: Connection, now: datetime, limit: int = 500) -> tuple[int, int]:
    """Tell ServiceTrade each invoice payment status it has not heard; returns (told, failed).

    Runs outside any transaction: each call to ServiceTrade is followed by its own short
    transaction recording it. Does nothing unless the connection's ServiceTrade write-back is on.
    """
    from syncengine.sources.servicetrade_api import sync
    from syncengine.sources.servicetrade_api.client import ServiceTradeError

    if not sync.api_settings(connection).write_back:
        return 0, 0
    pending = list(_untold(connection)[:limit])
    if not pending:
        return 0, 0
    told = failed = 0
    with sync.client_for(connection) as st:
        for row in pending:
            try:
                outcome = sync.invoice_payment_write_back(
                    client=st, invoice_id=row.record.document.source_id, paid=row.applied,
                    total=row.total, reopen=row.told_status == PaymentStatus.PAID,
                    reason=_last_reversal_reason(row.record),
                )  # fmt: skip
            except ServiceTradeError as error:
                logger.warning("Payment write-back of record %s failed: %s",
                               row.record_id, error.message)  # fmt: skip
                failed += 1
                continue
            told += _told(row, outcome, now)
    return told, failed


def _last_reversal_reason(record: SyncRecord) -> str:
    reversal = (
        AppliedPayment.objects.filter(record=record, amount__lt=0).order_by("-changed_at").first()
    )
    return reversal.reason if reversal else ""


@transaction.atomic
def _told(row: InvoicePayment, outcome: str, now: datetime) -> int:
    """Record what ServiceTrade accepted, unless another run recorded it first."""
    updated = InvoicePayment.objects.filter(
        pk=row.pk, told_status=row.told_status, told_applied=row.told_applied
    ).update(told_status=row.status, told_applied=row.applied, told_at=now)
    if updated:
        _event(row.record, now=now,
               detail=f"ServiceTrade told: {outcome} ({row.applied} of {row.total}).",
               data={"told": outcome, "applied": row.applied, "total": row.total,
                     "before": row.told_status})  # fmt: skip
    return updated


def payments_sync_all(*, now: datetime) -> dict[str, PaymentsResult | str]:
    """Every connection in turn (beat, hourly); one that fails is logged and the rest still
    run. Returns each connection's result or error, by slug."""
    results: dict[str, PaymentsResult | str] = {}
    for connection in Connection.objects.order_by("pk"):
        try:
            results[connection.slug] = payments_sync(connection=connection, now=now)
        except (ConnectorError, LookupError) as error:
            logger.warning("Payments of %s not read: %s", connection.slug, error)
            results[connection.slug] = str(error)
    return results
