"""Job item costs and PartsLedger procurement: ingestion and posting as journals and purchase
invoices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
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
from syncengine.erps.base import Connector, ConnectorError, FailureCategory
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    SourceDocument,
    SourceReceipt,
    SyncRecord,
    SyncState,
)
from syncengine.services.ingest import _NOT_YET_SENT, IngestResult, _receipt_create, _receipt_finish
from syncengine.services.policies import UNKNOWN_VENDOR, _open_day, _policy, prerequisites_release
from syncengine.services.records import (
    _PROCUREMENT_KINDS,
    SYSTEM,
    Outcome,
    _diff,
    _event,
    _nudge_if_ready,
    _transition,
    job_cost_key,
    procurement_key,
)
from syncengine.sources import procurement, servicetrade, servicetrade_jobcost

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
