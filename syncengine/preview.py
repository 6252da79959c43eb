"""What a connection's ERP would receive for a source file, sending nothing
(`manage.py preview_posting`).

The file is read as ingestion reads it, each document put in the form it is stored in, and coded
by the very functions posting codes with (`posting.invoice_posting_plan` and the posting
policies for invoices, `costs.cost_posting_plan` and `costs.receipt_posting_plan` for job costs
and procurement, `timecards.timecard_plan` for time); the connector's `preview_*` methods build
the requests from the plan with the code its `post_*` methods send. Only reads: nothing is
stored and the ERP is not called. What differs from a real attempt is said in each document's
notes: a receipt whose order, or earlier receipt, has not posted yet is shown as it is sent once
they have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mappings.resolve import InvoicePlan
from syncengine.canonical import (
    Invoice,
    JobCost,
    ProcurementDocument,
    ProcurementKind,
    job_cost_from_dict,
    procurement_from_dict,
    timecard_from_dict,
    to_jsonable,
)
from syncengine.erps.base import Connector, ConnectorError, procurement_poster
from syncengine.erps.registry import connector_for
from syncengine.models import Connection, DocumentKind, Operation, SyncRecord, SyncState
from syncengine.plans import PostingPolicy, is_credit, is_mixed, split
from syncengine.services.costs import (
    NOT_POSTED,
    UNSETTLED,
    cost_posting_plan,
    order_of_receipt,
    order_receipts,
    receipt_posting_plan,
    received_by,
)
from syncengine.services.ingest import key_for_invoice, state_for_status
from syncengine.services.policies import plan_in_open_period, posting_policy
from syncengine.services.posting import invoice_posting_plan
from syncengine.services.records import (
    PROCUREMENT_KINDS,
    VOID_STATUS,
    Outcome,
    job_cost_key,
    procurement_key,
    timecard_key,
    void_key,
)
from syncengine.services.timecards import not_approved, timecard_plan
from syncengine.sources import procurement, servicetrade, servicetrade_jobcost, servicetrade_time

# What a file may hold (`--kind`), as `manage.py ingest` names them.
KINDS = ("invoices", "timecards", "job-costs", "procurement")


class Unreadable(Exception):
    """The file as a whole cannot be read: every problem, each naming its place."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class DocumentPreview:
    """One document of the file: the requests its ERP would receive, why it is not posted
    (`not_posted`), or every problem that blocks it."""

    title: str
    summary: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_posted: str = ""
    notes: list[str] = field(default_factory=list)


def posting_preview(
    *, connection: Connection, body: bytes, kind: str = ""
) -> list[DocumentPreview]:
    """Each document of `body` (a file of `kind`, or of the kind its shape says) as the
    connection's connector would post it. Raises Unreadable, and ConnectorError or LookupError
    when the connection's connector cannot be made from its settings."""
    envelope = _loads(body)
    kind = kind or file_kind(envelope)
    connector = connector_for(connection)
    if kind == "procurement":
        return _procurement(connection, connector, envelope)
    if kind == "job-costs":
        return _job_costs(connection, connector, envelope)
    if kind == "timecards":
        return _timecards(connection, connector, envelope)
    return _invoices(connection, connector, envelope)


def file_kind(envelope: Any) -> str:
    """What a file holds, by its shape (docs/source-formats.md)."""
    if not isinstance(envelope, dict):
        return "invoices"
    if str(envelope.get("format", "")).startswith("crosswalk-procurement"):
        return "procurement"
    data = envelope.get("data")
    if not isinstance(data, dict):
        return "invoices"
    if "jobItems" in data or "libItem" in data or "usedOn" in data:
        return "job-costs"
    if "timecards" in data or "weekStarting" in data:
        return "timecards"
    return "invoices"


def _loads(body: bytes) -> Any:
    try:
        return servicetrade.loads(body)
    except servicetrade.InvalidDocument as invalid:
        raise Unreadable(invalid.errors) from None


def _split(splitter: Any, envelope: Any) -> list[Any]:
    try:
        return list(splitter(envelope))
    except servicetrade.InvalidDocument as invalid:
        raise Unreadable(invalid.errors) from None


def _heading(connection: Connection, amount: str, key: str, coded_by: str) -> str:
    return f", {amount}, key {key}, {coded_by}, to {connection.get_target_display()}"


def _rules(rule_version: int | None) -> str:
    return f"rules version {rule_version}"


def _problems(title: str, outcome: Outcome) -> DocumentPreview:
    return DocumentPreview(title, problems=[f"{p.code}: {p.message}" for p in outcome.problems])


def _requests(preview: DocumentPreview, build: Any, **arguments: Any) -> DocumentPreview:
    """`preview` with the requests `build(**arguments)` returns, or the connector's refusal."""
    try:
        preview.requests = build(**arguments)
    except ConnectorError as error:
        return DocumentPreview(preview.title, problems=[error.message])
    return preview


# --- ServiceTrade invoices and credits -----------------------------------------------------------


def _invoices(connection: Connection, connector: Connector, envelope: Any) -> list[DocumentPreview]:
    return [_invoice(connection, connector, element)
            for element in _split(servicetrade.split_invoices, envelope)]  # fmt: skip


def _invoice(connection: Connection, connector: Connector, element: Any) -> DocumentPreview:
    """As `posting._post_invoice` posts it: a credit as a credit memo, a mixed-sign invoice in
    two documents when the policy splits, a date in a closed period moved or held."""
    try:
        invoice = servicetrade.parse_invoice(element, currency=connection.currency,
                                             time_zone=connection.time_zone)  # fmt: skip
    except servicetrade.InvalidDocument as invalid:
        return DocumentPreview("The invoice", problems=invalid.errors)
    title = f"Invoice {invoice.number} (ServiceTrade {invoice.source_id})"
    posted = _posted_earlier(connection, invoice.source_id)
    if invoice.status == VOID_STATUS and posted is not None:
        return DocumentPreview(title, not_posted=(
            f"A void of an invoice posted as {posted.erp_document_number}: it is credited in full "
            f"under key {void_key(invoice.source_id)} by a credit memo the ERP builds from that "
            "document as it holds it, so there is nothing to show before then."))  # fmt: skip
    state, message = state_for_status(connection, invoice.status)
    if state == SyncState.SKIPPED:
        return DocumentPreview(title, not_posted=message)
    coded = _invoice_plan(connection, invoice)
    if isinstance(coded, list):
        return DocumentPreview(title, problems=coded)
    plan, policy, notes = coded
    key = key_for_invoice(invoice)
    parts = [(plan, key)]
    if policy.mixed_sign == "split" and is_mixed(plan):
        parts = [(part.plan, part.key) for part in split(plan, invoice, key)]
    preview = DocumentPreview(
        title, _heading(connection, f"total {plan.total} {plan.currency}", key,
                        _rules(plan.rule_version)),
        notes=[str(notes["redated_note"])] if notes else [],
    )  # fmt: skip
    try:
        for part, part_key in parts:
            build = connector.preview_source_credit_memo if is_credit(part) else (
                connector.preview_invoice)  # fmt: skip
            preview.requests += build(plan=part, key=part_key)
    except ConnectorError as error:
        return DocumentPreview(title, problems=[error.message])
    if len(parts) > 1:
        preview.notes.append(f"Split in two by the mixed_sign policy: {parts[0][1]} (invoice) "
                             f"and {parts[1][1]} (credit memo).")  # fmt: skip
    return preview


def _invoice_plan(
    connection: Connection, invoice: Invoice
) -> tuple[InvoicePlan, PostingPolicy, dict[str, Any]] | list[str]:
    """The plan as `posting._post_invoice` posts it (coded, on an open day), with the policy
    and the notes of a re-dating; or every problem."""
    plan = invoice_posting_plan(connection, invoice)
    if isinstance(plan, list):
        return [f"{p.code}: {p.message}" for p in plan]
    policy = posting_policy(connection)
    if isinstance(policy, Outcome):
        return _problems("", policy).problems
    dated = plan_in_open_period(plan, policy)
    if isinstance(dated, Outcome):
        return _problems("", dated).problems
    return dated[0], policy, dated[1]


def _posted_earlier(connection: Connection, source_id: str) -> SyncRecord | None:
    return SyncRecord.objects.filter(
        connection=connection, document__kind=DocumentKind.INVOICE,
        document__source_id=source_id, operation=Operation.CREATE, state=SyncState.POSTED,
    ).first()  # fmt: skip


# --- ServiceTrade job item costs and timecards ---------------------------------------------------


def _job_costs(
    connection: Connection, connector: Connector, envelope: Any
) -> list[DocumentPreview]:
    previews = []
    for element in _split(servicetrade_jobcost.split_job_items, envelope):
        try:
            cost = servicetrade_jobcost.parse_job_item(
                element, currency=connection.currency, time_zone=connection.time_zone
            )
        except servicetrade.InvalidDocument as invalid:
            previews.append(DocumentPreview("The job item", problems=invalid.errors))
            continue
        stored = job_cost_from_dict(to_jsonable(cost))  # as posting reads it back
        title = f"Job item cost {cost.job_number}/{cost.source_id} (ServiceTrade {cost.source_id})"
        previews.append(_cost(connection, connector, title, DocumentKind.JOB_COST, stored,
                              job_cost_key(cost.source_id), {}))  # fmt: skip
    return previews


def _timecards(
    connection: Connection, connector: Connector, envelope: Any
) -> list[DocumentPreview]:
    previews = []
    for element in _split(servicetrade_time.split_timecards, envelope):
        try:
            card = timecard_from_dict(to_jsonable(servicetrade_time.parse_timecard(element)))
        except servicetrade.InvalidDocument as invalid:
            previews.append(DocumentPreview("The timecard", problems=invalid.errors))
            continue
        title = f"Timecard {card.source_id} of {card.technician}"
        skipped = not_approved(card)
        if skipped:
            previews.append(DocumentPreview(title, not_posted=skipped))
            continue
        plan = timecard_plan(connection=connection, card=card)
        if isinstance(plan, Outcome):
            previews.append(_problems(title, plan))
            continue
        key = timecard_key(card.source_id)
        preview = DocumentPreview(title, _heading(connection, f"{plan.total_hours} hours", key,
                                                  _rules(plan.rule_version)))  # fmt: skip
        previews.append(_requests(preview, connector.preview_time_entries, plan=plan, key=key))
    return previews


def _cost(
    connection: Connection,
    connector: Connector,
    title: str,
    kind: str,
    document: JobCost | ProcurementDocument,
    key: str,
    vendors: dict[str, str],
) -> DocumentPreview:
    """A job cost, inventory adjustment, purchase invoice or purchase order, coded and dated as
    `costs._post_cost_document` and `costs._post_purchase_order` post them."""
    planned = cost_posting_plan(connection=connection, kind=kind, document=document,
                                vendor_names=vendors)  # fmt: skip
    if isinstance(planned, Outcome):
        return _problems(title, planned)
    plan, notes = planned
    amount = f"total {plan.total} {plan.currency}"
    preview = DocumentPreview(title, _heading(connection, amount, key, _rules(plan.rule_version)),
                              notes=[str(notes["redated_note"])] if notes else [])  # fmt: skip
    if kind == DocumentKind.PURCHASE_ORDER:
        poster = procurement_poster(connector, kind=kind)
        assert poster is not None  # the caller says why an order is not posted
        return _requests(preview, poster.preview_purchase_order, plan=plan, key=key)
    if kind == DocumentKind.PURCHASE_INVOICE:
        return _requests(preview, connector.preview_purchase, plan=plan, key=key)
    return _requests(preview, connector.preview_journal, plan=plan, key=key)


# --- PartsLedger procurement ---------------------------------------------------------------------


@dataclass
class _File:
    """The procurement file's documents, in the form they are stored in, and what the others
    need of them: the vendors' names, the orders by number, the receipts."""

    documents: list[ProcurementDocument] = field(default_factory=list)
    vendors: dict[str, str] = field(default_factory=dict)
    orders: dict[str, ProcurementDocument] = field(default_factory=dict)
    receipts: list[ProcurementDocument] = field(default_factory=list)


def _procurement(
    connection: Connection, connector: Connector, envelope: Any
) -> list[DocumentPreview]:
    previews, read = [], _File()
    for element in _split(procurement.split_procurement, envelope):
        try:
            parsed = procurement.parse_record(element, currency=connection.currency)
        except servicetrade.InvalidDocument as invalid:
            previews.append(DocumentPreview(element.label, problems=invalid.errors))
            continue
        document = procurement_from_dict(to_jsonable(parsed))
        read.documents.append(document)
        if document.kind == ProcurementKind.VENDOR:
            read.vendors[document.source_id] = document.vendor_name
        if document.kind == ProcurementKind.PURCHASE_ORDER:
            read.orders[(document.number or document.source_id)[:64]] = document
        if document.kind == ProcurementKind.RECEIPT:
            read.receipts.append(document)
    for document in read.documents:
        previews.append(_procurement_document(connection, connector, document, read))
    return previews


_TITLES = {
    DocumentKind.VENDOR: "Vendor",
    DocumentKind.PURCHASE_ORDER: "Purchase order",
    DocumentKind.RECEIPT: "Receipt",
    DocumentKind.PURCHASE_INVOICE: "Purchase invoice",
    DocumentKind.INVENTORY_ADJUSTMENT: "Inventory adjustment",
}


def _procurement_document(
    connection: Connection, connector: Connector, document: ProcurementDocument, read: _File
) -> DocumentPreview:
    kind = PROCUREMENT_KINDS[document.kind][0]
    number = document.vendor_name if kind == DocumentKind.VENDOR else document.number
    title = f"{_TITLES[kind]} {number or document.source_id} (PartsLedger {document.source_id})"
    if kind in NOT_POSTED and procurement_poster(connector, kind=kind) is None:
        return DocumentPreview(title, not_posted=NOT_POSTED[kind])
    key = procurement_key(document.kind, document.source_id)
    if kind == DocumentKind.RECEIPT:
        return _receipt(connection, connector, title, document, read)
    return _cost(connection, connector, title, kind, document, key, read.vendors)


def _receipt(
    connection: Connection,
    connector: Connector,
    title: str,
    receipt: ProcurementDocument,
    read: _File,
) -> DocumentPreview:
    """As `costs._post_receipt` receives it once its order (and any receipt of that order that
    comes before it) has posted; the order from the same file, else the one stored."""
    found = _order_for(connection, receipt, read)
    if isinstance(found, Outcome):
        return _problems(title, found)
    order, notes = found
    before, waits = _received_before(connection, receipt, order, read)
    order_key = procurement_key(ProcurementKind.PURCHASE_ORDER, order.source_id)
    planned = receipt_posting_plan(connection=connection, receipt=receipt, order=order,
                                   order_key=order_key, received_before=before)  # fmt: skip
    if isinstance(planned, Outcome):
        return _problems(title, planned)
    plan, dated = planned
    key = procurement_key(ProcurementKind.RECEIPT, receipt.source_id)
    amount = f"total {plan.total} {receipt.currency}"
    preview = DocumentPreview(
        title, _heading(connection, amount, key, f"on order {order.number} ({order_key})"),
        notes=notes + waits + ([str(dated["redated_note"])] if dated else []),
    )  # fmt: skip
    poster = procurement_poster(connector, kind=DocumentKind.RECEIPT)
    assert poster is not None  # the caller says why a receipt is not posted
    return _requests(preview, poster.preview_receipt, plan=plan, key=key)


def _order_for(
    connection: Connection, receipt: ProcurementDocument, read: _File
) -> tuple[ProcurementDocument, list[str]] | Outcome:
    """The receipt's order and, when it has not posted yet, a note saying the receipt waits."""
    number = receipt.purchase_order_number[:64]
    order = read.orders.get(number) if number else None
    if order is None:
        stored = order_of_receipt(connection, receipt)  # or why there is none
        if isinstance(stored, Outcome):
            return stored
        order = procurement_from_dict(stored.canonical)
    record = SyncRecord.objects.filter(
        connection=connection, document__kind=DocumentKind.PURCHASE_ORDER,
        document__source_id=order.source_id, operation=Operation.CREATE,
    ).first()  # fmt: skip
    if record is not None and record.state == SyncState.POSTED:
        return order, []
    where = "not stored yet" if record is None else record.get_state_display().lower()
    return order, [f"Received once purchase order {order.number} ({where}) has posted: it waits "
                   "for it."]  # fmt: skip


def _received_before(
    connection: Connection, receipt: ProcurementDocument, order: ProcurementDocument, read: _File
) -> tuple[dict[int, Any], list[str]]:
    """What the order's other receipts will have received when this one is sent: those posted,
    and those that come before it (date, then id) and have not settled yet or are in this file,
    which it waits for (`costs._received_before`)."""
    mine = (receipt.document_date, receipt.source_id)
    states = {}
    others: dict[str, ProcurementDocument] = {}
    for record, document in order_receipts(connection=connection, order=order):
        states[document.source_id] = record.state
        others[document.source_id] = document
    for document in read.receipts:
        if document.purchase_order_number == order.number:
            others[document.source_id] = document  # the file's version is the one stored next
    counted, waits = [], []
    for source_id, document in sorted(others.items()):
        if source_id == receipt.source_id:
            continue
        state = states.get(source_id)
        if state == SyncState.POSTED:
            counted.append(document)
        elif (document.document_date, source_id) < mine and (state is None or state in UNSETTLED):
            counted.append(document)
            waits.append(f"Sent after receipt {document.number} of order {order.number}, which "
                         "comes first: shown as if that one is received in full.")  # fmt: skip
    return received_by(counted, order), waits
