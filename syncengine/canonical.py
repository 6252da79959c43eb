"""Canonical documents: plain, typed, Decimal money, independent of any source or ERP.

Sources parse into these (see `syncengine.sources.servicetrade`); resolution and connectors read
only these. They are stored as JSON on `SourceDocument.canonical` with money as strings, and
`invoice_from_dict` reads them back exactly.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from syncengine.money import ZERO


class ItemType:
    LABOR = "labor"
    PART = "part"
    OTHER = "other"
    ALL = (LABOR, PART, OTHER)


@dataclass(frozen=True)
class Ref:
    source_id: str
    name: str


@dataclass(frozen=True)
class Address:
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""


@dataclass(frozen=True)
class Location:
    source_id: str
    name: str
    address: Address


@dataclass(frozen=True)
class Job:
    source_id: str
    number: str
    job_type: str
    service_line: str


@dataclass(frozen=True)
class InvoiceLine:
    source_id: str
    description: str
    item_type: str
    service_line: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    taxable: bool


@dataclass(frozen=True)
class Invoice:
    source_id: str
    number: str
    status: str
    transaction_date: date
    currency: str
    customer: Ref
    location: Location
    job: Job
    office: Ref
    lines: tuple[InvoiceLine, ...]
    tax_rate: Decimal
    tax_amount: Decimal
    partial: bool = False
    lines_total: Decimal = field(default=ZERO)
    customer_tags: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        return self.lines_total + self.tax_amount


def to_jsonable(document: Any) -> dict[str, Any]:
    """Dataclass → JSON-ready dict, with Decimals and dates as strings (exact round trip).

    Dataclasses and named tuples inside (plan lines, codings) become objects. One walk, no copy
    first (`dataclasses.asdict` deep-copies every value, and the engine converts a plan on every
    posting).
    """
    result: dict[str, Any] = _jsonable(document)
    return result


# Exact types first: a plan is hundreds of values, nearly all plain, and a set lookup of the
# type is cheaper than the chain of isinstance checks after it, which decides the rest
# (subclasses of str, int, dict and list, dates, named tuples).
_PLAIN = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is Decimal:
        return str(value)
    if kind is dict:
        return {key: _jsonable(item) for key, item in value.items()}
    if kind is list:
        return [_jsonable(item) for item in value]
    names = _dataclass_fields(kind)
    if names is not None:
        return {name: _jsonable(getattr(value, name)) for name in names}
    if isinstance(value, str | int | bool | None):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple: an object
        return {name: _jsonable(item) for name, item in zip(value._fields, value, strict=True)}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return copy.deepcopy(value)  # as `dataclasses.asdict` leaves any other value: a copy


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _dataclass_fields(kind: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, None for any other type (remembered per type)."""
    if kind not in _FIELDS:
        is_dataclass = dataclasses.is_dataclass(kind)
        _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind)) if is_dataclass else None
    return _FIELDS[kind]


def invoice_from_dict(data: dict[str, Any]) -> Invoice:
    return Invoice(
        source_id=data["source_id"],
        number=data["number"],
        status=data["status"],
        transaction_date=date.fromisoformat(data["transaction_date"]),
        currency=data["currency"],
        customer=Ref(**data["customer"]),
        location=Location(
            source_id=data["location"]["source_id"],
            name=data["location"]["name"],
            address=Address(**data["location"]["address"]),
        ),
        job=Job(**data["job"]),
        office=Ref(**data["office"]),
        lines=tuple(
            InvoiceLine(
                **{
                    **line,
                    "quantity": Decimal(line["quantity"]),
                    "unit_price": Decimal(line["unit_price"]),
                    "amount": Decimal(line["amount"]),
                }
            )
            for line in data["lines"]
        ),
        tax_rate=Decimal(data["tax_rate"]),
        tax_amount=Decimal(data["tax_amount"]),
        partial=data["partial"],
        lines_total=Decimal(data["lines_total"]),
        customer_tags=tuple(data.get("customer_tags", ())),
    )


class TimeKind:
    LABOR = "labor"  # time on a job: job, cost code, department, pay type
    CLOCK = "clock"  # a clock-in / clock-out pair
    GENERIC = "generic"  # PTO, holiday and other time not on a job; pay type from its label
    ALL = (LABOR, CLOCK, GENERIC)


@dataclass(frozen=True)
class TimeEntry:
    source_id: str
    work_date: date
    kind: str
    hours: Decimal
    labor_type: str
    job_number: str = ""
    service_line: str = ""
    office: str = ""
    clock_in: str = ""
    clock_out: str = ""


@dataclass(frozen=True)
class Timecard:
    source_id: str
    technician_id: str
    technician: str
    week_starting: date
    status: str
    entries: tuple[TimeEntry, ...]

    @property
    def total_hours(self) -> Decimal:
        return sum((entry.hours for entry in self.entries), ZERO)


def timecard_from_dict(data: dict[str, Any]) -> Timecard:
    return Timecard(
        source_id=data["source_id"],
        technician_id=data["technician_id"],
        technician=data["technician"],
        week_starting=date.fromisoformat(data["week_starting"]),
        status=data["status"],
        entries=tuple(
            TimeEntry(**{**entry, "work_date": date.fromisoformat(entry["work_date"]),
                         "hours": Decimal(entry["hours"])})
            for entry in data["entries"]
        ),
    )  # fmt: skip


# --- job item costs and procurement --------------------------------------------------------------


@dataclass(frozen=True)
class JobCost:
    """One ServiceTrade job item with a cost: what the job consumed, at cost, on one day.

    `amount` is quantity × unit cost rounded half-up to the cent once, when parsed; it is what
    the journal debits and credits.
    """

    source_id: str
    job_id: str
    job_number: str
    job_type: str
    service_line: str
    office: str
    location_state: str
    customer: str
    item_type: str  # labor | part | other: the routing rules' line kind
    description: str
    quantity: Decimal
    unit_cost: Decimal
    amount: Decimal
    used_on: date
    currency: str
    purchase_ref: str = ""  # the vendor / PO a PartsLedger purchase names as the item's source


def job_cost_from_dict(data: dict[str, Any]) -> JobCost:
    return JobCost(**{
        **data,
        "quantity": Decimal(data["quantity"]), "unit_cost": Decimal(data["unit_cost"]),
        "amount": Decimal(data["amount"]), "used_on": date.fromisoformat(data["used_on"]),
    })  # fmt: skip


class ProcurementKind:
    VENDOR = "vendor"
    PURCHASE_ORDER = "purchase_order"
    RECEIPT = "receipt"
    PURCHASE_INVOICE = "purchase_invoice"
    INVENTORY_ADJUSTMENT = "inventory_adjustment"
    ALL = (VENDOR, PURCHASE_ORDER, RECEIPT, PURCHASE_INVOICE, INVENTORY_ADJUSTMENT)


@dataclass(frozen=True)
class PurchaseLine:
    line_id: str
    description: str
    item: str
    item_type: str  # labor | part | other
    quantity: Decimal  # signed for an inventory adjustment (negative: stock written off)
    unit_cost: Decimal
    amount: Decimal  # quantity × unit cost, rounded half-up to the cent
    job_number: str = ""
    service_line: str = ""


@dataclass(frozen=True)
class ProcurementDocument:
    """A PartsLedger / PartsManager record from the import format (docs/source-formats.md):
    a vendor (no lines), a purchase order, a receipt, an AP invoice or an inventory adjustment."""

    kind: str
    source_id: str
    number: str
    document_date: date
    currency: str
    vendor_id: str = ""
    vendor_name: str = ""
    office: str = ""
    purchase_order_number: str = ""
    due_date: date | None = None
    reason: str = ""
    lines: tuple[PurchaseLine, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def procurement_from_dict(data: dict[str, Any]) -> ProcurementDocument:
    due = data.get("due_date")
    return ProcurementDocument(**{
        **data,
        "document_date": date.fromisoformat(data["document_date"]),
        "due_date": date.fromisoformat(due) if due else None,
        "lines": tuple(
            PurchaseLine(**{**line, "quantity": Decimal(line["quantity"]),
                            "unit_cost": Decimal(line["unit_cost"]),
                            "amount": Decimal(line["amount"])})
            for line in data["lines"]
        ),
    })  # fmt: skip
