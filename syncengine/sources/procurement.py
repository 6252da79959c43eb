"""PartsLedger / PartsManager procurement → canonical `ProcurementDocument`s.

Neither product publishes an API (CONTRACTS.md §1), so Crosswalk defines an import format
(docs/source-formats.md): one JSON object with a list per record kind. Every record is parsed on
its own; a bad one is reported with its list, position and field
(`purchaseInvoices[2].lines[0].quantity: required`) and never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from syncengine.canonical import ItemType, ProcurementDocument, ProcurementKind, PurchaseLine
from syncengine.money import ZERO, to_cents
from syncengine.sources.servicetrade import InvalidDocument, _Reader

# The import's lists, in the order they are ingested: vendors before the documents naming them.
LISTS = (
    ("vendors", ProcurementKind.VENDOR),
    ("purchaseOrders", ProcurementKind.PURCHASE_ORDER),
    ("receipts", ProcurementKind.RECEIPT),
    ("purchaseInvoices", ProcurementKind.PURCHASE_INVOICE),
    ("inventoryAdjustments", ProcurementKind.INVENTORY_ADJUSTMENT),
)
NEEDS_VENDOR = {ProcurementKind.PURCHASE_ORDER, ProcurementKind.RECEIPT,
                ProcurementKind.PURCHASE_INVOICE}  # fmt: skip


@dataclass(frozen=True)
class Element:
    """One record of the import: where it is (`receipts[3]`), its kind and its JSON."""

    label: str
    kind: str
    data: Any


def split_procurement(envelope: Any) -> list[Element]:
    if not isinstance(envelope, dict):
        raise InvalidDocument(["body: expected a JSON object with lists such as "
                               '"purchaseInvoices"'])  # fmt: skip
    unknown = sorted(set(envelope) - {name for name, _ in LISTS} - {"format", "source"})
    errors = [f"{name}: unknown list; known: {', '.join(n for n, _ in LISTS)}" for name in unknown]
    elements: list[Element] = []
    for name, kind in LISTS:
        records = envelope.get(name, [])
        if not isinstance(records, list):
            errors.append(f"{name}: expected a list")
            continue
        elements += [Element(f"{name}[{index}]", kind, data) for index, data in enumerate(records)]
    if errors:
        raise InvalidDocument(errors)
    if not elements:
        raise InvalidDocument(["body: no records (vendors, purchaseOrders, receipts, "
                               "purchaseInvoices, inventoryAdjustments)"])  # fmt: skip
    return elements


def parse_record(element: Element, *, currency: str) -> ProcurementDocument:
    """One record → its document, or InvalidDocument with every problem named by field."""
    errors: list[str] = []
    root = _Reader(errors, element.label, element.data)
    kind = element.kind
    if kind == ProcurementKind.VENDOR:
        document = ProcurementDocument(
            kind=kind, source_id=root.text("id"), number=root.text("number", required=False)
            or root.text("id", required=False), document_date=date.min, currency=currency,
            vendor_id=root.text("id", required=False), vendor_name=root.text("name"),
        )  # fmt: skip
    else:
        document = _document(root, kind, currency)
    if errors:
        raise InvalidDocument(errors)
    return document


def _document(root: _Reader, kind: str, currency: str) -> ProcurementDocument:
    number_field = "vendorInvoiceNumber" if kind == ProcurementKind.PURCHASE_INVOICE else "number"
    lines = root.obj.get("lines")
    if not isinstance(lines, list) or not lines:
        root.errors.append(f"{root.path}.lines: expected a non-empty list of lines")
        lines = []
    document_currency = root.text("currency", required=False) or currency
    if len(document_currency) != 3:
        root.errors.append(f"{root.path}.currency: {document_currency!r} is not a 3-letter code")
    return ProcurementDocument(
        kind=kind,
        source_id=root.text("id"),
        number=root.text(number_field)[:64],
        document_date=_date(root, "date") or date.min,
        currency=document_currency.upper(),
        vendor_id=root.text("vendorId", required=kind in NEEDS_VENDOR),
        office=root.text("office", required=False),
        purchase_order_number=root.text("purchaseOrderNumber", required=False),
        due_date=_date(root, "dueDate", required=False),
        reason=root.text("reason", required=kind == ProcurementKind.INVENTORY_ADJUSTMENT),
        lines=tuple(
            _line(_Reader(root.errors, f"{root.path}.lines[{index}]", line), kind)
            for index, line in enumerate(lines)
        ),
    )


def _line(reader: _Reader, kind: str) -> PurchaseLine:
    item_type = reader.text("itemType", required=False, default=ItemType.PART).lower()
    if item_type not in ItemType.ALL:
        reader.errors.append(
            f"{reader.path}.itemType: {item_type!r} is not one of {', '.join(ItemType.ALL)}"
        )
    quantity = reader.decimal("quantity") or ZERO
    unit_cost = reader.decimal("unitCost")
    signed = kind == ProcurementKind.INVENTORY_ADJUSTMENT
    if quantity == ZERO or (quantity < ZERO and not signed):
        reader.errors.append(
            f"{reader.path}.quantity: {quantity} must be "
            + ("non-zero" if signed else "greater than zero")
        )
    if unit_cost is not None and unit_cost < ZERO:
        reader.errors.append(f"{reader.path}.unitCost: {unit_cost} must not be negative")
    return PurchaseLine(
        line_id=reader.text("id", required=False),
        description=reader.text("description", required=False)[:200],
        item=reader.text("item", required=False),
        item_type=item_type,
        quantity=quantity,
        unit_cost=unit_cost or ZERO,
        amount=to_cents(quantity * (unit_cost or ZERO)),
        job_number=reader.text("jobNumber", required=False),
        service_line=reader.text("serviceLine", required=False),
    )


def _date(reader: _Reader, name: str, *, required: bool = True) -> date | None:
    text = reader.text(name, required=required)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        reader.errors.append(f"{reader.path}.{name}: {text!r} is not a date (YYYY-MM-DD)")
        return None
