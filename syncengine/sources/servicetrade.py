"""ServiceTrade invoice JSON → canonical `Invoice`.

The accepted shape is documented in docs/source-formats.md. Parsing never raises on bad data
except with `InvalidDocument`, which carries every problem found (not only the first), each
naming the field path, e.g. ``data.items[2].quantity: expected a number, got "two"``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from syncengine.canonical import Address, Invoice, InvoiceLine, ItemType, Job, Location, Ref
from syncengine.money import ZERO, to_cents


class InvalidDocument(ValueError):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def loads(body: bytes | str) -> Any:
    """JSON with every non-integer number read as Decimal: no amount passes through float."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidDocument([f"body: not valid JSON ({error})"]) from None


def split_invoices(envelope: Any) -> list[Any]:
    """One invoice (`{"data": {...}}`) or one list page (`{"data": {"invoices": [...]}}`)."""
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise InvalidDocument(['body: expected a JSON object with a "data" member'])
    data = envelope["data"]
    if isinstance(data, dict) and isinstance(data.get("invoices"), list):
        return list(data["invoices"])
    if isinstance(data, dict):
        return [data]
    raise InvalidDocument(['data: expected an invoice object or {"invoices": [...]}'])


class _Reader:
    """Reads fields of one JSON object, collecting errors instead of stopping at the first."""

    def __init__(self, errors: list[str], path: str, obj: Any):
        self.errors = errors
        self.path = path
        self.obj = obj if isinstance(obj, dict) else {}
        if not isinstance(obj, dict):
            errors.append(f"{path}: expected an object")

    def child(self, name: str, *, required: bool = True) -> _Reader:
        value = self.obj.get(name)
        if value is None and not required:
            return _Reader(self.errors, f"{self.path}.{name}", {})
        return _Reader(self.errors, f"{self.path}.{name}", value)

    def text(self, name: str, *, required: bool = True, default: str = "") -> str:
        value = self.obj.get(name)
        if value is None or value == "":
            if required:
                self.errors.append(f"{self.path}.{name}: required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.errors.append(f"{self.path}.{name}: expected text, got {json.dumps(value)}")
            return default
        return str(value).strip()

    def decimal(self, name: str, *, required: bool = True) -> Decimal | None:
        value = self.obj.get(name)
        if value is None:
            if required:
                self.errors.append(f"{self.path}.{name}: required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.errors.append(f"{self.path}.{name}: expected a number, got {_show(value)}")
            return None
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            self.errors.append(f"{self.path}.{name}: expected a number, got {_show(value)}")
            return None
        if not number.is_finite():
            self.errors.append(f"{self.path}.{name}: expected a finite number")
            return None
        return number

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.obj.get(name, default)
        if not isinstance(value, bool):
            self.errors.append(f"{self.path}.{name}: expected true or false")
            return default
        return value

    def epoch_date(self, name: str, tz: ZoneInfo) -> date | None:
        value = self.obj.get(name)
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            self.errors.append(f"{self.path}.{name}: expected epoch seconds, got {_show(value)}")
            return None
        try:
            seconds = int(Decimal(str(value)))
            return datetime.fromtimestamp(seconds, tz=UTC).astimezone(tz).date()
        except (InvalidOperation, ValueError, OverflowError, OSError):
            self.errors.append(f"{self.path}.{name}: expected epoch seconds, got {_show(value)}")
            return None


def _show(value: Any) -> str:
    return json.dumps(value, default=str)[:60]


VENDOR_BILL = "vendorbill"


def parse_invoice(data: Any, *, currency: str, time_zone: str) -> Invoice:
    """One invoice object (the value of "data") → `Invoice`, or `InvalidDocument`.

    A ServiceTrade invoice of type `vendorbill` is money owed to a vendor, not a customer
    invoice: it is refused with the reason, whatever else it holds, so it never posts as AR."""
    if isinstance(data, dict) and str(data.get("type") or "").strip().lower() == VENDOR_BILL:
        raise InvalidDocument([
            f"data.type: {data.get('type')!r} is a ServiceTrade vendor bill (money owed to a "
            "vendor), not a customer invoice: skipped, nothing is posted to accounts receivable"
        ])  # fmt: skip
    errors: list[str] = []
    root = _Reader(errors, "data", data)
    tz = ZoneInfo(time_zone)
    job_reader = root.child("job")
    job_service_line = job_reader.child("serviceLine").text("name")
    lines = tuple(
        _parse_line(_Reader(errors, f"data.items[{index}]", item), job_service_line)
        for index, item in enumerate(_items(root))
    )
    tax_rate = root.decimal("taxRate", required=False) or ZERO
    lines_total = sum((line.amount for line in lines), ZERO)
    tax_amount = _tax_amount(root, lines, tax_rate)
    invoice = Invoice(
        source_id=root.text("id"),
        number=root.text("invoiceNumber"),
        status=root.text("status").lower(),
        transaction_date=root.epoch_date("transactionDate", tz) or date.min,
        currency=currency,
        customer=_ref(root.child("customer")),
        location=_location(root.child("location")),
        job=Job(
            source_id=job_reader.text("id"),
            number=job_reader.text("number"),
            job_type=job_reader.text("type", required=False),
            service_line=job_service_line,
        ),
        office=_ref(root.child("office", required=False), required=False),
        lines=lines,
        tax_rate=tax_rate,
        tax_amount=tax_amount,
        partial=root.boolean("partial", default=False),
        lines_total=lines_total,
        customer_tags=_tags(root.child("customer")),
    )
    _check_total(root, invoice)
    if errors:
        raise InvalidDocument(errors)
    return invoice


def _items(root: _Reader) -> list[Any]:
    items = root.obj.get("items")
    if not isinstance(items, list) or not items:
        root.errors.append(f"{root.path}.items: expected a non-empty list of items")
        return []
    return items


def _parse_line(item: _Reader, job_service_line: str) -> InvoiceLine:
    quantity = item.decimal("quantity")
    price = item.decimal("price")
    item_type = item.text("itemType").lower()
    if item_type and item_type not in ItemType.ALL:
        item.errors.append(
            f"{item.path}.itemType: {item_type!r} is not one of {', '.join(ItemType.ALL)}"
        )
    amount = to_cents(quantity * price) if quantity is not None and price is not None else ZERO
    stated = item.decimal("totalPrice", required=False)
    if stated is not None and quantity is not None and price is not None and stated != amount:
        item.errors.append(
            f"{item.path}.totalPrice: {stated} does not equal quantity × price = {amount}"
        )
    service_line = item.child("serviceLine", required=False).text("name", required=False)
    return InvoiceLine(
        source_id=item.text("id", required=False),
        description=item.text("description", required=False) or item.text("name", required=False),
        item_type=item_type,
        service_line=service_line or job_service_line,
        quantity=quantity or ZERO,
        unit_price=price or ZERO,
        amount=amount,
        taxable=item.boolean("taxable", default=item_type != ItemType.LABOR),
    )


def _tax_amount(root: _Reader, lines: tuple[InvoiceLine, ...], rate: Decimal) -> Decimal:
    stated = root.decimal("totalTax", required=False)
    if stated is not None:
        if stated != to_cents(stated):
            root.errors.append(f"{root.path}.totalTax: {stated} has more than two decimals")
        return stated
    taxable = sum((line.amount for line in lines if line.taxable), ZERO)
    return to_cents(taxable * rate / Decimal(100))


def _check_total(root: _Reader, invoice: Invoice) -> None:
    stated = root.decimal("totalPrice", required=False)
    if stated is not None and stated != invoice.total:
        root.errors.append(
            f"{root.path}.totalPrice: {stated} does not equal items {invoice.lines_total}"
            f" + tax {invoice.tax_amount} = {invoice.total}"
        )


def _tags(customer: _Reader) -> tuple[str, ...]:
    """Company tags, given as names or as {"name": ...} objects; optional."""
    tags = customer.obj.get("tags")
    if tags is None:
        return ()
    if not isinstance(tags, list):
        customer.errors.append(f"{customer.path}.tags: expected a list")
        return ()
    names = []
    for index, tag in enumerate(tags):
        name = tag.get("name") if isinstance(tag, dict) else tag
        if not isinstance(name, str) or not name.strip():
            customer.errors.append(f"{customer.path}.tags[{index}]: expected a tag name")
            continue
        names.append(name.strip())
    return tuple(sorted(set(names)))


def _ref(reader: _Reader, *, required: bool = True) -> Ref:
    return Ref(
        source_id=reader.text("id", required=required),
        name=reader.text("name", required=required),
    )


def _location(reader: _Reader) -> Location:
    address = reader.child("address", required=False)
    return Location(
        source_id=reader.text("id"),
        name=reader.text("name", required=False),
        address=Address(
            street=address.text("street", required=False),
            city=address.text("city", required=False),
            state=address.text("state", required=False).upper(),
            postal_code=address.text("postalCode", required=False),
        ),
    )
