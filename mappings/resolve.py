"""Resolution: (document, compiled rules, ERP catalog) → a fully coded plan, or every problem.

Pure and deterministic: no database, no clock, no I/O, and total — it returns a plan or a list of
problems for any canonical invoice, never raises. The engine, preview and the benchmarks call it
the same way. Every coded value carries the reason it was chosen.

How a line's revenue account is chosen, first match wins:
  1. the most specific GL routing rule (most conditions; priority breaks equal specificity);
  2. the cost-center map's GL account, for the cost center the service-line map gives;
  3. the job-type map;
  4. the service-line map;
  5. the item-type map;
  6. the connection default revenue account.

The plan for an invoice is the journal an AR invoice makes:
    debit  receivable            invoice total
    credit revenue per line      line amount      (a negative line debits revenue instead)
    credit tax liability         tax amount
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from mappings.ruleset import (
    MAP_KINDS,
    CatalogKind,
    DimensionSetting,
    RoutingRule,
    RuleSet,
    norm,
)
from syncengine.canonical import Invoice, InvoiceLine
from syncengine.money import ZERO

# --- the catalog as resolution sees it ------------------------------------------------------------


@dataclass(frozen=True)
class CatalogValue:
    code: str
    name: str = ""
    active: bool = True
    accepts_postings: bool = True
    present: bool = True  # False once the ERP no longer lists it


@dataclass(frozen=True)
class Catalog:
    """ERP lists by kind; dimension values are keyed "DIMENSION/VALUE"."""

    lists: dict[str, dict[str, CatalogValue]] = field(default_factory=dict)

    def get(self, kind: str, code: str) -> CatalogValue | None:
        return self.lists.get(kind, {}).get(code)


# --- compiled rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingGroup:
    """All routing rules testing the same attributes, indexed by their wanted values."""

    attributes: tuple[str, ...]
    rules: dict[tuple[str, ...], tuple[RoutingRule, ...]]


@dataclass(frozen=True)
class CompiledRules:
    ruleset: RuleSet
    version: int | None
    maps: dict[str, dict[str, tuple[str, dict[str, str]]]]
    routing_levels: tuple[tuple[int, tuple[RoutingGroup, ...]], ...]
    dimensions: tuple[tuple[DimensionSetting, dict[str, str]], ...]


def compile_rules(ruleset: RuleSet, version: int | None = None) -> CompiledRules:
    """Index a rule set for resolution; done once per version, then reused for every document."""
    maps = {
        kind: {norm(source): (source, targets) for source, targets in rows.items()}
        for kind, rows in ruleset.maps.items()
    }
    by_signature: dict[tuple[str, ...], dict[tuple[str, ...], list[RoutingRule]]] = {}
    for rule in ruleset.routing:
        signature = tuple(sorted(rule.conditions))
        key = tuple(norm(rule.conditions[attribute]) for attribute in signature)
        by_signature.setdefault(signature, {}).setdefault(key, []).append(rule)
    levels: dict[int, list[RoutingGroup]] = {}
    for signature, index in sorted(by_signature.items()):
        ordered = {
            key: tuple(sorted(rules, key=lambda rule: (-rule.priority, rule.id)))
            for key, rules in index.items()
        }
        levels.setdefault(len(signature), []).append(RoutingGroup(signature, ordered))
    dimensions = tuple(
        (setting, {norm(source): code for source, code in setting.values.items()})
        for setting in ruleset.dimensions
    )
    return CompiledRules(
        ruleset=ruleset,
        version=version,
        maps=maps,
        routing_levels=tuple(sorted(((n, tuple(g)) for n, g in levels.items()), reverse=True)),
        dimensions=dimensions,
    )


# --- the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coding:
    value: str
    reason: str


@dataclass(frozen=True)
class PlanLine:
    """A signed amount: positive credits the account, negative debits it (revenue side view)."""

    account: str
    amount: Decimal
    description: str
    reason: str
    tax_code: str = ""
    source_line_id: str = ""
    line_kind: str = ""
    codings: dict[str, Coding] = field(default_factory=dict)


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
    rule_version: int | None = None
    codings: dict[str, Coding] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    source_value: str = ""


def resolve_invoice(
    invoice: Invoice, rules: CompiledRules, catalog: Catalog
) -> InvoicePlan | list[Problem]:
    problems: list[Problem] = []
    defaults = rules.ruleset.defaults
    receivable = _check_account(
        defaults.receivable_account, "receivable account", catalog, problems
    )
    header = _header_codings(invoice, rules, catalog, problems)
    lines = [_revenue_line(invoice, line, rules, catalog, problems) for line in invoice.lines]
    if invoice.tax_amount != ZERO:
        lines.append(_tax_line(invoice, rules, catalog, problems))
    if problems:
        return list(dict.fromkeys(problems))  # each problem once, in first-seen order
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
        receivable_reason="receivable account from the connection defaults",
        total=invoice.total,
        lines=plan_lines,
        rule_version=rules.version,
        codings=header,
    )


# --- header -------------------------------------------------------------------------------------


def _header_codings(
    invoice: Invoice, rules: CompiledRules, catalog: Catalog, problems: list[Problem]
) -> dict[str, Coding]:
    codings: dict[str, Coding] = {}
    state = invoice.location.address.state
    for target in ("work_state", "tax_class"):
        found = _map_target(rules, "LOCATION_STATE", state, target)
        if found:
            codings[target] = Coding(
                found, f"{target.replace('_', ' ')} from the location-state map ({state})"
            )
    department = _map_target(rules, "OFFICE", invoice.office.name, "department")
    if department:
        _check_value(CatalogKind.DEPARTMENT, department, "department", catalog, problems)
        codings["department"] = Coding(
            department, f"department {department} from the office map ({invoice.office.name})"
        )
    return codings


def _map_target(rules: CompiledRules, kind: str, source: str, target: str) -> str:
    row = rules.maps.get(kind, {}).get(norm(source))
    return row[1].get(target, "") if row else ""


# --- revenue lines ------------------------------------------------------------------------------


def _line_context(invoice: Invoice, line: InvoiceLine) -> dict[str, Any]:
    return {
        "document_kind": "invoice",
        "line_kind": line.item_type,
        "service_line": line.service_line,
        "office": invoice.office.name,
        "job_type": invoice.job.job_type,
        "customer_tag": invoice.customer_tags,
        "state": invoice.location.address.state,
    }


def _revenue_line(
    invoice: Invoice,
    line: InvoiceLine,
    rules: CompiledRules,
    catalog: Catalog,
    problems: list[Problem],
) -> PlanLine | None:
    context = _line_context(invoice, line)
    choice = _revenue_account(line, context, rules, problems)
    if choice is None:
        return None
    account, reason = choice
    if _check_account(account, "revenue account", catalog, problems) is None:
        return None
    return PlanLine(
        account=account,
        amount=line.amount,
        description=line.description,
        reason=reason,
        source_line_id=line.source_id,
        line_kind=line.item_type,
        codings=_line_codings(invoice, line, rules, catalog, problems),
    )


def _revenue_account(
    line: InvoiceLine, context: dict[str, Any], rules: CompiledRules, problems: list[Problem]
) -> tuple[str, str] | None:
    routed = _route(context, rules, problems)
    if routed is not None:
        return routed
    service_line = line.service_line
    cost_center = _map_target(rules, "SERVICE_LINE", service_line, "cost_center")
    candidates = [
        ("COST_CENTER", cost_center, "gl_account", f"the cost-center map ({cost_center})"),
        (
            "JOB_TYPE",
            context["job_type"],
            "gl_account",
            f"the job-type map ({context['job_type']})",
        ),
        ("SERVICE_LINE", service_line, "revenue_account", f"the service-line map ({service_line})"),
        ("ITEM_TYPE", line.item_type, "gl_account", f"the item-type map ({line.item_type})"),
    ]
    for kind, source, target, where in candidates:
        account = _map_target(rules, kind, source, target) if source else ""
        if account:
            return account, f"revenue account {account} from {where}"
    default = rules.ruleset.defaults.revenue_account
    if default:
        return default, (
            f"revenue account {default} from the connection default (no map for {service_line})"
        )
    problems.append(
        Problem(
            "UNMAPPED_SERVICE_LINE",
            f"No revenue account for service line {service_line!r}: add it to the service-line "
            "map or set a default revenue account.",
            service_line,
        )
    )
    return None


def _route(
    context: dict[str, Any], rules: CompiledRules, problems: list[Problem]
) -> tuple[str, str] | None:
    """The most specific matching routing rule; priority decides among equally specific ones."""
    for _specificity, groups in rules.routing_levels:
        matches: list[RoutingRule] = []
        for group in groups:
            for key in _keys(group.attributes, context):
                matches.extend(group.rules.get(key, ()))
        if not matches:
            continue
        matches.sort(key=lambda rule: (-rule.priority, rule.id))
        best = matches[0]
        rivals = [
            rule for rule in matches[1:] if rule.priority == best.priority and rule.id != best.id
        ]
        if rivals:
            problems.append(
                Problem(
                    "AMBIGUOUS_ROUTING",
                    f"GL routing rules {best.id} and {rivals[0].id} both match with the same "
                    "specificity and priority: give one a higher priority.",
                )
            )
            return None
        described = ", ".join(
            f"{a.replace('_', ' ')} {v}" for a, v in sorted(best.conditions.items())
        )
        return best.account, f"revenue account {best.account} from rule {best.id} ({described})"
    return None


def _keys(attributes: tuple[str, ...], context: dict[str, Any]) -> list[tuple[str, ...]]:
    """The index keys a line can match under these attributes (one per customer tag)."""
    if "customer_tag" not in attributes:
        return [tuple(norm(context[attribute]) for attribute in attributes)]
    keys = []
    for tag in context["customer_tag"]:
        keys.append(
            tuple(
                norm(tag) if attribute == "customer_tag" else norm(context[attribute])
                for attribute in attributes
            )
        )
    return keys


def _line_codings(
    invoice: Invoice,
    line: InvoiceLine,
    rules: CompiledRules,
    catalog: Catalog,
    problems: list[Problem],
) -> dict[str, Coding]:
    codings: dict[str, Coding] = {}
    for target, kind in (
        ("cost_code", CatalogKind.COST_CODE),
        ("cost_center", CatalogKind.COST_CENTER),
    ):
        value = _map_target(rules, "SERVICE_LINE", line.service_line, target)
        if value:
            _check_value(kind, value, target.replace("_", " "), catalog, problems)
            label = target.replace("_", " ")
            codings[target] = Coding(
                value, f"{label} {value} from the service-line map ({line.service_line})"
            )
    for setting, values in rules.dimensions:
        coding = _dimension(
            setting, values, _dimension_source(setting.source, invoice, line), catalog, problems
        )
        if coding is not None:
            codings[f"dimension:{setting.dimension}"] = coding
    return codings


def _dimension_source(source: str, invoice: Invoice, line: InvoiceLine) -> str:
    return {
        "service_line": line.service_line,
        "office": invoice.office.name,
        "job": invoice.job.number,
        "job_type": invoice.job.job_type,
        "location_state": invoice.location.address.state,
        "customer": invoice.customer.name,
        "item_type": line.item_type,
    }[source]


def _dimension(
    setting: DimensionSetting,
    values: dict[str, str],
    source_value: str,
    catalog: Catalog,
    problems: list[Problem],
) -> Coding | None:
    label = setting.source.replace("_", " ")
    mapped = values.get(norm(source_value))
    if mapped:
        code, reason = mapped, f"{setting.dimension} {mapped} from the {label} map ({source_value})"
    elif setting.pass_through and source_value:
        # The value is the source's own (e.g. the job number as PROJECT); the ERP may not have it
        # yet, because it is created as a prerequisite, so it is not checked against the catalog.
        return Coding(source_value, f"{setting.dimension} {source_value} is the {label} itself")
    elif setting.default:
        code = setting.default
        reason = (
            f"{setting.dimension} {code} from the dimension default (no map for {source_value})"
        )
    elif setting.required:
        problems.append(
            Problem(
                "UNMAPPED_DIMENSION",
                f"No {setting.dimension} value for {label} {source_value!r}: add it to the "
                f"{setting.dimension} dimension map or give the dimension a default.",
                source_value,
            )
        )
        return None
    else:
        return None
    if catalog.get(CatalogKind.DIMENSION, setting.dimension) is None:
        problems.append(
            Problem(
                "UNKNOWN_DIMENSION", f"Dimension {setting.dimension} does not exist in the ERP."
            )
        )
        return None
    key = f"{setting.dimension}/{code}"
    _check_value(
        CatalogKind.DIMENSION_VALUE,
        key,
        f"{setting.dimension} value",
        catalog,
        problems,
        shown=code,
    )
    return Coding(code, reason)


# --- tax ----------------------------------------------------------------------------------------


def _tax_line(
    invoice: Invoice, rules: CompiledRules, catalog: Catalog, problems: list[Problem]
) -> PlanLine | None:
    rate = norm(str(invoice.tax_rate))
    state = invoice.location.address.state
    defaults = rules.ruleset.defaults
    if defaults.tax_code_source == "STATE":
        code = _map_target(rules, "LOCATION_STATE", state, "tax_code")
        code_reason = f"tax code {code} from the location-state map ({state})"
        missing = Problem(
            "UNMAPPED_STATE_TAX",
            f"No tax code for state {state!r}: add it to the location-state map.",
            state,
        )
    else:
        code = _map_target(rules, "TAX_RATE", rate, "tax_code")
        code_reason = f"tax code {code} from the tax-rate map ({rate}%)"
        missing = Problem(
            "UNMAPPED_TAX_RATE",
            f"No tax code for tax rate {rate}%: add it to the tax-rate map.",
            rate,
        )
    if not code:
        problems.append(missing)
        return None
    _check_value(CatalogKind.TAX_CODE, code, "tax code", catalog, problems)
    account = _map_target(rules, "TAX_RATE", rate, "tax_account")
    account_reason = f"account {account} from the tax-rate map ({rate}%)"
    if not account and defaults.tax_account:
        account = defaults.tax_account
        account_reason = f"account {account} from the connection's default tax account"
    if not account:
        problems.append(
            Problem(
                "NO_TAX_ACCOUNT",
                f"No tax liability account for tax rate {rate}%: "
                "add one to the tax-rate map or set a default tax account.",
                rate,
            )
        )
        return None
    if _check_account(account, "tax liability account", catalog, problems) is None:
        return None
    return PlanLine(
        account=account,
        amount=invoice.tax_amount,
        description=f"Sales tax {rate}%",
        reason=f"{code_reason}; {account_reason}",
        tax_code=code,
        line_kind="tax",
    )


# --- catalog checks -----------------------------------------------------------------------------


def _check_account(number: str, role: str, catalog: Catalog, problems: list[Problem]) -> str | None:
    if not number:
        problems.append(Problem("NO_ACCOUNT", f"No {role} is configured for this connection."))
        return None
    if _check_value(CatalogKind.ACCOUNT, number, role, catalog, problems, article="The "):
        return number
    return None


def _check_value(
    kind: str,
    code: str,
    role: str,
    catalog: Catalog,
    problems: list[Problem],
    *,
    shown: str | None = None,
    article: str = "",
) -> bool:
    """Is the target value usable? Adds the problem and returns False when it is not."""
    value = catalog.get(kind, code)
    shown = shown or code
    subject = f"{article}{role} {shown}" if article else f"{role[0].upper()}{role[1:]} {shown}"
    if value is None:
        problems.append(Problem(f"UNKNOWN_{kind}", f"{subject} does not exist in the ERP.", code))
    elif not value.present:
        problems.append(Problem(f"GONE_{kind}", f"{subject} is no longer in the ERP.", code))
    elif not value.active:
        problems.append(Problem(f"INACTIVE_{kind}", f"{subject} is inactive.", code))
    elif not value.accepts_postings:
        problems.append(Problem(f"NO_POSTING_{kind}", f"{subject} does not accept postings.", code))
    else:
        return True
    return False


__all__ = [
    "MAP_KINDS",
    "Catalog",
    "CatalogValue",
    "Coding",
    "CompiledRules",
    "InvoicePlan",
    "PlanLine",
    "Problem",
    "compile_rules",
    "resolve_invoice",
]
