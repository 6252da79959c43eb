"""Validation of a rule set against the ERP catalog and the values the source has been sending."""

from __future__ import annotations

import itertools
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.resolve import Catalog, CatalogValue
from mappings.ruleset import RoutingRule, RuleSet, norm, parse_ruleset
from mappings.validation import ERROR, WARNING, Issue, SeenValue, routing_ties, validate_ruleset

CATALOG = Catalog(
    lists={
        "ACCOUNT": {"1200": CatalogValue("1200"), "4010": CatalogValue("4010"),
                    "4020": CatalogValue("4020"), "2300": CatalogValue("2300"),
                    "4777": CatalogValue("4777", present=False),
                    "4888": CatalogValue("4888", active=False),
                    "4999": CatalogValue("4999", accepts_postings=False)},
        "COST_CODE": {"100": CatalogValue("100")},
        "TAX_CODE": {"NC": CatalogValue("NC")},
        "DIMENSION": {"DEPARTMENT": CatalogValue("DEPARTMENT")},
        "DIMENSION_VALUE": {"DEPARTMENT/D10": CatalogValue("D10"),
                            "DEPARTMENT/D77": CatalogValue("D77", present=False),
                            "DEPARTMENT/D88": CatalogValue("D88", active=False)},
    }
)  # fmt: skip


def ruleset(**sections: Any) -> RuleSet:
    content: dict[str, Any] = {"defaults": {"receivable_account": "1200"}}
    content.update(sections)
    return parse_ruleset(content)


def issues(rules: RuleSet, seen: list[SeenValue] | None = None) -> list[Issue]:
    return validate_ruleset(rules, CATALOG, seen or [])


def codes(found: list[Issue]) -> list[str]:
    return [issue.code for issue in found]


def rule(rule_id: int, priority: int = 0, **conditions: str) -> dict[str, Any]:
    return {"id": rule_id, "conditions": conditions, "account": "4010", "priority": priority}


def tie_message(first: int, second: int) -> str:
    return (
        f"GL routing rules {first} and {second} can match the same line with the same "
        "specificity and priority: give one a higher priority or make one more specific."
    )


# --- targets -------------------------------------------------------------------------------------


def test_a_rule_set_whose_targets_all_exist_and_accept_postings_has_no_issues():
    rules = ruleset(
        maps={"SERVICE_LINE": {"HVAC": {"revenue_account": "4010", "cost_code": "100"}},
              "TAX_RATE": {"7.25": {"tax_code": "NC", "tax_account": "2300"}}},
        routing=[rule(1, service_line="HVAC", line_kind="labor")],
        dimensions=[{"dimension": "DEPARTMENT", "source": "office", "values": {"Raleigh": "D10"},
                     "default": "D10"}],
    )  # fmt: skip
    assert issues(rules) == []


def test_a_target_the_erp_does_not_list_is_an_unknown_target():
    rules = ruleset(maps={"SERVICE_LINE": {"HVAC": {"revenue_account": "4011"}}})
    assert issues(rules) == [
        Issue(ERROR, "UNKNOWN_TARGET", "maps.SERVICE_LINE.HVAC.revenue_account",
              "Account 4011 does not exist in the ERP.")
    ]  # fmt: skip


def test_a_target_the_erp_stopped_listing_is_gone():
    rules = ruleset(defaults={"receivable_account": "1200", "revenue_account": "4777"})
    assert issues(rules) == [
        Issue(ERROR, "GONE_TARGET", "defaults.revenue_account",
              "Account 4777 is no longer in the ERP.")
    ]  # fmt: skip


def test_an_inactive_target_is_refused():
    rules = ruleset(defaults={"receivable_account": "1200", "tax_account": "4888"})
    assert issues(rules) == [
        Issue(ERROR, "INACTIVE_TARGET", "defaults.tax_account",
              "Account 4888 is inactive in the ERP.")
    ]  # fmt: skip


def test_a_target_account_that_takes_no_postings_is_refused():
    rules = ruleset(routing=[{"id": 9, "account": "4999"}])
    assert issues(rules) == [
        Issue(ERROR, "NO_POSTING_TARGET", "routing.9", "Account 4999 does not accept postings.")
    ]


def test_map_targets_are_checked_in_the_catalog_list_of_their_kind():
    rules = ruleset(maps={"SERVICE_LINE": {"HVAC": {"cost_code": "4010"}}})
    assert issues(rules) == [
        Issue(ERROR, "UNKNOWN_TARGET", "maps.SERVICE_LINE.HVAC.cost_code",
              "Cost code 4010 does not exist in the ERP.")
    ]  # fmt: skip


def test_a_rule_set_without_a_receivable_account_cannot_be_published():
    assert issues(parse_ruleset({})) == [
        Issue(ERROR, "NO_RECEIVABLE_ACCOUNT", "defaults.receivable_account",
              "Set the receivable account every invoice debits.")
    ]  # fmt: skip


# --- routing ties --------------------------------------------------------------------------------


def test_two_rules_on_the_same_values_and_priority_tie():
    rules = ruleset(routing=[rule(2, service_line="HVAC"), rule(1, service_line="hvac ")])
    assert issues(rules) == [Issue(ERROR, "ROUTING_TIE", "routing.1", tie_message(1, 2))]


def test_a_higher_priority_or_a_different_value_breaks_a_tie():
    rules = ruleset(
        routing=[rule(1, service_line="HVAC"), rule(2, 1, service_line="HVAC"),
                 rule(3, service_line="Plumbing")]
    )  # fmt: skip
    assert issues(rules) == []


def test_rules_on_different_attributes_tie_when_one_line_can_meet_both():
    rules = ruleset(routing=[rule(1, service_line="HVAC"), rule(2, office="Raleigh")])
    assert issues(rules) == [Issue(ERROR, "ROUTING_TIE", "routing.1", tie_message(1, 2))]


def test_rules_of_different_signatures_that_disagree_on_a_shared_attribute_do_not_tie():
    rules = ruleset(
        routing=[rule(1, service_line="HVAC", office="Raleigh"),
                 rule(2, service_line="Plumbing", line_kind="labor")]
    )  # fmt: skip
    assert issues(rules) == []


def test_rules_of_different_specificity_never_tie():
    rules = ruleset(routing=[rule(1, service_line="HVAC"), rule(2, service_line="HVAC",
                                                                line_kind="labor")])  # fmt: skip
    assert issues(rules) == []


def test_rules_on_different_customer_tags_tie_because_a_customer_can_carry_both():
    rules = ruleset(routing=[rule(1, customer_tag="VIP"), rule(2, customer_tag="Government")])
    assert issues(rules) == [Issue(ERROR, "ROUTING_TIE", "routing.1", tie_message(1, 2))]


def test_a_job_cost_rule_and_an_invoice_rule_never_compete_so_never_tie():
    rules = ruleset(
        routing=[rule(1, service_line="HVAC", office="Raleigh"),
                 rule(2, document_kind="job_cost", service_line="HVAC")]
    )  # fmt: skip
    assert issues(rules) == []


def test_two_job_cost_rules_one_cost_can_meet_tie_like_any_others():
    rules = ruleset(
        routing=[rule(1, document_kind="job_cost", service_line="HVAC"),
                 rule(2, document_kind="job_cost", office="Raleigh"),
                 rule(3, document_kind="purchase_invoice", service_line="HVAC")]
    )  # fmt: skip
    assert issues(rules) == [Issue(ERROR, "ROUTING_TIE", "routing.1", tie_message(1, 2))]


def test_customer_tag_rules_with_distinct_priorities_do_not_tie():
    rules = ruleset(routing=[rule(1, customer_tag="VIP"), rule(2, 1, customer_tag="Government")])
    assert issues(rules) == []


def test_many_ties_are_listed_up_to_twenty_then_summarised():
    rules = ruleset(routing=[rule(rule_id, office="Raleigh") for rule_id in range(1, 9)])
    found = issues(rules)
    assert codes(found) == ["ROUTING_TIE"] * 21
    assert found[0] == Issue(ERROR, "ROUTING_TIE", "routing.1", tie_message(1, 2))
    assert found[-1] == Issue(
        ERROR, "ROUTING_TIE", "routing", "…and 8 more tied pairs like these."
    )  # 8 rules make 28 pairs


def test_routing_ties_accepts_a_plain_list_of_rules():
    rules = [
        RoutingRule(1, {"state": "NC"}, "4010"),
        RoutingRule(2, {"office": "Raleigh"}, "4020"),
    ]
    assert routing_ties(rules) == [Issue(ERROR, "ROUTING_TIE", "routing.1", tie_message(1, 2))]


# --- dimensions ----------------------------------------------------------------------------------


def test_a_dimension_the_erp_does_not_have_is_reported_once_without_its_values():
    rules = ruleset(
        dimensions=[{"dimension": "REGION", "source": "office", "values": {"Raleigh": "R1"},
                     "default": "R0"}]
    )  # fmt: skip
    assert issues(rules) == [
        Issue(ERROR, "UNKNOWN_DIMENSION", "dimensions.REGION",
              "Dimension REGION does not exist in the ERP.")
    ]  # fmt: skip


def test_dimension_values_and_the_default_are_checked_under_their_dimension():
    rules = ruleset(
        dimensions=[{"dimension": "DEPARTMENT", "source": "office",
                     "values": {"Raleigh": "D10", "Durham": "D77", "Cary": "D88", "Apex": "D99"},
                     "default": "D66"}]
    )  # fmt: skip
    assert issues(rules) == [
        Issue(ERROR, "UNKNOWN_TARGET", "dimensions.DEPARTMENT.values.Apex",
              "Dimension value D99 does not exist in the ERP."),
        Issue(ERROR, "INACTIVE_TARGET", "dimensions.DEPARTMENT.values.Cary",
              "Dimension value D88 is inactive in the ERP."),
        Issue(ERROR, "GONE_TARGET", "dimensions.DEPARTMENT.values.Durham",
              "Dimension value D77 is no longer in the ERP."),
        Issue(ERROR, "UNKNOWN_TARGET", "dimensions.DEPARTMENT.default",
              "Dimension value D66 does not exist in the ERP."),
    ]  # fmt: skip


# --- numbering -----------------------------------------------------------------------------------


def test_numbering_ranges_that_share_a_prefix_and_overlap_could_issue_a_code_twice():
    rules = ruleset(
        numbering=[{"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 1999},
                   {"entity": "SITE", "prefix": "C", "start": 1999, "end": 2999}]
    )  # fmt: skip
    assert issues(rules) == [
        Issue(ERROR, "NUMBERING_OVERLAP", "numbering.SITE",
              "CUSTOMER and SITE codes share the prefix 'C' and overlapping ranges, so a code "
              "could be issued twice.")
    ]  # fmt: skip


def test_numbering_ranges_with_different_prefixes_or_apart_do_not_overlap():
    rules = ruleset(
        numbering=[{"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 1999},
                   {"entity": "SITE", "prefix": "S", "start": 1000, "end": 1999},
                   {"entity": "JOB", "prefix": "C", "start": 2000, "end": 2999}]
    )  # fmt: skip
    assert issues(rules) == []


# --- values the source sends that nothing maps -------------------------------------------------


def unmapped(attribute: str, value: str, documents: int, kind: str) -> Issue:
    return Issue(
        WARNING,
        "UNMAPPED_SOURCE_VALUE",
        f"maps.{kind}",
        f"{attribute.replace('_', ' ').capitalize()} {value!r} has no mapping and no default "
        f"catches it: {documents} recent document(s) would block.",
        documents=documents,
    )


def test_an_unmapped_service_line_warns_with_the_documents_it_would_block():
    rules = ruleset(maps={"SERVICE_LINE": {"HVAC": {"revenue_account": "4010"}}})
    seen = [SeenValue("service_line", " hvac", 40), SeenValue("service_line", "Elevators", 7)]
    assert issues(rules, seen) == [unmapped("service_line", "Elevators", 7, "SERVICE_LINE")]


def test_a_default_revenue_account_or_a_routing_rule_catches_an_unmapped_service_line():
    seen = [SeenValue("service_line", "Elevators", 7)]
    with_default = ruleset(defaults={"receivable_account": "1200", "revenue_account": "4020"})
    routed = ruleset(routing=[rule(1, service_line="ELEVATORS", line_kind="labor")])
    assert issues(with_default, seen) == []
    assert issues(routed, seen) == []


def test_an_unmapped_tax_rate_warns_unless_it_is_zero_or_tax_codes_come_from_the_state():
    seen = [SeenValue("tax_rate", "7.50", 3), SeenValue("tax_rate", "0.00", 90)]
    assert issues(ruleset(), seen) == [unmapped("tax_rate", "7.50", 3, "TAX_RATE")]
    by_state = ruleset(defaults={"receivable_account": "1200", "tax_code_source": "STATE"})
    assert issues(by_state, [SeenValue("tax_rate", "7.50", 3)]) == []


def test_an_unmapped_state_warns_only_when_tax_codes_come_from_the_state():
    seen = [SeenValue("location_state", "SC", 12)]
    by_state = ruleset(defaults={"receivable_account": "1200", "tax_code_source": "STATE"})
    assert issues(by_state, seen) == [unmapped("location_state", "SC", 12, "LOCATION_STATE")]
    assert issues(ruleset(), seen) == []


def test_optional_maps_warn_about_gaps_only_once_finance_has_started_filling_them():
    seen = [SeenValue("office", "Durham", 5), SeenValue("job_type", "install", 2)]
    started = ruleset(maps={"OFFICE": {"Raleigh": {"department": "RAL"}}})
    found = [issue for issue in issues(started, seen) if issue.severity == WARNING]
    assert found == [unmapped("office", "Durham", 5, "OFFICE")]


def test_source_attributes_no_map_codes_are_ignored():
    assert issues(ruleset(), [SeenValue("customer", "Harbor Foods", 9)]) == []


# --- routing_ties against a brute-force check ----------------------------------------------------

# A few values per attribute, some spelled differently but equal once normalised.
VALUES = {
    "document_kind": ["invoice", "credit_memo", "job_cost"],
    "line_kind": ["labor", "part"],
    "service_line": ["HVAC", "hvac", "Plumbing"],
    "office": ["Raleigh", "Durham"],
    "job_type": ["repair"],
    "customer_tag": ["VIP", " vip ", "Gov"],
    "state": ["NC", "SC"],
}


@st.composite
def routing_sets(draw: Any) -> list[RoutingRule]:
    count = draw(st.integers(min_value=0, max_value=9))
    rules = []
    for rule_id in range(1, count + 1):
        attributes = draw(st.sets(st.sampled_from(sorted(VALUES)), max_size=3))
        conditions = {a: draw(st.sampled_from(VALUES[a])) for a in sorted(attributes)}
        priority = draw(st.integers(min_value=0, max_value=1))
        rules.append(RoutingRule(rule_id, conditions, "4010", priority))
    return rules


def every_line() -> list[dict[str, Any]]:
    """Every line the attribute values allow; a line carries any set of customer tags."""
    values = {a: sorted({norm(v) for v in choices}) for a, choices in VALUES.items()}
    tags = values.pop("customer_tag")
    tag_sets = [set(c) for n in range(len(tags) + 1) for c in itertools.combinations(tags, n)]
    lines = []
    for combination in itertools.product(*values.values()):
        for tag_set in tag_sets:
            lines.append({**dict(zip(values, combination, strict=True)), "customer_tag": tag_set})
    return lines


LINES = every_line()


def matches(rule: RoutingRule, line: dict[str, Any]) -> bool:
    if line["document_kind"] == "job_cost" and "document_kind" not in rule.conditions:
        return False  # costs are coded only by rules naming their kind (mappings.resolve_cost)
    return all(
        norm(wanted) in line[a] if a == "customer_tag" else norm(wanted) == line[a]
        for a, wanted in rule.conditions.items()
    )


def brute_force_ties(rules: list[RoutingRule]) -> set[tuple[int, int]]:
    return {
        (first.id, second.id)
        for first, second in itertools.combinations(sorted(rules, key=lambda r: r.id), 2)
        if first.specificity == second.specificity
        and first.priority == second.priority
        and any(matches(first, line) and matches(second, line) for line in LINES)
    }


@settings(max_examples=200, deadline=None)
@given(routing_sets())
def test_routing_ties_reports_a_tie_exactly_when_some_line_meets_two_equal_rules(rules):
    reported = routing_ties(rules)
    expected = brute_force_ties(rules)
    assert bool(reported) == bool(expected)
    assert all(issue.code == "ROUTING_TIE" and issue.severity == ERROR for issue in reported)
    if any(issue.subject == "routing" for issue in reported):
        return  # capped: the listed pairs are a sample
    pairs = [tuple(map(int, re.findall(r"\d+", issue.message)[:2])) for issue in reported]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == expected
