"""How one coded invoice becomes ERP documents: the per-connection posting policies.

Pure functions over `InvoicePlan`s, no I/O; `syncengine.services` calls them between coding an
invoice and calling the connector.

- Sign: a plan whose total is negative (a ServiceTrade credit) is posted as a credit memo.
- Mixed signs (`mixed_sign`): "one_document" posts the plan as it is (a negative line debits
  revenue); "split" posts the positive lines as an invoice and the negative lines as a credit
  memo, each part under its own key. The invoice's tax is apportioned between the parts by their
  taxable amounts, rounded half-up to the cent once, the credit part taking the remainder, so the
  two parts sum to the source total exactly.
- Closed periods (`closed_through`, `closed_periods`, `closed_period_policy`): a posting date in
  a closed period is held ("hold") or moved to the first open day after it ("redate").

The policies live in `Connection.erp_settings` next to the connector's own settings, so Admins
edit them on the connection's settings page; `PostingPolicy.of` reads and checks them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from mappings.resolve import InvoicePlan, PlanLine
from syncengine.canonical import Invoice
from syncengine.models import Connection
from syncengine.money import ZERO, to_cents

ONE_DOCUMENT = "one_document"
SPLIT = "split"
HOLD = "hold"
REDATE = "redate"
KEY_LENGTH = 35  # the shortest external document number field of any target (Business Central)
TAX = "tax"  # PlanLine.line_kind of the tax line


class PolicyInvalid(ValueError):
    def __init__(self, errors: list[str]):
        super().__init__(" ".join(errors))
        self.errors = errors


@dataclass(frozen=True, kw_only=True)
class PostingPolicy:
    """The posting policies of a connection, read from `Connection.erp_settings`.

    Connector settings dataclasses inherit it (keyword-only fields, so a subclass may still
    declare required fields), which puts these fields on the connection's settings page.
    """

    mixed_sign: str = ONE_DOCUMENT  # "one_document" or "split"
    closed_through: str = ""  # YYYY-MM-DD: every day up to and including it is closed
    closed_periods: dict[str, str] = field(default_factory=dict)  # first day → last day, closed
    closed_period_policy: str = HOLD  # "hold" or "redate"

    @classmethod
    def of(cls, connection: Connection) -> PostingPolicy:
        """The connection's policies; raises PolicyInvalid naming every bad field."""
        raw = connection.erp_settings or {}
        names = {item.name for item in dataclasses.fields(PostingPolicy)}
        policy = PostingPolicy(**{name: raw[name] for name in names if name in raw})
        errors = policy.problems()
        if errors:
            raise PolicyInvalid(errors)
        return policy

    def problems(self) -> list[str]:
        errors = []
        if self.mixed_sign not in (ONE_DOCUMENT, SPLIT):
            errors.append(f"mixed_sign must be 'one_document' or 'split', not {self.mixed_sign!r}.")
        if self.closed_period_policy not in (HOLD, REDATE):
            errors.append(
                "closed_period_policy must be 'hold' or 'redate', "
                f"not {self.closed_period_policy!r}."
            )
        if self.closed_through and _date(self.closed_through) is None:
            errors.append(f"closed_through {self.closed_through!r} is not a date (YYYY-MM-DD).")
        if not isinstance(self.closed_periods, dict):
            errors.append("closed_periods must be an object of first day → last day.")
            return errors
        for start, end in self.closed_periods.items():
            first, last = _date(start), _date(end)
            if first is None or last is None or last < first:
                errors.append(
                    f"closed_periods {start!r} → {end!r} is not a period (YYYY-MM-DD → "
                    "YYYY-MM-DD, last day on or after the first)."
                )
        return errors

    def closed_until(self, day: date) -> date | None:
        """The last day of the closed stretch that holds `day`, or None when `day` is open."""
        until: date | None = None
        closed_through = _date(self.closed_through)
        if closed_through is not None and day <= closed_through:
            until = closed_through
        for start, end in self.closed_periods.items():
            first, last = _date(start), _date(end)
            if first is not None and last is not None and first <= day <= last:
                until = max(until or last, last)
        return until

    def first_open_day(self, day: date) -> date:
        """`day` itself when open, else the first open day after it (periods may abut)."""
        while (until := self.closed_until(day)) is not None:
            day = until + timedelta(days=1)
        return day


def _date(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        return None


def is_credit(plan: InvoicePlan) -> bool:
    return plan.total < ZERO


def is_mixed(plan: InvoicePlan) -> bool:
    amounts = [line.amount for line in plan.lines if line.line_kind != TAX]
    return any(amount > ZERO for amount in amounts) and any(amount < ZERO for amount in amounts)


@dataclass(frozen=True)
class Part:
    """One document of a split: its suffix (P or N), key and plan."""

    suffix: str
    key: str
    plan: InvoicePlan

    @property
    def credit(self) -> bool:
        return self.suffix == "N"


def part_key(key: str, suffix: str) -> str:
    """`key-P` / `key-N`; when that is too long, the key's start and a hash of the whole key, so
    two long keys that share a start still get different part keys."""
    candidate = f"{key}-{suffix}"
    if len(candidate) <= KEY_LENGTH:
        return candidate
    digest = hashlib.sha256(key.encode()).hexdigest()
    head = KEY_LENGTH - len(suffix) - 1 - 13
    return f"{key[:head]}{digest[:13]}-{suffix}"


def split(plan: InvoicePlan, invoice: Invoice, key: str) -> tuple[Part, Part]:
    """The positive lines as an invoice and the negative lines as a credit memo.

    Tax goes with the taxable amounts: the invoice part takes tax × its taxable amount / the net
    taxable amount, rounded half-up to the cent (by the tax rate when the net is zero); the
    credit part takes the rest. The two totals sum to `plan.total` exactly.
    """
    positive = tuple(line for line in plan.lines if line.line_kind != TAX and line.amount > ZERO)
    negative = tuple(line for line in plan.lines if line.line_kind != TAX and line.amount < ZERO)
    tax_lines = [line for line in plan.lines if line.line_kind == TAX]
    tax = sum((line.amount for line in tax_lines), ZERO)
    positive_tax = apportion_tax(tax, invoice)
    parts = []
    shares = (("P", positive, positive_tax), ("N", negative, tax - positive_tax))
    for suffix, lines, part_tax in shares:
        coded = lines + tuple(_with_amount(line, part_tax) for line in tax_lines[:1] if part_tax)
        total = sum((line.amount for line in coded), ZERO)
        parts.append(Part(suffix, part_key(key, suffix), dataclasses.replace(
            plan, lines=coded, total=total,
        )))  # fmt: skip
    assert parts[0].plan.total + parts[1].plan.total == plan.total
    return parts[0], parts[1]


def apportion_tax(tax: Decimal, invoice: Invoice) -> Decimal:
    """The positive part's share of the invoice's tax, to the cent (ROUND_HALF_UP)."""
    if tax == ZERO:
        return ZERO
    taxable = [line for line in invoice.lines if line.taxable] or list(invoice.lines)
    positive = sum((line.amount for line in taxable if line.amount > ZERO), ZERO)
    net = sum((line.amount for line in taxable), ZERO)
    if net != ZERO:
        return to_cents(tax * positive / net)
    return to_cents(positive * invoice.tax_rate / Decimal(100))


def _with_amount(line: PlanLine, amount: Decimal) -> PlanLine:
    return line._replace(amount=amount)
