"""Validation of a rule set against the ERP catalog and what the source has been sending.

Pure: (rule set, catalog, source values) → issues. Errors block publishing; warnings are shown
with the number of documents they affect. Run at publish, on every draft view and after every
catalog refresh (against the version in force).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations, islice

from mappings.resolve import Catalog
from mappings.ruleset import MAP_KINDS, CatalogKind, RoutingRule, RuleSet, norm


@dataclass(frozen=True)
class Issue:
    severity: str  # "ERROR" or "WARNING"
    code: str
    subject: str  # where in the rule set, e.g. maps.SERVICE_LINE.HVAC.revenue_account
    message: str
    documents: int = 0


@dataclass(frozen=True)
class SeenValue:
    attribute: str
    value: str
    documents: int


ERROR = "ERROR"
WARNING = "WARNING"


def validate_ruleset(
    ruleset: RuleSet, catalog: Catalog, seen: list[SeenValue] | tuple[SeenValue, ...] = ()
) -> list[Issue]:
    issues: list[Issue] = []
    _check_defaults(ruleset, catalog, issues)
    _check_maps(ruleset, catalog, issues)
    _check_routing_targets(ruleset, catalog, issues)
    issues.extend(routing_ties(ruleset.routing))
    _check_dimensions(ruleset, catalog, issues)
    _check_numbering(ruleset, issues)
    _check_coverage(ruleset, seen, issues)
    return issues


def _target(
    kind: str, code: str, subject: str, catalog: Catalog, issues: list[Issue], *, key: str = ""
) -> None:
    value = catalog.get(kind, key or code)
    label = kind.replace("_", " ").lower()
    if value is None:
        issues.append(
            Issue(
                ERROR,
                "UNKNOWN_TARGET",
                subject,
                f"{label.capitalize()} {code} does not exist in the ERP.",
            )
        )
    elif not value.present:
        issues.append(
            Issue(
                ERROR,
                "GONE_TARGET",
                subject,
                f"{label.capitalize()} {code} is no longer in the ERP.",
            )
        )
    elif not value.active:
        issues.append(
            Issue(
                ERROR,
                "INACTIVE_TARGET",
                subject,
                f"{label.capitalize()} {code} is inactive in the ERP.",
            )
        )
    elif not value.accepts_postings:
        issues.append(
            Issue(
                ERROR,
                "NO_POSTING_TARGET",
                subject,
                f"{label.capitalize()} {code} does not accept postings.",
            )
        )


def _check_defaults(ruleset: RuleSet, catalog: Catalog, issues: list[Issue]) -> None:
    defaults = ruleset.defaults
    if not defaults.receivable_account:
        issues.append(
            Issue(
                ERROR,
                "NO_RECEIVABLE_ACCOUNT",
                "defaults.receivable_account",
                "Set the receivable account every invoice debits.",
            )
        )
    for name in ("receivable_account", "revenue_account", "tax_account"):
        code = getattr(defaults, name)
        if code:
            _target(CatalogKind.ACCOUNT, code, f"defaults.{name}", catalog, issues)


def _check_maps(ruleset: RuleSet, catalog: Catalog, issues: list[Issue]) -> None:
    for kind, rows in sorted(ruleset.maps.items()):
        targets = MAP_KINDS[kind].targets
        for source, values in sorted(rows.items()):
            for name, code in sorted(values.items()):
                _target(targets[name], code, f"maps.{kind}.{source}.{name}", catalog, issues)


def _check_routing_targets(ruleset: RuleSet, catalog: Catalog, issues: list[Issue]) -> None:
    for rule in ruleset.routing:
        _target(CatalogKind.ACCOUNT, rule.account, f"routing.{rule.id}", catalog, issues)


def routing_ties(rules: tuple[RoutingRule, ...] | list[RoutingRule]) -> list[Issue]:
    """Pairs of rules that one line could match with equal specificity and priority.

    Two rules tie when they test the same number of attributes, agree on every attribute both
    test, and have the same priority. Rules are grouped by the attributes they test and compared
    group against group on their shared attributes, so 10,000 rules take milliseconds, not the
    50 million pair checks of comparing every rule with every other.
    """
    issues: list[Issue] = []
    for family in _families(rules):
        issues.extend(_family_ties(family))
    return issues


COST_DOCUMENT_KINDS = ("job_cost", "purchase_invoice")


def _families(rules: tuple[RoutingRule, ...] | list[RoutingRule]) -> list[list[RoutingRule]]:
    """Rules that can ever compete: a cost kind's rules (read only by `resolve_cost`, which
    needs the kind named) among themselves, every other rule with the invoice rules."""
    families: dict[str, list[RoutingRule]] = defaultdict(list)
    for rule in rules:
        kind = norm(rule.conditions.get("document_kind", ""))
        families[kind if kind in COST_DOCUMENT_KINDS else "sales"].append(rule)
    return [families[name] for name in sorted(families)]


def _family_ties(rules: list[RoutingRule]) -> list[Issue]:
    groups: dict[tuple[str, ...], list[RoutingRule]] = defaultdict(list)
    for rule in rules:
        groups[tuple(sorted(rule.conditions))].append(rule)
    issues: list[Issue] = []
    signatures = sorted(groups)
    for signature in signatures:
        issues.extend(_ties_between(groups[signature], groups[signature], signature, same=True))
    for left, right in combinations(signatures, 2):
        if len(left) != len(right):
            continue
        shared = tuple(attribute for attribute in left if attribute in right)
        issues.extend(_ties_between(groups[left], groups[right], shared, same=False))
    return issues


MAX_TIES_REPORTED = 20


def _ties_between(
    left: list[RoutingRule], right: list[RoutingRule], shared: tuple[str, ...], *, same: bool
) -> list[Issue]:
    index: dict[tuple[object, ...], list[RoutingRule]] = defaultdict(list)
    for rule in left:
        index[_tie_key(rule, shared)].append(rule)
    ids = {key: sorted(rule.id for rule in rules) for key, rules in index.items()}
    issues: list[Issue] = []
    total = 0
    for rule in right:
        key = _tie_key(rule, shared)
        # Ties are counted from sorted ids, and only the pairs reported are listed: 6,000 rules
        # that all tie make 18 million pairs, which listing one by one takes seconds.
        count = _tie_count(ids.get(key, []), rule.id, same=same)
        total += count
        room = MAX_TIES_REPORTED - len(issues)
        if not count or room <= 0:
            continue
        tied = (
            other
            for other in index[key]
            if other.id != rule.id and (not same or other.id > rule.id)  # same: each pair once
        )
        for other in islice(tied, room):
            first, second = sorted((rule.id, other.id))
            issues.append(
                Issue(
                    ERROR,
                    "ROUTING_TIE",
                    f"routing.{first}",
                    f"GL routing rules {first} and {second} can match the same line with the "
                    "same specificity and priority: give one a higher priority or make one more "
                    "specific.",
                )
            )
    if total > len(issues):
        issues.append(
            Issue(
                ERROR,
                "ROUTING_TIE",
                "routing",
                f"…and {total - len(issues)} more tied pairs like these.",
            )
        )
    return issues


def _tie_count(ids: list[int], rule_id: int, *, same: bool) -> int:
    """Rules of `ids` (sorted) tied with rule `rule_id`: other ids, or only higher ones."""
    if same:
        return len(ids) - bisect_right(ids, rule_id)
    return len(ids) - (bisect_right(ids, rule_id) - bisect_left(ids, rule_id))


def _tie_key(rule: RoutingRule, shared: tuple[str, ...]) -> tuple[object, ...]:
    # A line can carry several customer tags, so rules on different tags can still meet.
    return (
        rule.priority,
        *(norm(rule.conditions[a]) for a in shared if a != "customer_tag"),
    )


def _check_dimensions(ruleset: RuleSet, catalog: Catalog, issues: list[Issue]) -> None:
    for setting in ruleset.dimensions:
        subject = f"dimensions.{setting.dimension}"
        if catalog.get(CatalogKind.DIMENSION, setting.dimension) is None:
            issues.append(
                Issue(
                    ERROR,
                    "UNKNOWN_DIMENSION",
                    subject,
                    f"Dimension {setting.dimension} does not exist in the ERP.",
                )
            )
            continue
        codes = [(f"{subject}.values.{s}", c) for s, c in sorted(setting.values.items())]
        if setting.default:
            codes.append((f"{subject}.default", setting.default))
        for where, code in codes:
            _target(
                CatalogKind.DIMENSION_VALUE,
                code,
                where,
                catalog,
                issues,
                key=f"{setting.dimension}/{code}",
            )


def _check_numbering(ruleset: RuleSet, issues: list[Issue]) -> None:
    for first, second in combinations(ruleset.numbering, 2):
        if (
            first.prefix == second.prefix
            and first.start <= second.end
            and second.start <= first.end
        ):
            issues.append(
                Issue(
                    ERROR,
                    "NUMBERING_OVERLAP",
                    f"numbering.{second.entity}",
                    f"{first.entity} and {second.entity} codes share the prefix "
                    f"{first.prefix!r} and overlapping ranges, so a code could be "
                    "issued twice.",
                )
            )


# Which source attribute each value map codes, and whether a gap there blocks documents.
_COVERAGE = {
    "service_line": "SERVICE_LINE",
    "tax_rate": "TAX_RATE",
    "office": "OFFICE",
    "location_state": "LOCATION_STATE",
    "job_type": "JOB_TYPE",
    "technician": "TECHNICIAN",
    "labor_type": "LABOR_TYPE",
}


def _check_coverage(
    ruleset: RuleSet, seen: list[SeenValue] | tuple[SeenValue, ...], issues: list[Issue]
) -> None:
    """Warn about recent source values that nothing maps and no default catches."""
    mapped = {kind: {norm(source) for source in rows} for kind, rows in ruleset.maps.items()}
    routed = {
        norm(rule.conditions["service_line"])
        for rule in ruleset.routing
        if "service_line" in rule.conditions
    }
    for value in seen:
        kind = _COVERAGE.get(value.attribute)
        if kind is None or norm(value.value) in mapped.get(kind, set()):
            continue
        if not _needs_mapping(ruleset, value, kind, mapped, routed):
            continue
        issues.append(
            Issue(
                WARNING,
                "UNMAPPED_SOURCE_VALUE",
                f"maps.{kind}",
                f"{value.attribute.replace('_', ' ').capitalize()} {value.value!r} has no mapping "
                f"and no default catches it: {value.documents} recent document(s) would block.",
                documents=value.documents,
            )
        )


def _needs_mapping(
    ruleset: RuleSet, value: SeenValue, kind: str, mapped: dict[str, set[str]], routed: set[str]
) -> bool:
    if kind == "SERVICE_LINE":
        return not ruleset.defaults.revenue_account and norm(value.value) not in routed
    if kind == "TAX_RATE":
        return ruleset.defaults.tax_code_source == "RATE" and norm(value.value) != "0"
    if kind == "LOCATION_STATE":
        return ruleset.defaults.tax_code_source == "STATE"
    # Other maps are optional; a gap matters only once finance has started filling the map.
    return bool(mapped.get(kind))
