"""Canonical documents: plain, typed, Decimal money, independent of any source or ERP.

Sources parse into these (see `syncengine.sources.servicetrade`); resolution and connectors read
only these. They are stored as JSON on `SourceDocument.canonical` with money as strings, and
`invoice_from_dict` reads them back exactly.
"""

from __future__ import annotations

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
    """Dataclass → JSON-ready dict, with Decimals and dates as strings (exact round trip)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [convert(item) for item in value]
        return value

    result: dict[str, Any] = convert(dataclasses.asdict(document))
    return result


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
