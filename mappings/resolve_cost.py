"""Resolution of job item costs and procurement into balanced postings; pure, like
`mappings.resolve` (no database, no clock, total: a plan or every problem, never raises).

Kept apart from `resolve_invoice`, which is benchmarked; it reads the same compiled rules.

A job item cost becomes a journal of one pair:
    debit  job cost / WIP      the item's cost
    credit offset               the same (inventory for parts, accrued cost for labor …)
The debit account, first match wins: a routing rule for document kind `job_cost` (most
conditions, then priority; it may test line_kind, service_line, office, job_type, state: a cost
account per service line is such a rule); the item-type map's `cost_account`; the default
`cost_account`. The credit: the item-type map's `cost_offset_account`, else the default.

A purchase invoice becomes
    debit  inventory / expense per line   (rule for `purchase_invoice`, item-type map,
                                           service-line map, default cost_account)
    credit payables                        the invoice total (default payable_account)
and an inventory adjustment one pair per line between the line's inventory account (as a
purchase line is coded) and the default `inventory_adjustment_account`; a negative quantity
turns the pair round. Dimensions are coded as for invoices, from the same dimension settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from mappings.resolve import (
    Catalog,
    Coding,
    CompiledDimension,
    CompiledRules,
    Problem,
    _check_account,
    _dimension,
)
from mappings.ruleset import norm
from syncengine.canonical import JobCost, ProcurementDocument, ProcurementKind, PurchaseLine
from syncengine.money import ZERO


class JournalPair(NamedTuple):
    """One balanced movement: `amount` (positive) debits one account and credits the other."""

    debit_account: str
    credit_account: str
    amount: Decimal
    description: str
    reason: str
    dimensions: dict[str, str] = {}  # noqa: RUF012 — never mutated; a NamedTuple default


@dataclass(frozen=True)
class JournalPlan:
    document_number: str
    posting_date: date
    currency: str
    description: str
    pairs: tuple[JournalPair, ...]
    rule_version: int | None = None

    @property
    def total(self) -> Decimal:
        return sum((pair.amount for pair in self.pairs), ZERO)


class PurchasePlanLine(NamedTuple):
    account: str
    amount: Decimal
    quantity: Decimal
    unit_cost: Decimal
    description: str
    reason: str
    dimensions: dict[str, str] = {}  # noqa: RUF012


@dataclass(frozen=True)
class PurchasePlan:
    kind: str  # ProcurementKind.PURCHASE_INVOICE
    document_number: str  # the vendor's invoice number
    posting_date: date
    due_date: date | None
    currency: str
    vendor_ref: str
    vendor_name: str
    payable_account: str
    lines: tuple[PurchasePlanLine, ...]
    rule_version: int | None = None
    codings: dict[str, Coding] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


@dataclass(frozen=True)
class _Context:
    """The attributes rules and dimensions read, for one cost or purchase line."""

    document_kind: str
    line_kind: str
    service_line: str = ""
    office: str = ""
    job_type: str = ""
    state: str = ""
    job: str = ""
    customer: str = ""

    def value(self, attribute: str) -> str:
        return {"item_type": self.line_kind, "location_state": self.state}.get(
            attribute, getattr(self, attribute, "")
        )


def resolve_job_cost(
    cost: JobCost, rules: CompiledRules, catalog: Catalog
) -> JournalPlan | list[Problem]:
    problems: list[Problem] = []
    context = _Context("job_cost", cost.item_type, cost.service_line, cost.office, cost.job_type,
                       cost.location_state, cost.job_number, cost.customer)  # fmt: skip
    debit, debit_reason = _cost_account(rules, context)
    credit, credit_reason = _offset_account(rules, cost.item_type)
    _checked(debit, "job cost account", catalog, problems)
    _checked(credit, "job cost offset account", catalog, problems)
    dimensions = _dimensions(rules, context, catalog, problems)
    if cost.amount == ZERO:
        problems.append(Problem("ZERO_COST", f"Job item {cost.source_id} costs nothing: there is "
                                "nothing to post.", cost.source_id))  # fmt: skip
    if problems:
        return list(dict.fromkeys(problems))
    # A negative cost (a return to stock) turns the pair round; the amount stays positive.
    pair_accounts = (debit, credit) if cost.amount > ZERO else (credit, debit)
    pair = JournalPair(
        *pair_accounts, abs(cost.amount),
        f"Job {cost.job_number}: {cost.description}"[:200],
        f"{debit_reason}; {credit_reason}", dimensions,
    )  # fmt: skip
    return JournalPlan(
        document_number=cost.job_number, posting_date=cost.used_on, currency=cost.currency,
        description=f"Job cost {cost.job_number} item {cost.source_id}", pairs=(pair,),
        rule_version=rules.version,
    )  # fmt: skip


def resolve_purchase_invoice(
    document: ProcurementDocument, rules: CompiledRules, catalog: Catalog
) -> PurchasePlan | list[Problem]:
    problems: list[Problem] = []
    payable = rules.ruleset.defaults.payable_account
    _checked(payable, "payables account", catalog, problems)
    lines = tuple(_purchase_line(document, line, rules, catalog, problems)
                  for line in document.lines)  # fmt: skip
    if problems:
        return list(dict.fromkeys(problems))
    return PurchasePlan(
        kind=ProcurementKind.PURCHASE_INVOICE, document_number=document.number,
        posting_date=document.document_date, due_date=document.due_date,
        currency=document.currency, vendor_ref=document.vendor_id,
        vendor_name=document.vendor_name, payable_account=payable, lines=lines,
        rule_version=rules.version,
        codings={"payable_account": Coding(payable, f"payables account {payable} from the "
                                                    "defaults")},
    )  # fmt: skip


def resolve_inventory_adjustment(
    document: ProcurementDocument, rules: CompiledRules, catalog: Catalog
) -> JournalPlan | list[Problem]:
    problems: list[Problem] = []
    other = rules.ruleset.defaults.inventory_adjustment_account
    _checked(other, "inventory adjustment account", catalog, problems)
    pairs = []
    for line in document.lines:
        coded = _purchase_line(document, line, rules, catalog, problems)
        if line.amount == ZERO:
            continue
        accounts = (coded.account, other) if line.amount > ZERO else (other, coded.account)
        pairs.append(JournalPair(*accounts, abs(line.amount), coded.description,
                                 f"{coded.reason}; the other side is the default inventory "
                                 "adjustment account", coded.dimensions))  # fmt: skip
    if not pairs and not problems:
        problems.append(Problem("ZERO_COST", "Every line of the adjustment is zero: nothing to "
                                "post."))  # fmt: skip
    if problems:
        return list(dict.fromkeys(problems))
    return JournalPlan(
        document_number=document.number, posting_date=document.document_date,
        currency=document.currency,
        description=f"Inventory adjustment {document.number}: {document.reason}"[:200],
        pairs=tuple(pairs), rule_version=rules.version,
    )  # fmt: skip


def _purchase_line(
    document: ProcurementDocument,
    line: PurchaseLine,
    rules: CompiledRules,
    catalog: Catalog,
    problems: list[Problem],
) -> PurchasePlanLine:
    context = _Context("purchase_invoice", line.item_type, line.service_line, document.office,
                       job=line.job_number)  # fmt: skip
    account, reason = _cost_account(rules, context)
    _checked(account, f"account for {line.item_type} lines", catalog, problems)
    dimensions = _dimensions(rules, context, catalog, problems)
    description = line.description or line.item or f"Line {line.line_id}"
    return PurchasePlanLine(account, line.amount, line.quantity, line.unit_cost,
                            description[:100], reason, dimensions)  # fmt: skip


def _cost_account(rules: CompiledRules, context: _Context) -> tuple[str, str]:
    rule = _best_rule(rules, context)
    if rule is not None:
        return rule.account, f"account {rule.account} from routing rule {rule.id}"
    source = context.line_kind
    account = rules.maps.get("ITEM_TYPE", {}).get(norm(source), {}).get("cost_account", "")
    if account:
        return account, f"account {account} from the item-type map ({source})"
    account = rules.ruleset.defaults.cost_account
    return account, f"account {account} from the default cost account"


def _offset_account(rules: CompiledRules, item_type: str) -> tuple[str, str]:
    row = rules.maps.get("ITEM_TYPE", {}).get(norm(item_type), {}) if item_type else {}
    if row.get("cost_offset_account"):
        account = row["cost_offset_account"]
        return account, f"offset {account} from the item-type map ({item_type})"
    account = rules.ruleset.defaults.cost_offset_account
    return account, f"offset {account} from the default cost offset account"


def _best_rule(rules: CompiledRules, context: _Context):  # type: ignore[no-untyped-def]
    """The most specific matching rule of this document kind (priority breaks ties). Only
    rules naming the kind count: an invoice rule must never code a cost as revenue."""
    best = None
    for rule in rules.ruleset.routing:
        conditions = rule.conditions
        if conditions.get("document_kind") != context.document_kind:
            continue
        if all(norm(context.value(name)) == norm(value) for name, value in conditions.items()
               if name != "document_kind"):  # fmt: skip
            rank = (rule.specificity, rule.priority, -rule.id)
            if best is None or rank > best[0]:
                best = (rank, rule)
    return best[1] if best else None


def _dimensions(
    rules: CompiledRules, context: _Context, catalog: Catalog, problems: list[Problem]
) -> dict[str, str]:
    coded: dict[str, str] = {}
    for dimension in rules.dimensions:
        coding = _dimension(dimension, _source(dimension, context), catalog, problems)
        if coding is not None and coding.value:
            coded[dimension.setting.dimension] = coding.value
    return coded


def _source(dimension: CompiledDimension, context: _Context) -> str:
    return context.value(dimension.setting.source)


def _checked(account: str, role: str, catalog: Catalog, problems: list[Problem]) -> None:
    _check_account(account, role, catalog, problems)
