"""Resolution: (document, rules, target catalog) → a fully coded posting plan, or every problem.

Pure and deterministic: no database, no clock, no I/O. The engine loads a `Rules` snapshot and a
`Catalog` and calls `resolve_invoice`; preview and tests call it the same way. Every coded value
carries the reason it was chosen, shown to finance on the record's page.

The plan for an invoice is the journal an AR invoice makes:
    debit  receivable            invoice total
    credit revenue per line      line amount      (a negative line debits revenue instead)
    credit tax liability         tax amount
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from mappings.models import ValueMap, normalise_source_value
from syncengine.canonical import Invoice, InvoiceLine
from syncengine.money import ZERO


@dataclass(frozen=True)
class TargetValue:
    code: str
    account: str


@dataclass(frozen=True)
class Rules:
    receivable_account: str
    default_revenue_account: str = ""
    service_line_revenue: dict[str, TargetValue] = field(default_factory=dict)
    tax_rates: dict[str, TargetValue] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogAccount:
    number: str
    name: str
    active: bool = True
    direct_posting: bool = True


@dataclass(frozen=True)
class Catalog:
    accounts: dict[str, CatalogAccount]
    tax_codes: dict[str, Decimal]


@dataclass(frozen=True)
class PlanLine:
    """A signed amount: positive credits the account, negative debits it (revenue side view)."""

    account: str
    amount: Decimal
    description: str
    reason: str
    tax_code: str = ""
    source_line_id: str = ""


@dataclass(frozen=True)
class InvoicePlan:
    document_number: str
    posting_date: date
    currency: str
    customer_ref: str
    customer_name: str
    receivable_account: str
    receivable_reason: str
    total: Decimal
    lines: tuple[PlanLine, ...]


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    source_value: str = ""


def resolve_invoice(
    invoice: Invoice, rules: Rules, catalog: Catalog
) -> InvoicePlan | list[Problem]:
    problems: list[Problem] = []
    receivable = _check_account(rules.receivable_account, "receivable account", catalog, problems)
    lines = [_revenue_line(line, rules, catalog, problems) for line in invoice.lines]
    if invoice.tax_amount != ZERO:
        lines.append(_tax_line(invoice, rules, catalog, problems))
    if problems:
        return _unique(problems)
    plan_lines = tuple(line for line in lines if line is not None)
    total = sum((line.amount for line in plan_lines), ZERO)
    if total != invoice.total:  # cannot happen for a parsed invoice; guards every future change
        return [Problem("UNBALANCED", f"Coded lines total {total}, invoice total {invoice.total}.")]
    return InvoicePlan(
        document_number=invoice.number,
        posting_date=invoice.transaction_date,
        currency=invoice.currency,
        customer_ref=invoice.customer.source_id,
        customer_name=invoice.customer.name,
        receivable_account=receivable or "",
        receivable_reason="receivable account from the connection's posting defaults",
        total=invoice.total,
        lines=plan_lines,
    )


def _revenue_line(
    line: InvoiceLine, rules: Rules, catalog: Catalog, problems: list[Problem]
) -> PlanLine | None:
    key = normalise_source_value(ValueMap.Kind.SERVICE_LINE_REVENUE, line.service_line)
    target = rules.service_line_revenue.get(key)
    if target is not None:
        account = target.account
        reason = f"revenue account {account} from the service-line map ({line.service_line})"
    elif rules.default_revenue_account:
        account = rules.default_revenue_account
        reason = (
            f"revenue account {account} from the connection default"
            f" (no map for {line.service_line})"
        )
    else:
        problems.append(
            Problem(
                "UNMAPPED_SERVICE_LINE",
                f"No revenue account for service line {line.service_line!r}: add it to the "
                "service-line map or set a default revenue account.",
                line.service_line,
            )
        )
        return None
    if _check_account(account, "revenue account", catalog, problems) is None:
        return None
    return PlanLine(
        account=account,
        amount=line.amount,
        description=line.description,
        reason=reason,
        source_line_id=line.source_id,
    )


def _tax_line(
    invoice: Invoice, rules: Rules, catalog: Catalog, problems: list[Problem]
) -> PlanLine | None:
    key = normalise_source_value(ValueMap.Kind.TAX_RATE, str(invoice.tax_rate))
    target = rules.tax_rates.get(key)
    if target is None:
        problems.append(
            Problem(
                "UNMAPPED_TAX_RATE",
                f"No tax code for tax rate {key}%: add it to the tax-rate map.",
                key,
            )
        )
        return None
    if target.code not in catalog.tax_codes:
        problems.append(
            Problem("UNKNOWN_TAX_CODE", f"Tax code {target.code} does not exist in the ERP.", key)
        )
    if _check_account(target.account, "tax liability account", catalog, problems) is None:
        return None
    return PlanLine(
        account=target.account,
        amount=invoice.tax_amount,
        description=f"Sales tax {key}%",
        reason=(
            f"tax code {target.code} and account {target.account} from the tax-rate map ({key}%)"
        ),
        tax_code=target.code,
    )


def _check_account(number: str, role: str, catalog: Catalog, problems: list[Problem]) -> str | None:
    account = catalog.accounts.get(number)
    if not number:
        problems.append(Problem("NO_ACCOUNT", f"No {role} is configured for this connection."))
    elif account is None:
        problems.append(
            Problem("UNKNOWN_ACCOUNT", f"The {role} {number} does not exist in the ERP.", number)
        )
    elif not account.active:
        problems.append(Problem("INACTIVE_ACCOUNT", f"The {role} {number} is inactive.", number))
    elif not account.direct_posting:
        problems.append(
            Problem("NO_DIRECT_POSTING", f"The {role} {number} does not accept postings.", number)
        )
    else:
        return number
    return None


def _unique(problems: list[Problem]) -> list[Problem]:
    """Each problem once, in first-seen order (ten HVAC lines are one missing mapping)."""
    return list(dict.fromkeys(problems))
