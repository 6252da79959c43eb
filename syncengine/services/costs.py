"""Job item costs and PartsLedger procurement: ingestion and posting as journals, purchase
invoices and, where the ERP takes them, purchase orders and receipts.

Whether a purchase order or a receipt is posted depends on the connection's ERP: a connector
says which of them it takes (`syncengine.erps.base.procurement_poster`); for the others (the
sandbox ledger) they are kept with the reason in `NOT_POSTED`. A receipt receives on the order
Crosswalk posted for it, so it waits for that order, and it is received once: the quantities
the ERP shows received tell whether an earlier attempt landed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction

from mappings.catalog import catalog_cached
from mappings.resolve import Problem
from mappings.resolve_cost import (
    JournalPlan,
    PurchasePlan,
    resolve_inventory_adjustment,
    resolve_job_cost,
    resolve_purchase_invoice,
)
from mappings.services import rules_in_force
from syncengine.canonical import (
    JobCost,
    ProcurementDocument,
    ProcurementKind,
    job_cost_from_dict,
    procurement_from_dict,
    to_jsonable,
)
from syncengine.erps.base import (
    Connector,
    ConnectorError,
    FailureCategory,
    ProcurementConnector,
    ReceiptLine,
    ReceiptPlan,
    procurement_poster,
)
from syncengine.erps.registry import connector_for
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    SourceDocument,
    SourceReceipt,
    SyncRecord,
    SyncState,
)
from syncengine.money import ZERO
from syncengine.services.ingest import _NOT_YET_SENT, IngestResult, _receipt_create, _receipt_finish
from syncengine.services.policies import UNKNOWN_VENDOR, _open_day_for, prerequisites_release
from syncengine.services.records import (
    PROCUREMENT_KINDS,
    SYSTEM,
    Outcome,
    _diff,
    _event,
    _nudge_if_ready,
    _retry,
    _transition,
    job_cost_key,
    procurement_key,
)
from syncengine.sources import procurement, servicetrade, servicetrade_jobcost

NOT_POSTED: dict[str, str] = {
    DocumentKind.VENDOR: "A vendor is master data: it is created in the ERP as a prerequisite "
    "of the first purchase invoice that names it.",
    # Only for an ERP whose connector does not take them (the sandbox ledger keeps no orders);
    # Business Central connections post both (docs/connectors/business-central.md).
    DocumentKind.PURCHASE_ORDER: "Purchase orders are kept, not posted, for this connection: "
    "an order moves no money and its ERP keeps no purchase orders (Business Central connections "
    "send them as open purchase orders).",
    DocumentKind.RECEIPT: "Receipts are kept, not posted, for this connection: their cost "
    "reaches the ledger with the purchase invoice, and its ERP keeps no orders to receive on "
    "(Business Central connections receive them on their order without invoicing it).",
}
# How every `NOT_POSTED` reason an order or a receipt was ever kept with begins (the wording
# after it changed as Business Central came to post them): `procurement_kept_release` sends
# again only records skipped for that reason, never one skipped or resolved otherwise.
KEPT_UNPOSTED: dict[str, str] = {
    DocumentKind.PURCHASE_ORDER: "Purchase orders are kept, not posted",
    DocumentKind.RECEIPT: "Receipts are kept, not posted",
}
# A receipt whose purchase order is in no import yet: it waits, blocked, until one brings it.
UNKNOWN_PURCHASE_ORDER = "UNKNOWN_PURCHASE_ORDER"
# Receipt records that may still reach the ERP: a later receipt of the same order waits for them.
UNSETTLED = (SyncState.RECEIVED, SyncState.READY, SyncState.POSTING, SyncState.RETRY_SCHEDULED,
             SyncState.UNCERTAIN)  # fmt: skip
CENT = Decimal("0.01")


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
    orders: list[str] = []
    posted = _posted_kinds(connection)
    for element in elements:
        try:
            document = procurement.parse_record(element, currency=connection.currency)
        except servicetrade.InvalidDocument as invalid:
            result.errors.extend(invalid.errors)
            continue
        incoming = _procurement_incoming(document, element.data)
        _accept_into(result, connection, receipt, incoming, now, posted=posted)
        if document.kind == ProcurementKind.VENDOR:
            vendors.append(document.source_id)
        if document.kind == ProcurementKind.PURCHASE_ORDER:
            orders.append(document.number or document.source_id)
    if vendors:
        prerequisites_release(
            connection=connection, actor=SYSTEM, now=now, vendors=vendors,
            detail="The vendor it waited for was imported: sending again.",
        )  # fmt: skip
    if orders:
        _receipts_release(connection=connection, orders=orders, now=now)
    return _receipt_finish(result)


def _posted_kinds(connection: Connection) -> frozenset[str]:
    """The kinds of `NOT_POSTED` the connection's ERP posts after all (its connector says)."""
    try:
        connector = connector_for(connection)
    except (ConnectorError, LookupError):
        # Settings it cannot work with yet: accepted as if posted, so the posting attempt
        # names what is wrong rather than the record being skipped for good.
        return frozenset({DocumentKind.PURCHASE_ORDER, DocumentKind.RECEIPT})
    return frozenset(kind for kind in NOT_POSTED if procurement_poster(connector, kind=kind))


@dataclass(frozen=True)
class KeptRelease:
    """What `procurement_kept_release` did: how many orders and receipts it sent again, and
    the receipts it left kept, each with why."""

    orders: int = 0
    receipts: int = 0
    left: tuple[str, ...] = ()


def procurement_kept_release(
    *,
    connection: Connection,
    actor: str,
    now: datetime,
    on_progress: Callable[[int, int], None] | None = None,
) -> KeptRelease:
    """Send the purchase orders and receipts that were kept unposted (SKIPPED for the
    `NOT_POSTED` reason) when the connection's ERP did not take them, now that it does (a
    Business Central connection, or records stored before its connector posted them): each goes
    back to READY with one event by `actor`, its worker nudged after commit. Orders go first; a
    receipt still waits for its order to post (`_receipt_plan`), and one whose order was
    cancelled or skipped stays kept, named in `left`. Running it again changes nothing.
    Done in chunks of 200 records, each its own transaction; `on_progress(done, total)` after
    each.

    Raises ValueError when the connection's ERP takes neither, ConnectorError or LookupError
    when its connector cannot be made from the connection's settings."""
    connector = connector_for(connection)
    kinds = [kind for kind in KEPT_UNPOSTED if procurement_poster(connector, kind=kind)]
    if not kinds:
        raise ValueError(f"{connection.name} keeps purchase orders and receipts unposted (its "
                         "ERP takes neither): there is nothing to send.")  # fmt: skip
    kept = [_kept(connection, kind) for kind in kinds]
    total, done, sent, left = sum(len(ids) for ids in kept), 0, Counter[str](), []
    for kind, ids in zip(kinds, kept, strict=True):
        for start in range(0, len(ids), 200):
            with transaction.atomic():
                for record in _kept_records(ids[start : start + 200]):
                    why_not = _order_cannot_post(record) if kind == DocumentKind.RECEIPT else ""
                    if why_not:
                        left.append(why_not)
                        continue
                    _retry(record, actor=actor, now=now, detail=_SENT_AGAIN[kind])
                    sent[kind] += 1
            done += len(ids[start : start + 200])
            if on_progress:
                on_progress(done, total)
    return KeptRelease(orders=sent[DocumentKind.PURCHASE_ORDER],
                       receipts=sent[DocumentKind.RECEIPT], left=tuple(left))  # fmt: skip


_SENT_AGAIN: dict[str, str] = {
    DocumentKind.PURCHASE_ORDER: "Kept unposted when its ERP took no purchase orders; it takes "
    "them now: sending it.",
    DocumentKind.RECEIPT: "Kept unposted when its ERP took no receipts; it takes them now: "
    "sending it, once its purchase order has posted.",
}


def _kept(connection: Connection, kind: str) -> list[int]:
    """The ids of the connection's records of `kind` skipped for the `NOT_POSTED` reason."""
    return list(SyncRecord.objects.filter(
        connection=connection, document__kind=kind, operation=Operation.CREATE,
        state=SyncState.SKIPPED, message__startswith=KEPT_UNPOSTED[kind],
    ).order_by("pk").values_list("pk", flat=True))  # fmt: skip


def _kept_records(ids: list[int]) -> list[SyncRecord]:
    """Those of `ids` still kept, locked: another run may have sent them meanwhile."""
    locked = SyncRecord.objects.select_for_update().filter(pk__in=ids, state=SyncState.SKIPPED)
    return [record for record in locked.select_related("document").order_by("pk")
            if record.message.startswith(KEPT_UNPOSTED[record.document.kind])]  # fmt: skip


def _order_cannot_post(record: SyncRecord) -> str:
    """Why the receipt's stored order will never post (cancelled, or skipped for another reason
    than the one just sent again), else "": a receipt sent then would wait for it for ever."""
    receipt = procurement_from_dict(record.document.canonical)
    order = order_of_receipt(record.connection, receipt)
    if isinstance(order, Outcome):
        return ""  # no order yet: the receipt blocks naming it, and is sent when it comes
    state = SyncRecord.objects.get(document=order, operation=Operation.CREATE).state
    if state not in (SyncState.CANCELLED, SyncState.SKIPPED):
        return ""
    return (
        f"Receipt {receipt.number} stays kept: its purchase order {order.number} is "
        f"{SyncState(state).label.lower()}."
    )


@transaction.atomic
def _receipts_release(*, connection: Connection, orders: list[str], now: datetime) -> None:
    """Send again the receipts blocked because their purchase order was in no import."""
    causes = {f"{UNKNOWN_PURCHASE_ORDER}:{number}"[:200] for number in orders}
    waiting = SyncRecord.objects.select_for_update().filter(
        connection=connection, state=SyncState.BLOCKED, failure_category=UNKNOWN_PURCHASE_ORDER
    )
    for record in waiting.order_by("pk"):
        if record.failure_cause in causes:
            _retry(record, actor=SYSTEM, now=now, detail="The purchase order it waited for was "
                   "imported: sending again.")  # fmt: skip


def _accept_into(
    result: IngestResult,
    connection: Connection,
    receipt: SourceReceipt,
    incoming: _Incoming,
    now: datetime,
    *,
    posted: frozenset[str] = frozenset(),
) -> None:
    try:
        record, changed = _cost_document_accept(connection, receipt, incoming, now, posted)
    except IntegrityError:  # the same new record arrived twice at once: the other one won
        record, changed = _cost_document_accept(connection, receipt, incoming, now, posted)
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
    kind = PROCUREMENT_KINDS[document.kind][0]
    return _Incoming(
        kind=kind, source_id=document.source_id, number=document.number or document.source_id,
        status=document.kind, name=document.vendor_name or document.vendor_id or document.reason,
        total=None if kind == DocumentKind.VENDOR else document.total,
        canonical=to_jsonable(document), payload=payload,
        key=procurement_key(document.kind, document.source_id),
    )  # fmt: skip


@transaction.atomic
def _cost_document_accept(
    connection: Connection,
    receipt: SourceReceipt,
    incoming: _Incoming,
    now: datetime,
    posted: frozenset[str] = frozenset(),
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
    skip = "" if incoming.kind in posted else NOT_POSTED.get(incoming.kind, "")
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
        poster = procurement_poster(connector, kind=kind)
        if poster is None:
            return Outcome(SyncState.SKIPPED, detail=NOT_POSTED[kind])
        if kind == DocumentKind.PURCHASE_ORDER:
            return _post_purchase_order(record, poster, lookup_first=lookup_first)
        return _post_receipt(record, poster)
    posting = "PURCHASE_INVOICE" if kind == DocumentKind.PURCHASE_INVOICE else "JOURNAL"
    if lookup_first:
        found = connector.find_posting(kind=posting, key=record.idempotency_key)
        if found is not None:
            return Outcome(SyncState.POSTED, erp_document=found, found_by_lookup=True)
    planned = cost_posting_plan(connection=record.connection, kind=kind,
                                document=_stored_cost_document(record))  # fmt: skip
    if isinstance(planned, Outcome):
        return planned
    plan, notes = planned
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
    return cost_plan(connection=record.connection, kind=record.document.kind,
                     document=_stored_cost_document(record))  # fmt: skip


def _stored_cost_document(record: SyncRecord) -> JobCost | ProcurementDocument:
    canonical = record.document.canonical
    if record.document.kind == DocumentKind.JOB_COST:
        return job_cost_from_dict(canonical)
    return procurement_from_dict(canonical)


def cost_plan(
    *,
    connection: Connection,
    kind: str,
    document: JobCost | ProcurementDocument,
    vendor_names: Mapping[str, str] | None = None,
) -> JournalPlan | PurchasePlan | Outcome:
    """Code a job cost or procurement document (`kind`: a `DocumentKind`) with the rules in force
    on its date and the connection's cached catalog; BLOCKED with every problem. Only reads:
    posting and `preview_posting` (syncengine.preview) both code with it. A purchase document's
    vendor name comes from `vendor_names` (vendor id → name, e.g. the same file's vendors), else
    from the vendor imported before it."""
    on = document.used_on if isinstance(document, JobCost) else document.document_date
    rules = rules_in_force(connection=connection, on=on)
    if rules is None:
        return Outcome(SyncState.BLOCKED, problems=(Problem(
            "NO_RULES", f"No posting rules are in force on {on}: finance must publish a rule "
            "set effective on or before that date.",
        ),))  # fmt: skip
    catalog = catalog_cached(connection=connection)
    plan: JournalPlan | PurchasePlan | list[Problem]
    if isinstance(document, JobCost):
        plan = resolve_job_cost(document, rules.compiled, catalog)
    elif kind == DocumentKind.INVENTORY_ADJUSTMENT:
        plan = resolve_inventory_adjustment(document, rules.compiled, catalog)
    else:
        vendor = _vendor_of(connection, document, vendor_names or {})
        if isinstance(vendor, Outcome):
            return vendor
        plan = resolve_purchase_invoice(vendor, rules.compiled, catalog)
    if isinstance(plan, list):
        return Outcome(SyncState.BLOCKED, problems=tuple(plan))
    return plan


def cost_posting_plan(
    *,
    connection: Connection,
    kind: str,
    document: JobCost | ProcurementDocument,
    vendor_names: Mapping[str, str] | None = None,
) -> tuple[JournalPlan | PurchasePlan, dict[str, Any]] | Outcome:
    """The plan a job cost or procurement document is sent with, and the notes of its posting
    (a posting date moved out of a closed period): coded by `cost_plan`, a purchase order as an
    order (no period check: an order posts nothing to the ledger), anything else on the first
    open day under the connection's policy or held. Only reads, like `cost_plan`."""
    plan = cost_plan(connection=connection, kind=kind, document=document,
                     vendor_names=vendor_names)  # fmt: skip
    if isinstance(plan, Outcome):
        return plan
    if kind == DocumentKind.PURCHASE_ORDER:
        assert isinstance(plan, PurchasePlan)  # a purchase order is coded as a purchase
        return dataclasses.replace(plan, kind=ProcurementKind.PURCHASE_ORDER), {}
    day = _open_day_for(connection, plan.posting_date)
    if isinstance(day, Outcome):
        return day
    posting_date, notes = day
    if notes:
        plan = dataclasses.replace(plan, posting_date=posting_date)
    return plan, notes


def _vendor_of(
    connection: Connection, document: ProcurementDocument, known: Mapping[str, str]
) -> ProcurementDocument | Outcome:
    """The purchase document with its vendor's name, from `known` or the vendor imported before
    it; a vendor never imported blocks the document, naming the vendor."""
    if document.vendor_id in known:
        return dataclasses.replace(document, vendor_name=known[document.vendor_id])
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


# --- purchase orders and receipts, for an ERP that takes them --------------------------------


def _post_purchase_order(
    record: SyncRecord, poster: ProcurementConnector, *, lookup_first: bool
) -> Outcome:
    """An open purchase order, coded like a purchase invoice of the same lines. The lookup needs
    the plan (the ERP is searched by vendor and date), so the order is coded first. No period
    check: an order posts nothing to the ledger; its receipts are checked when they post."""
    planned = cost_posting_plan(connection=record.connection, kind=DocumentKind.PURCHASE_ORDER,
                                document=_stored_cost_document(record))  # fmt: skip
    if isinstance(planned, Outcome):
        return planned
    plan = planned[0]
    assert isinstance(plan, PurchasePlan)  # a purchase order is coded as a purchase
    if lookup_first:
        found = poster.find_purchase_order(plan=plan, key=record.idempotency_key)
        if found is not None:
            return Outcome(SyncState.POSTED, erp_document=found, found_by_lookup=True)
    document = poster.post_purchase_order(plan=plan, key=record.idempotency_key)
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan)


def _post_receipt(record: SyncRecord, poster: ProcurementConnector) -> Outcome:
    """Receive on the order Crosswalk posted, on the receipt's date (moved to the first open
    day when the connection's policy says so). Always checked against the ERP first: the
    quantities it shows received say whether this receipt landed already."""
    planned = _receipt_plan(record)
    if isinstance(planned, Outcome):
        return planned
    plan, notes = planned
    document, found = poster.post_receipt(plan=plan, key=record.idempotency_key)
    received = [{"order_line": plan_line.position + 1, "quantity": str(plan_line.quantity),
                 "received_before": str(plan_line.received_before),
                 "amount": str(plan_line.amount)} for plan_line in plan.lines]  # fmt: skip
    return Outcome(SyncState.POSTED, erp_document=document, found_by_lookup=found,
                   notes={**notes, "received": received, "total": str(plan.total)})  # fmt: skip


def _receipt_plan(record: SyncRecord) -> tuple[ReceiptPlan, dict[str, Any]] | Outcome:
    """Which lines of which posted order the receipt receives, and how much the other receipts
    of that order received before. Raises a transient PREREQUISITE error while the order, or
    another receipt of it, is still on its way to the ERP."""
    receipt = procurement_from_dict(record.document.canonical)
    order_document = order_of_receipt(record.connection, receipt)
    if isinstance(order_document, Outcome):
        return order_document
    order = procurement_from_dict(order_document.canonical)
    order_record = SyncRecord.objects.get(document=order_document, operation=Operation.CREATE)
    if order_record.state != SyncState.POSTED:
        raise ConnectorError(
            f"Waiting for purchase order {order.number} to post before receiving {receipt.number} "
            "on it.",
            category=FailureCategory.PREREQUISITE, transient=True,
        )  # fmt: skip
    positions = _matched_lines(receipt, order)
    if isinstance(positions, Outcome):
        return positions
    before = _received_before(record, order)
    return receipt_posting_plan(connection=record.connection, receipt=receipt, order=order,
                                order_key=order_record.idempotency_key,
                                received_before=before)  # fmt: skip


def receipt_posting_plan(
    *,
    connection: Connection,
    receipt: ProcurementDocument,
    order: ProcurementDocument,
    order_key: str,
    received_before: Mapping[int, Decimal],
) -> tuple[ReceiptPlan, dict[str, Any]] | Outcome:
    """The receipt as it is received on `order` (posted under `order_key`), given what the
    order's other receipts received per order line, and the notes of its posting: BLOCKED when a
    line matches no order line, receives more than is left or is worth other than the order's
    unit cost says; dated on the first open day under the connection's policy, or held. Only
    reads: posting and `preview_posting` (syncengine.preview) share it."""
    positions = _matched_lines(receipt, order)
    if isinstance(positions, Outcome):
        return positions
    lines = []
    for line, position in zip(receipt.lines, positions, strict=True):
        ordered = order.lines[position]
        received = received_before.get(position, ZERO)
        if received + line.quantity > ordered.quantity:
            return _blocked("RECEIVES_TOO_MUCH", f"Receipt {receipt.number} line {line.line_id} "
                            f"receives {line.quantity} of order {order.number} line "
                            f"{ordered.line_id}, which has {ordered.quantity - received} left to "
                            "receive: correct it in PartsLedger.", order.number)  # fmt: skip
        amount = (line.quantity * ordered.unit_cost).quantize(CENT, rounding=ROUND_HALF_UP)
        if amount != line.amount:
            return _blocked("RECEIPT_COST_DIFFERS", f"Receipt {receipt.number} line "
                            f"{line.line_id} is worth {line.amount}; at order {order.number}'s "
                            f"unit cost {ordered.unit_cost} it is {amount}: correct one of them "
                            "in PartsLedger.", order.number)  # fmt: skip
        lines.append(ReceiptLine(position, line.quantity, received, amount))
    day = _open_day_for(connection, receipt.document_date)
    if isinstance(day, Outcome):
        return day
    posting_date, notes = day
    return ReceiptPlan(
        document_number=receipt.number, posting_date=posting_date, order_key=order_key,
        order_number=order.number, vendor_ref=order.vendor_id, order_date=order.document_date,
        order_lines=len(order.lines), lines=tuple(lines),
    ), notes  # fmt: skip


def order_of_receipt(
    connection: Connection, receipt: ProcurementDocument
) -> SourceDocument | Outcome:
    if not receipt.purchase_order_number:
        return _blocked("NO_PURCHASE_ORDER", f"Receipt {receipt.number} names no purchase order "
                        "(purchaseOrderNumber): the ERP receives only on an order.")  # fmt: skip
    order = SourceDocument.objects.filter(
        connection=connection, kind=DocumentKind.PURCHASE_ORDER,
        number=receipt.purchase_order_number[:64],
    ).first()  # fmt: skip
    if order is None:
        return _blocked(UNKNOWN_PURCHASE_ORDER, f"Purchase order {receipt.purchase_order_number} "
                        "is in no procurement import yet: import it; this receipt is then sent "
                        "again by itself.", receipt.purchase_order_number)  # fmt: skip
    return order


def _matched_lines(receipt: ProcurementDocument, order: ProcurementDocument) -> list[int] | Outcome:
    """Each receipt line's order line: the one with the same item when exactly one has it,
    else the one with the same line id."""
    positions = []
    for line in receipt.lines:
        same_item = [i for i, ordered in enumerate(order.lines) if line.item and
                     ordered.item == line.item]  # fmt: skip
        same_id = [i for i, ordered in enumerate(order.lines) if ordered.line_id == line.line_id]
        matched = same_item if len(same_item) == 1 else same_id
        if len(matched) != 1:
            return _blocked("RECEIPT_LINE_UNMATCHED", f"Receipt {receipt.number} line "
                            f"{line.line_id} matches no single line of order {order.number} (by "
                            "item, then by line id): correct it in PartsLedger.",
                            order.number)  # fmt: skip
        positions.append(matched[0])
    return positions


def _received_before(record: SyncRecord, order: ProcurementDocument) -> dict[int, Decimal]:
    """Per order line, what the other receipts of the order that reached the ERP received (as
    their source says; a receipt is never sent again once posted).

    The receipts of one order go in order (date, then id): one waits while an earlier one may
    still reach the ERP, so the quantities it expects there are known. An earlier one never
    waits for a later one, so two claimed together cannot wait for each other."""
    receipt = procurement_from_dict(record.document.canonical)
    mine = (receipt.document_date, receipt.source_id)
    posted = []
    for other, earlier in order_receipts(connection=record.connection, order=order,
                                         exclude_pk=record.pk):  # fmt: skip
        if other.state in UNSETTLED and (earlier.document_date, earlier.source_id) < mine:
            raise ConnectorError(
                f"Waiting for receipt {earlier.number} of order {order.number}, which comes "
                "first, to settle before receiving this one.",
                category=FailureCategory.PREREQUISITE, transient=True,
            )  # fmt: skip
        if other.state == SyncState.POSTED:
            posted.append(earlier)
    return received_by(posted, order)


def order_receipts(
    *, connection: Connection, order: ProcurementDocument, exclude_pk: int | None = None
) -> list[tuple[SyncRecord, ProcurementDocument]]:
    """The stored receipts of `order` with their records (but the record `exclude_pk`)."""
    others = SyncRecord.objects.filter(
        connection=connection, document__kind=DocumentKind.RECEIPT, operation=Operation.CREATE,
    ).select_related("document")  # fmt: skip
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    return [(other, procurement_from_dict(other.document.canonical)) for other in others
            if other.document.canonical.get("purchase_order_number") == order.number]  # fmt: skip


def received_by(
    receipts: Iterable[ProcurementDocument], order: ProcurementDocument
) -> dict[int, Decimal]:
    """Per order line (0-based position), what `receipts` received of it."""
    received: dict[int, Decimal] = {}
    for earlier in receipts:
        positions = _matched_lines(earlier, order)
        if isinstance(positions, Outcome):
            continue  # it could not have posted: nothing of it reached the ERP
        for line, position in zip(earlier.lines, positions, strict=True):
            received[position] = received.get(position, ZERO) + line.quantity
    return received


def _blocked(code: str, message: str, source_value: str = "") -> Outcome:
    return Outcome(SyncState.BLOCKED, problems=(Problem(code, message, source_value),))
