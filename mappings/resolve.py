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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from mappings.ruleset import (
    LINE_DIMENSION_SOURCES,
    MAP_KINDS,
    CatalogKind,
    DimensionSetting,
    RoutingRule,
    RuleSet,
    norm,
)
from syncengine.canonical import Invoice, InvoiceLine
from syncengine.money import ZERO

_NOTHING: Mapping[str, Any] = MappingProxyType({})  # a shared empty lookup: no dict per miss

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
        return self.lists.get(kind, _NOTHING).get(code)


# --- compiled rules -----------------------------------------------------------------------------
#
# Compiling does, once per version, all the work that does not depend on the document: it
# normalises rule values, orders rules, and writes the reason of every routing rule and the
# coding of every map value. Resolving a line is then dictionary look-ups, plus reason text only
# for values actually chosen whose source is spelled differently from the map (say "hvac" for a
# map row typed "HVAC").

KeyReader = Callable[[dict[str, str]], object]
Lookup = Callable[[object], "Routes | None"]


class Route(NamedTuple):
    rule: RoutingRule
    reason: str


class Routes(NamedTuple):
    """One index entry: the rules it holds, best first, and the answer when it alone matches
    (None when its own best two tie, which only a rule set that skipped validation can do)."""

    routes: tuple[Route, ...]
    alone: tuple[str, str] | None


class MappedValue(NamedTuple):
    """A value a map gives, with its coding for a source spelled as the map spells it."""

    value: str
    spelling: str  # the source value as the rule set has it
    coding: Coding
    catalog_key: str  # how the catalog lists it ("DEPARTMENT/D10" for dimension values)


@dataclass(frozen=True)
class RoutingGroup:
    """All routing rules testing the same attributes, indexed in two steps by normalised value.

    First by the document's values (`document_key` reads them from `_Document.context`, plus a
    customer tag), so each document picks, once, the few index entries its lines can match; then
    by the line's values, which is all a line looks up. `line_shape` says which line values the
    group tests: 0 none, 1 the line kind, 2 the service line, 3 both (the key is then a pair).
    Each entry lists the rules best first.
    """

    attributes: tuple[str, ...]
    document_key: KeyReader
    line_shape: int
    rules: dict[object, dict[object, Routes]]
    tagged: bool  # tests customer_tag: the document picks one entry per tag of the customer


@dataclass(frozen=True)
class RoutingLevel:
    """The groups whose rules test the same number of attributes, in signature order."""

    specificity: int
    groups: tuple[RoutingGroup, ...]
    # The groups as (document key reader, index lookup, line shape, tests customer_tag) tuples:
    # what each document reads, without attribute look-ups.
    probes: tuple[tuple[KeyReader, Callable[[object], Any], int, bool], ...]


@dataclass(frozen=True)
class ServiceLineRow:
    targets: dict[str, str]
    codings: tuple[tuple[str, str, str, MappedValue], ...]  # target, catalog kind, label, value


@dataclass(frozen=True)
class CompiledDimension:
    setting: DimensionSetting
    values: dict[str, MappedValue]  # by normalised source value
    label: str  # the source as reasons name it ("service line")
    read: Callable[[Invoice, InvoiceLine], str]  # the source value of a line
    per_line: bool  # False: the source is the document's, so every line gets the same coding
    coding_key: str  # "dimension:DEPARTMENT"
    value_role: str  # "DEPARTMENT value", as problems name it


@dataclass(frozen=True)
class CompiledRules:
    ruleset: RuleSet
    version: int | None
    maps: dict[str, dict[str, dict[str, str]]]  # kind → normalised source value → targets
    service_lines: dict[str, ServiceLineRow]  # the service-line map, by normalised source value
    routing_levels: tuple[RoutingLevel, ...]  # most specific first
    dimensions: tuple[CompiledDimension, ...]
    routes_on_tags: bool
    # The document attributes, besides the tag, that groups on customer tags test.
    tag_context: tuple[str, ...]
    # Coding keys of the document dimensions a created customer takes as its defaults.
    customer_defaults: tuple[str, ...] = ()
    # What resolution learns about one line's own values against one catalog (see `_LinePart`),
    # kept across documents. Not part of the rules' identity; bounded by `_MEMO_LIMIT`.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def compile_rules(ruleset: RuleSet, version: int | None = None) -> CompiledRules:
    """Index a rule set for resolution; done once per version, then reused for every document."""
    maps = {
        kind: {norm(source): targets for source, targets in rows.items()}
        for kind, rows in ruleset.maps.items()
    }
    levels = _routing_levels(ruleset.routing)
    return CompiledRules(
        ruleset=ruleset,
        version=version,
        maps=maps,
        service_lines=_service_lines(ruleset.maps.get("SERVICE_LINE", {})),
        routing_levels=levels,
        dimensions=tuple(_compile_dimension(setting) for setting in ruleset.dimensions),
        customer_defaults=tuple(
            f"dimension:{setting.dimension}"
            for setting in ruleset.dimensions
            if setting.customer_default and setting.source not in LINE_DIMENSION_SOURCES
        ),
        routes_on_tags=any(group.tagged for level in levels for group in level.groups),
        tag_context=tuple(
            sorted(
                {
                    attribute
                    for level in levels
                    for group in level.groups
                    if group.tagged
                    for attribute in group.attributes
                    if attribute not in (*_LINE_ATTRIBUTES, "customer_tag")
                }
            )
        ),
    )


def _routing_levels(routing: tuple[RoutingRule, ...]) -> tuple[RoutingLevel, ...]:
    by_signature: dict[tuple[str, ...], list[RoutingRule]] = {}
    for rule in routing:
        by_signature.setdefault(tuple(sorted(rule.conditions)), []).append(rule)
    levels: dict[int, list[RoutingGroup]] = {}
    for signature, rules in sorted(by_signature.items()):
        levels.setdefault(len(signature), []).append(_routing_group(signature, rules))
    return tuple(
        RoutingLevel(
            specificity=specificity,
            groups=tuple(groups),
            probes=tuple(
                (group.document_key, group.rules.get, group.line_shape, group.tagged)
                for group in groups
            ),
        )
        for specificity, groups in sorted(levels.items(), reverse=True)
    )


# The routing attributes that vary by line; the others are the document's.
_LINE_ATTRIBUTES = ("line_kind", "service_line")


def _routing_group(signature: tuple[str, ...], rules: list[RoutingRule]) -> RoutingGroup:
    on_document = tuple(a for a in signature if a not in _LINE_ATTRIBUTES)
    document_key = itemgetter(*on_document) if on_document else _no_key
    line_shape = ("line_kind" in signature) + 2 * ("service_line" in signature)
    index: dict[object, dict[object, list[RoutingRule]]] = {}
    for rule in rules:
        wanted = {attribute: norm(value) for attribute, value in rule.conditions.items()}
        line_kind, service_line = wanted.get("line_kind", ""), wanted.get("service_line", "")
        line_key = ((), line_kind, service_line, (line_kind, service_line))[line_shape]
        index.setdefault(document_key(wanted), {}).setdefault(line_key, []).append(rule)
    return RoutingGroup(
        attributes=signature,
        document_key=document_key,
        line_shape=line_shape,
        rules={
            document_value: {line_value: _routes(same) for line_value, same in by_line.items()}
            for document_value, by_line in index.items()
        },
        tagged="customer_tag" in signature,
    )


def _routes(rules: list[RoutingRule]) -> Routes:
    routes = tuple(Route(rule, _route_reason(rule)) for rule in sorted(rules, key=_rank))
    tied = len(routes) > 1 and routes[1].rule.priority == routes[0].rule.priority
    return Routes(routes, None if tied else (routes[0].rule.account, routes[0].reason))


def _no_key(_context: dict[str, str]) -> object:
    return ()


def _rank(rule: RoutingRule) -> tuple[int, int]:
    return (-rule.priority, rule.id)


def _route_reason(rule: RoutingRule) -> str:
    described = ", ".join(
        f"{attribute.replace('_', ' ')} {value}"
        for attribute, value in sorted(rule.conditions.items())
    )
    return f"revenue account {rule.account} from rule {rule.id} ({described})"


# The service-line map targets coded on each line: target, catalog kind, label.
_SERVICE_LINE_CODINGS = (
    ("cost_code", CatalogKind.COST_CODE, "cost code"),
    ("cost_center", CatalogKind.COST_CENTER, "cost center"),
)


def _service_lines(rows: dict[str, dict[str, str]]) -> dict[str, ServiceLineRow]:
    compiled = {}
    for source, targets in rows.items():
        codings = []
        for target, kind, label in _SERVICE_LINE_CODINGS:
            value = targets.get(target, "")
            if value:
                reason = f"{label} {value} from the service-line map ({source})"
                codings.append(
                    (target, kind, label, MappedValue(value, source, Coding(value, reason), value))
                )
        compiled[norm(source)] = ServiceLineRow(targets, tuple(codings))
    return compiled


# Where a dimension's source value comes from; the line's own, or the document's.
_DIMENSION_SOURCES: dict[str, Callable[[Invoice, InvoiceLine], str]] = {
    "service_line": lambda invoice, line: line.service_line,
    "item_type": lambda invoice, line: line.item_type,
    "office": lambda invoice, line: invoice.office.name,
    "job": lambda invoice, line: invoice.job.number,
    "job_type": lambda invoice, line: invoice.job.job_type,
    "location_state": lambda invoice, line: invoice.location.address.state,
    "customer": lambda invoice, line: invoice.customer.name,
}


def _compile_dimension(setting: DimensionSetting) -> CompiledDimension:
    name, label = setting.dimension, setting.source.replace("_", " ")
    values = {}
    for source, code in setting.values.items():
        reason = f"{name} {code} from the {label} map ({source})"
        values[norm(source)] = MappedValue(code, source, Coding(code, reason), f"{name}/{code}")
    return CompiledDimension(
        setting=setting,
        values=values,
        label=label,
        read=_DIMENSION_SOURCES[setting.source],
        per_line=setting.source in LINE_DIMENSION_SOURCES,
        coding_key=f"dimension:{name}",
        value_role=f"{name} value",
    )


# --- the plan -----------------------------------------------------------------------------------


class Coding(NamedTuple):
    value: str
    reason: str


class PlanLine(NamedTuple):
    """A signed amount: positive credits the account, negative debits it (revenue side view).

    Plans are immutable; named tuples rather than frozen dataclasses because a resolution makes
    one per line and a frozen dataclass costs four times as much to build.
    """

    account: str
    amount: Decimal
    description: str
    reason: str
    tax_code: str = ""
    source_line_id: str = ""
    line_kind: str = ""
    # Typed read-only: the shared empty default, like every plan's codings, is never changed.
    codings: Mapping[str, Coding] = {}


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
    codings: Mapping[str, Coding] = field(default_factory=dict)
    # Dimension code → value the rules give the customer as its defaults when the connector
    # creates it (document dimensions marked `customer_default`).
    customer_dimensions: Mapping[str, str] = field(default_factory=dict)


def invoice_plan_from_dict(data: Mapping[str, Any]) -> InvoicePlan:
    """A plan back from its stored form (`syncengine.canonical.to_jsonable`), exactly: amounts as
    Decimals, dates as dates, codings as codings. Keys the plan does not have are ignored."""

    def codings(value: Any) -> dict[str, Coding]:
        return {name: Coding(item["value"], item["reason"]) for name, item in (value or {}).items()}

    return InvoicePlan(
        document_number=data["document_number"],
        posting_date=date.fromisoformat(data["posting_date"]),
        currency=data["currency"],
        customer_ref=data["customer_ref"],
        customer_name=data["customer_name"],
        receivable_account=data["receivable_account"],
        receivable_reason=data["receivable_reason"],
        total=Decimal(data["total"]),
        lines=tuple(
            PlanLine(
                account=line["account"],
                amount=Decimal(line["amount"]),
                description=line["description"],
                reason=line["reason"],
                tax_code=line.get("tax_code", ""),
                source_line_id=line.get("source_line_id", ""),
                line_kind=line.get("line_kind", ""),
                codings=codings(line.get("codings")),
            )  # fmt: skip
            for line in data["lines"]
        ),
        rule_version=data.get("rule_version"),
        codings=codings(data.get("codings")),
        customer_dimensions=dict(data.get("customer_dimensions") or {}),
    )


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
    document = _Document(invoice, rules, catalog, problems)
    header = _header_codings(document)
    lines = [_revenue_line(document, line) for line in invoice.lines]
    if invoice.tax_amount != ZERO:
        lines.append(_tax_line(document))
    if problems:
        return list(dict.fromkeys(problems))  # each problem once, in first-seen order
    plan_lines = tuple(filter(None, lines))
    total = sum([line.amount for line in plan_lines], ZERO)
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
        customer_dimensions=_customer_dimensions(rules, document.shared),
    )


def _customer_dimensions(
    rules: CompiledRules, shared: Mapping[str, Coding] | None
) -> Mapping[str, str]:
    if not rules.customer_defaults or not shared:
        return {}
    return {
        key.removeprefix("dimension:"): shared[key].value
        for key in rules.customer_defaults
        if key in shared and shared[key].value
    }


class _Document:
    """One resolution's working state: what every line of the document shares, found once."""

    __slots__ = (
        "invoice", "rules", "catalog", "problems", "routing", "shared", "memo",
        "parts", "usable_accounts",
    )  # fmt: skip

    def __init__(
        self, invoice: Invoice, rules: CompiledRules, catalog: Catalog, problems: list[Problem]
    ) -> None:
        self.invoice = invoice
        self.rules = rules
        self.catalog = catalog
        self.problems = problems
        self.routing = _routing_probes(rules, invoice)
        # The codings of dimensions fed from the document (its office, job …), the same on
        # every line: worked out, and their problems reported, on the first line coded.
        self.shared: dict[str, Coding] | None = None
        self.memo = _memo_for(rules, catalog)
        self.parts, self.usable_accounts = self.memo.parts, self.memo.usable_accounts


# --- header -------------------------------------------------------------------------------------


def _header_codings(document: _Document) -> Mapping[str, Coding]:
    invoice = document.invoice
    key = (invoice.location.address.state, invoice.office.name)
    known = document.memo.headers.get(key)
    if known is None:
        found: list[Problem] = []
        # One dict shared by every plan with this state and office: plans are read-only.
        known = document.memo.headers[key] = (_header_coded(document, found), tuple(found))
    codings, problems = known
    if problems:
        document.problems.extend(problems)
    return codings


def _header_coded(document: _Document, problems: list[Problem]) -> dict[str, Coding]:
    invoice, rules = document.invoice, document.rules
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
        _check_value(CatalogKind.DEPARTMENT, department, "department", document.catalog, problems)
        codings["department"] = Coding(
            department, f"department {department} from the office map ({invoice.office.name})"
        )
    return codings


def _map_target(rules: CompiledRules, kind: str, source: str, target: str) -> str:
    row = rules.maps.get(kind, _NOTHING).get(norm(source))
    return row.get(target, "") if row else ""


# --- revenue lines ------------------------------------------------------------------------------


def _revenue_line(document: _Document, line: InvoiceLine) -> PlanLine | None:
    part = document.parts.get((line.service_line, line.item_type)) or _line_part(document, line)
    row = part.row
    choice = _route(document, part.line_kind, part.service_line) or _revenue_map(
        document, line, row.targets if row else None
    )
    if choice is None:
        return None
    account, reason = choice
    if account not in document.usable_accounts:
        if _check_account(account, "revenue account", document.catalog, document.problems) is None:
            return None
        document.usable_accounts.add(account)
    codings = _line_codings(document, line, part)
    # Positional: keyword arguments make this, the hottest constructor, 40 % slower.
    return PlanLine(
        account, line.amount, line.description, reason, "", line.source_id, line.item_type, codings
    )


class _LinePart(NamedTuple):
    """Everything about a line that depends only on its own service line and item type (as
    spelled), the rules and the catalog: worked out once, then reused by every document.

    A line's codings are its own (`codings`: the service-line map's, then the dimensions fed
    from the line, in setting order) followed by the document's dimensions. `problems` are the
    own codings' problems; `dimensions` holds, per dimension setting in order, the coding and
    problems of a dimension fed from the line, or None for one fed from the document, so that
    the first line of a document reports problems in setting order.
    """

    service_line: str  # normalised
    line_kind: str  # the item type, normalised
    row: ServiceLineRow | None
    codings: dict[str, Coding]
    problems: tuple[Problem, ...]
    dimensions: tuple[tuple[Coding | None, tuple[Problem, ...]] | None, ...]


# Distinct (service line, item type) spellings remembered per catalog before starting afresh:
# real sets hold a few thousand; the bound keeps memory flat whatever the source sends.
_MEMO_LIMIT = 50_000


class _Memo:
    """What resolution has learnt against one catalog, reused by every later document: results
    that depend only on a few source values as spelled (a line's service line and item type, a
    document's state and office, a tax rate), never on amounts or document numbers."""

    __slots__ = ("catalog", "parts", "usable_accounts", "headers", "taxes", "dimensions")

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog  # held, so that its identity cannot be reused by another
        self.parts: dict[tuple[str, str], _LinePart] = {}
        self.usable_accounts: set[str] = set()
        self.headers: dict[tuple[str, str], tuple[Mapping[str, Coding], tuple[Problem, ...]]] = {}
        self.taxes: dict[tuple[Decimal, str], _TaxCoding] = {}
        self.dimensions: dict[tuple[int, str], tuple[Coding | None, tuple[Problem, ...]]] = {}

    def full(self) -> bool:
        return len(self.parts) + len(self.headers) + len(self.dimensions) > _MEMO_LIMIT


def _memo_for(rules: CompiledRules, catalog: Catalog) -> _Memo:
    """This catalog's memo: a new catalog (or a full memo) starts afresh."""
    memo: _Memo | None = rules.memo.get("catalog")
    if memo is None or memo.catalog is not catalog or memo.full():
        memo = rules.memo["catalog"] = _Memo(catalog)
    return memo


def _line_part(document: _Document, line: InvoiceLine) -> _LinePart:
    rules, catalog = document.rules, document.catalog
    service_line = norm(line.service_line)
    row = rules.service_lines.get(service_line)
    codings: list[tuple[str, Coding]] = []
    problems: list[Problem] = []
    for target, kind, label, mapped in row.codings if row else ():
        _check_value(kind, mapped.value, label, catalog, problems)
        if line.service_line == mapped.spelling:
            codings.append((target, mapped.coding))
        else:
            reason = f"{label} {mapped.value} from the service-line map ({line.service_line})"
            codings.append((target, Coding(mapped.value, reason)))
    dimensions: list[tuple[Coding | None, tuple[Problem, ...]] | None] = []
    for dimension in rules.dimensions:
        if not dimension.per_line:
            dimensions.append(None)
            continue
        found: list[Problem] = []
        coding = _dimension(dimension, dimension.read(document.invoice, line), catalog, found)
        dimensions.append((coding, tuple(found)))
    own = dict(codings)
    for dimension, result in zip(rules.dimensions, dimensions, strict=True):
        if result is not None:
            problems.extend(result[1])
            if result[0] is not None:
                own[dimension.coding_key] = result[0]
    part = _LinePart(
        service_line, norm(line.item_type), row, own, tuple(problems), tuple(dimensions)
    )
    document.parts[(line.service_line, line.item_type)] = part
    return part


# The maps that can give a line its revenue account after routing, in order of precedence.
_REVENUE_MAPS = (
    ("COST_CENTER", "gl_account", "cost-center"),
    ("JOB_TYPE", "gl_account", "job-type"),
    ("SERVICE_LINE", "revenue_account", "service-line"),
    ("ITEM_TYPE", "gl_account", "item-type"),
)


def _revenue_map(
    document: _Document, line: InvoiceLine, row: dict[str, str] | None
) -> tuple[str, str] | None:
    """When no routing rule matches; `row` is the line's service-line map row, if any."""
    rules, service_line = document.rules, line.service_line
    cost_center = row.get("cost_center", "") if row else ""
    sources = (cost_center, document.invoice.job.job_type, service_line, line.item_type)
    for (kind, target, name), source in zip(_REVENUE_MAPS, sources, strict=True):
        account = _map_target(rules, kind, source, target) if source else ""
        if account:  # the reason is built only for the account chosen
            return account, f"revenue account {account} from the {name} map ({source})"
    default = rules.ruleset.defaults.revenue_account
    if default:
        return default, (
            f"revenue account {default} from the connection default (no map for {service_line})"
        )
    document.problems.append(
        Problem(
            "UNMAPPED_SERVICE_LINE",
            f"No revenue account for service line {service_line!r}: add it to the service-line "
            "map or set a default revenue account.",
            service_line,
        )
    )
    return None


Probes = tuple[tuple[tuple[int, Lookup], ...], ...]


def _routing_probes(rules: CompiledRules, invoice: Invoice) -> Probes:
    """Per level with any, the index entries this document's lines can match, as (line shape,
    lookup): one per group, or per customer tag for groups on tags; most specific level first.

    What the office, job type and state select is remembered across documents (a few thousand
    combinations at most); only the customer's tags are looked at for each document.
    """
    # A credit issued in ServiceTrade (negative total) is routed as a credit memo.
    kind = "credit_memo" if invoice.total < ZERO else "invoice"
    key = (invoice.office.name, invoice.job.job_type, invoice.location.address.state, kind)
    memo = rules.memo.setdefault("probes", {})
    untagged = memo.get(key)
    if untagged is None:
        if len(memo) > _MEMO_LIMIT:
            memo.clear()
        context = {
            "document_kind": kind,
            "office": norm(key[0]),
            "job_type": norm(key[1]),
            "state": norm(key[2]),
        }
        untagged = memo[key] = (_level_probes(rules, (context,), tagged=False), context)
    by_level, context = untagged
    if not (rules.routes_on_tags and invoice.customer_tags):
        return tuple(probes for probes in by_level if probes)
    # A line can match a group on customer tags through any of the customer's tags; what one
    # tag selects depends on the tag and the few document attributes those groups also test.
    tag_memo = rules.memo.setdefault("tag_probes", {})
    if len(tag_memo) > _MEMO_LIMIT:
        tag_memo.clear()
    scope = tuple(context[attribute] for attribute in rules.tag_context)
    merged = [list(probes) for probes in by_level]
    for tag in invoice.customer_tags:
        tagged = tag_memo.get((scope, tag))
        if tagged is None:
            tagged_context = {**context, "customer_tag": norm(tag)}
            tagged = tag_memo[(scope, tag)] = _level_probes(rules, (tagged_context,), tagged=True)
        for probes, more in zip(merged, tagged, strict=True):
            probes.extend(more)
    return tuple(tuple(probes) for probes in merged if probes)


def _level_probes(
    rules: CompiledRules, contexts: tuple[dict[str, str], ...], *, tagged: bool
) -> Probes:
    """For every level (empty ones too), the probes of the groups that do (or do not) test
    customer tags, for each of the contexts."""
    levels = []
    for level in rules.routing_levels:
        probes = []
        for document_key, lookup, line_shape, on_tags in level.probes:
            if on_tags is not tagged:
                continue
            for values in contexts:
                by_line = lookup(document_key(values))
                if by_line:
                    probes.append((line_shape, by_line.get))
        levels.append(tuple(probes))
    return tuple(levels)


def _route(document: _Document, line_kind: str, service_line: str) -> tuple[str, str] | None:
    """The most specific matching routing rule; priority decides among equally specific ones."""
    keys = ((), line_kind, service_line, (line_kind, service_line))  # by line shape
    for probes in document.routing:
        found = None
        for shape, lookup in probes:
            routes = lookup(keys[shape])
            if routes:
                if found is not None:  # several entries match: rank them all
                    matches = [
                        more.routes for shape, lookup in probes if (more := lookup(keys[shape]))
                    ]
                    return _best_route(matches, document.problems)
                found = routes
        if found is not None:
            return found.alone or _best_route((found.routes,), document.problems)
    return None


def _best_route(
    found: Sequence[tuple[Route, ...]], problems: list[Problem]
) -> tuple[str, str] | None:
    """`found` holds the matching index entries, each already best first."""
    if len(found) == 1:
        routes: Sequence[Route] = found[0]
    else:
        routes = sorted(chain.from_iterable(found), key=lambda route: _rank(route.rule))
    best = routes[0].rule
    for route in routes[1:]:
        if route.rule.priority != best.priority:
            break  # sorted by priority: no later rule ties
        if route.rule.id != best.id:
            problems.append(
                Problem(
                    "AMBIGUOUS_ROUTING",
                    f"GL routing rules {best.id} and {route.rule.id} both match with the same "
                    "specificity and priority: give one a higher priority.",
                )
            )
            return None
    return best.account, routes[0].reason


def _line_codings(document: _Document, line: InvoiceLine, part: _LinePart) -> dict[str, Coding]:
    shared = document.shared
    if shared is None:
        shared = document.shared = _first_line_codings(document, line, part)
    elif part.problems:
        document.problems.extend(part.problems)
    return {**part.codings, **shared} if shared else dict(part.codings)


def _first_line_codings(
    document: _Document, line: InvoiceLine, part: _LinePart
) -> dict[str, Coding]:
    """The document's own dimensions, found and checked once, on its first line; problems are
    reported in setting order, the line's own interleaved with the document's."""
    rules, problems = document.rules, document.problems
    row_problems = len(part.problems) - sum(len(own[1]) for own in part.dimensions if own)
    problems.extend(part.problems[:row_problems])
    shared: dict[str, Coding] = {}
    for index, (dimension, own) in enumerate(zip(rules.dimensions, part.dimensions, strict=True)):
        if own is not None:
            problems.extend(own[1])
            continue
        coding = _document_dimension(document, index, dimension, line)
        if coding is not None:
            shared[dimension.coding_key] = coding
    return shared


def _document_dimension(
    document: _Document, index: int, dimension: CompiledDimension, line: InvoiceLine
) -> Coding | None:
    source_value = dimension.read(document.invoice, line)
    if not dimension.values:  # pass-through or default only: nothing worth remembering
        return _dimension(dimension, source_value, document.catalog, document.problems)
    known = document.memo.dimensions.get((index, source_value))
    if known is None:
        found: list[Problem] = []
        coding = _dimension(dimension, source_value, document.catalog, found)
        known = document.memo.dimensions[(index, source_value)] = (coding, tuple(found))
    if known[1]:
        document.problems.extend(known[1])
    return known[0]


def _dimension(
    dimension: CompiledDimension, source_value: str, catalog: Catalog, problems: list[Problem]
) -> Coding | None:
    setting, label = dimension.setting, dimension.label
    # An empty map (a pass-through dimension) needs no normalising: job numbers and customer
    # names are unbounded and would only churn norm()'s cache.
    mapped = dimension.values.get(norm(source_value)) if dimension.values else None
    if mapped is not None and mapped.value:
        code, spelling, coding, key = mapped
        if source_value != spelling:
            reason = f"{setting.dimension} {code} from the {label} map ({source_value})"
            coding = Coding(code, reason)
    elif setting.pass_through and source_value:
        # The value is the source's own (e.g. the job number as PROJECT); the ERP may not have it
        # yet, because it is created as a prerequisite, so it is not checked against the catalog.
        return Coding(source_value, f"{setting.dimension} {source_value} is the {label} itself")
    elif setting.default:
        code, key = setting.default, f"{setting.dimension}/{setting.default}"
        reason = (
            f"{setting.dimension} {code} from the dimension default (no map for {source_value})"
        )
        coding = Coding(code, reason)
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
    if setting.dimension not in catalog.lists.get(CatalogKind.DIMENSION, _NOTHING):
        problems.append(
            Problem(
                "UNKNOWN_DIMENSION", f"Dimension {setting.dimension} does not exist in the ERP."
            )
        )
        return None
    _check_value(
        CatalogKind.DIMENSION_VALUE,
        key,
        dimension.value_role,
        catalog,
        problems,
        shown=code,
    )
    return coding


# --- tax ----------------------------------------------------------------------------------------


class _TaxCoding(NamedTuple):
    """How a tax rate in a state is coded: everything about the tax line but its amount."""

    account: str
    description: str
    reason: str
    tax_code: str
    problems: tuple[Problem, ...]


def _tax_line(document: _Document) -> PlanLine | None:
    invoice = document.invoice
    key = (invoice.tax_rate, invoice.location.address.state)
    known = document.memo.taxes.get(key)
    if known is None:
        found: list[Problem] = []
        known = document.memo.taxes[key] = _tax_coded(document, found)._replace(
            problems=tuple(found)
        )
    if known.problems:
        document.problems.extend(known.problems)
        return None
    return PlanLine(
        known.account,
        invoice.tax_amount,
        known.description,
        known.reason,
        known.tax_code,
        "",
        "tax",
        {},
    )


def _tax_coded(document: _Document, problems: list[Problem]) -> _TaxCoding:
    invoice, rules, catalog = document.invoice, document.rules, document.catalog
    rate = norm(str(invoice.tax_rate))
    state = invoice.location.address.state
    defaults = rules.ruleset.defaults
    failed = _TaxCoding("", "", "", "", ())
    if defaults.tax_code_source == "STATE":
        code = _map_target(rules, "LOCATION_STATE", state, "tax_code")
        if not code:
            problems.append(
                Problem(
                    "UNMAPPED_STATE_TAX",
                    f"No tax code for state {state!r}: add it to the location-state map.",
                    state,
                )
            )
            return failed
        code_reason = f"tax code {code} from the location-state map ({state})"
    else:
        code = _map_target(rules, "TAX_RATE", rate, "tax_code")
        if not code:
            problems.append(
                Problem(
                    "UNMAPPED_TAX_RATE",
                    f"No tax code for tax rate {rate}%: add it to the tax-rate map.",
                    rate,
                )
            )
            return failed
        code_reason = f"tax code {code} from the tax-rate map ({rate}%)"
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
        return failed
    _check_account(account, "tax liability account", catalog, problems)
    return _TaxCoding(account, f"Sales tax {rate}%", f"{code_reason}; {account_reason}", code, ())


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
    value = catalog.lists.get(kind, _NOTHING).get(code)  # Catalog.get, without the call
    if value is not None and value.present and value.active and value.accepts_postings:
        return True  # the common case: no message text to build
    shown = shown or code
    subject = f"{article}{role} {shown}" if article else f"{role[0].upper()}{role[1:]} {shown}"
    if value is None:
        problems.append(Problem(f"UNKNOWN_{kind}", f"{subject} does not exist in the ERP.", code))
    elif not value.present:
        problems.append(Problem(f"GONE_{kind}", f"{subject} is no longer in the ERP.", code))
    elif not value.active:
        problems.append(Problem(f"INACTIVE_{kind}", f"{subject} is inactive.", code))
    else:
        problems.append(Problem(f"NO_POSTING_{kind}", f"{subject} does not accept postings.", code))
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
