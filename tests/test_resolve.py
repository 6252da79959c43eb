"""Resolution is pure: the same document, rules and catalog always give the same plan."""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.resolve import Catalog, CatalogValue, InvoicePlan, compile_rules, resolve_invoice
from mappings.ruleset import parse_ruleset
from syncengine.sources.servicetrade import loads, parse_invoice, split_invoices
from tests.conftest import envelope

ACCOUNTS = ["1200", "2300", "4010", "4011", "4020", "4090", "4500", "4600", "4700"]
CATALOG = Catalog(
    lists={
        "ACCOUNT": {n: CatalogValue(n) for n in ACCOUNTS}
        | {"4999": CatalogValue("4999", accepts_postings=False),
           "4888": CatalogValue("4888", active=False),
           "4777": CatalogValue("4777", present=False)},
        "TAX_CODE": {"NC": CatalogValue("NC"), "NC-STATE": CatalogValue("NC-STATE")},
        "DIMENSION": {"DEPARTMENT": CatalogValue("DEPARTMENT")},
        "DIMENSION_VALUE": {"DEPARTMENT/D10": CatalogValue("D10"),
                            "DEPARTMENT/D99": CatalogValue("D99")},
        "COST_CENTER": {"CC1": CatalogValue("CC1")},
        "COST_CODE": {"100": CatalogValue("100")},
        "DEPARTMENT": {"RAL": CatalogValue("RAL")},
    }
)  # fmt: skip


def rules(**changes: Any):
    content: dict[str, Any] = {
        "defaults": {"receivable_account": "1200", "tax_account": "2300"},
        "maps": {"SERVICE_LINE": {"HVAC": {"revenue_account": "4010"}},
                 "TAX_RATE": {"7.25": {"tax_code": "NC"}}},
    }  # fmt: skip
    for key, value in changes.items():
        content[key] = value
    return compile_rules(parse_ruleset(content), version=3)


def invoice(**changes: Any):
    (data,) = split_invoices(loads(envelope(**changes)))
    return parse_invoice(data, currency="USD", time_zone="UTC")


def accounts(plan: InvoicePlan) -> list[str]:
    return [line.account for line in plan.lines]


def test_a_fully_mapped_invoice_resolves_to_a_plan_that_ties_to_its_total():
    plan = resolve_invoice(invoice(), rules(), CATALOG)
    assert isinstance(plan, InvoicePlan)
    assert plan.total == Decimal("414.74") == sum(line.amount for line in plan.lines)
    assert plan.receivable_account == "1200" and plan.rule_version == 3
    assert accounts(plan) == ["4010", "4010", "4010", "2300"]


def test_the_most_specific_routing_rule_wins_whatever_the_rule_order():
    routing = [
        {"id": 1, "conditions": {"service_line": "HVAC"}, "account": "4500"},
        {"id": 2, "conditions": {"service_line": "hvac", "line_kind": "part"}, "account": "4600"},
        {"id": 3, "conditions": {"line_kind": "labor", "state": "NC", "office": "Raleigh"},
         "account": "4700"},
    ]  # fmt: skip
    for order in (routing, list(reversed(routing))):
        plan = resolve_invoice(invoice(), rules(routing=order), CATALOG)
        assert accounts(plan) == ["4700", "4600", "4600", "2300"]
        assert plan.lines[1].reason == (
            "revenue account 4600 from rule 2 (line kind part, service line hvac)"
        )


def test_priority_breaks_a_tie_between_equally_specific_rules():
    routing = [
        {"id": 1, "conditions": {"service_line": "HVAC"}, "account": "4500", "priority": 1},
        {"id": 2, "conditions": {"office": "Raleigh"}, "account": "4600"},
    ]
    assert accounts(resolve_invoice(invoice(), rules(routing=routing), CATALOG))[0] == "4500"


def test_an_unbroken_tie_is_a_problem_not_a_guess():
    routing = [
        {"id": 1, "conditions": {"service_line": "HVAC"}, "account": "4500"},
        {"id": 2, "conditions": {"office": "Raleigh"}, "account": "4600"},
    ]
    problems = resolve_invoice(invoice(), rules(routing=routing), CATALOG)
    assert problems[0].code == "AMBIGUOUS_ROUTING"


def test_customer_tags_route_lines():
    customer = {"id": 501, "name": "Harbor Foods", "tags": ["National", {"name": "Key account"}]}
    routing = [{"id": 4, "conditions": {"customer_tag": "key ACCOUNT"}, "account": "4500"}]
    plan = resolve_invoice(invoice(customer=customer), rules(routing=routing), CATALOG)
    assert accounts(plan)[0] == "4500"


def test_map_precedence_is_cost_center_then_job_type_then_service_line_then_item_type():
    maps = {
        "SERVICE_LINE": {"HVAC": {"revenue_account": "4010", "cost_center": "CC1"}},
        "COST_CENTER": {"CC1": {"gl_account": "4500"}},
        "JOB_TYPE": {"repair": {"gl_account": "4600"}},
        "ITEM_TYPE": {"part": {"gl_account": "4700"}},
        "TAX_RATE": {"7.25": {"tax_code": "NC"}},
    }
    assert accounts(resolve_invoice(invoice(), rules(maps=maps), CATALOG))[0] == "4500"
    del maps["COST_CENTER"]
    assert accounts(resolve_invoice(invoice(), rules(maps=maps), CATALOG))[0] == "4600"
    del maps["JOB_TYPE"]
    assert accounts(resolve_invoice(invoice(), rules(maps=maps), CATALOG))[0] == "4010"
    del maps["SERVICE_LINE"]
    plan = resolve_invoice(invoice(), rules(maps=maps), CATALOG)
    assert plan[0].code == "UNMAPPED_SERVICE_LINE"  # the labor line has no item-type map


def test_the_connection_default_catches_unmapped_service_lines_and_says_so():
    defaults = {"receivable_account": "1200", "revenue_account": "4090", "tax_account": "2300"}
    maps = {"TAX_RATE": {"7.25": {"tax_code": "NC"}}}
    plan = resolve_invoice(invoice(), rules(defaults=defaults, maps=maps), CATALOG)
    assert plan.lines[0].reason == (
        "revenue account 4090 from the connection default (no map for HVAC)"
    )


def test_tax_codes_can_derive_from_the_location_state():
    ruleset = rules(
        defaults={"receivable_account": "1200", "tax_account": "2300", "tax_code_source": "STATE"},
        maps={"SERVICE_LINE": {"HVAC": {"revenue_account": "4010"}},
              "LOCATION_STATE": {"nc": {"tax_code": "NC-STATE", "work_state": "NC"}}},
    )  # fmt: skip
    plan = resolve_invoice(invoice(), ruleset, CATALOG)
    assert plan.lines[-1].tax_code == "NC-STATE"
    assert plan.codings["work_state"].value == "NC"


def test_dimensions_come_from_their_map_default_or_the_source_value_itself():
    dimensions = [{"dimension": "DEPARTMENT", "source": "service_line", "values": {"HVAC": "D10"},
                   "default": "D99"}]  # fmt: skip
    plan = resolve_invoice(invoice(), rules(dimensions=dimensions), CATALOG)
    assert plan.lines[0].codings["dimension:DEPARTMENT"].value == "D10"
    dimensions[0]["values"] = {}
    plan = resolve_invoice(invoice(), rules(dimensions=dimensions), CATALOG)
    assert (
        plan.lines[0]
        .codings["dimension:DEPARTMENT"]
        .reason.startswith("DEPARTMENT D99 from the dimension default")
    )
    project = [{"dimension": "PROJECT", "source": "job", "pass_through": True}]
    plan = resolve_invoice(invoice(), rules(dimensions=project), CATALOG)
    assert plan.lines[0].codings["dimension:PROJECT"].value == "J-1042"


def test_document_dimensions_the_rules_mark_as_customer_defaults_are_given_to_the_plan():
    dimensions = [
        {"dimension": "DEPARTMENT", "source": "office", "values": {"Raleigh": "D10"},
         "customer_default": True},
        {"dimension": "PROJECT", "source": "job", "pass_through": True},
    ]  # fmt: skip
    plan = resolve_invoice(invoice(), rules(dimensions=dimensions), CATALOG)
    assert plan.customer_dimensions == {"DEPARTMENT": "D10"}
    dimensions[0]["customer_default"] = False
    plan = resolve_invoice(invoice(), rules(dimensions=dimensions), CATALOG)
    assert plan.customer_dimensions == {}


def test_a_required_dimension_without_a_value_blocks():
    dimensions = [{"dimension": "DEPARTMENT", "source": "office", "values": {"Durham": "D10"},
                   "required": True}]  # fmt: skip
    problems = resolve_invoice(invoice(), rules(dimensions=dimensions), CATALOG)
    assert problems[0].message == (
        "No DEPARTMENT value for office 'Raleigh': add it to the DEPARTMENT dimension map or "
        "give the dimension a default."
    )


def test_target_values_the_erp_does_not_accept_are_problems_each_listed():
    ruleset = rules(
        defaults={"receivable_account": "4999", "tax_account": "4888"},
        maps={"SERVICE_LINE": {"HVAC": {"revenue_account": "4777"}},
              "TAX_RATE": {"7.25": {"tax_code": "XX"}}},
    )  # fmt: skip
    problems = resolve_invoice(invoice(), ruleset, CATALOG)
    assert [problem.message for problem in problems] == [
        "The receivable account 4999 does not accept postings.",
        "The revenue account 4777 is no longer in the ERP.",
        "Tax code XX does not exist in the ERP.",
        "The tax liability account 4888 is inactive.",
    ]


amounts = st.decimals(min_value=Decimal("-999.99"), max_value=Decimal("9999.99"), places=2)
attribute_values = {
    "service_line": ["HVAC", "Plumbing"], "line_kind": ["labor", "part", "other"],
    "office": ["Raleigh", "Durham"], "state": ["NC", "SC"], "job_type": ["repair", "install"],
}  # fmt: skip


@st.composite
def routing_rules(draw: Any) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=0, max_value=12))
    rules_ = []
    for rule_id in range(1, count + 1):
        attributes = draw(st.sets(st.sampled_from(sorted(attribute_values)), max_size=3))
        conditions = {a: draw(st.sampled_from(attribute_values[a])) for a in sorted(attributes)}
        rules_.append({"id": rule_id, "conditions": conditions,
                       "account": draw(st.sampled_from(["4500", "4600", "4700", "4888"])),
                       "priority": draw(st.integers(min_value=0, max_value=2))})  # fmt: skip
    return rules_


@settings(max_examples=150, deadline=None)
@given(routing_rules(), st.randoms(use_true_random=False))
def test_shuffling_the_rules_never_changes_a_result(routing, rng: random.Random):
    document = invoice()
    shuffled = copy.deepcopy(routing)
    rng.shuffle(shuffled)
    assert resolve_invoice(document, rules(routing=routing), CATALOG) == resolve_invoice(
        document, rules(routing=shuffled), CATALOG
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(amounts, st.booleans(), st.sampled_from(["HVAC", "Elevators"])),
        min_size=1,
        max_size=12,
    ),
    routing_rules(),
)
def test_resolution_is_total_and_every_plan_ties_out(lines, routing):
    items = [
        {"id": index, "itemType": "part" if taxable else "labor", "quantity": "1",
         "price": str(price), "taxable": taxable, "serviceLine": {"name": line}}
        for index, (price, taxable, line) in enumerate(lines)
    ]  # fmt: skip
    document = invoice(items=items)
    result = resolve_invoice(document, rules(routing=routing), CATALOG)
    if isinstance(result, InvoicePlan):
        assert sum(line.amount for line in result.lines) == result.total == document.total
    else:
        assert result and all(problem.message for problem in result)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["HVAC", "Plumbing", "Elevators"]),
            st.sampled_from(["labor", "part"]),
            st.sampled_from(["Raleigh", "Durham"]),
            st.sampled_from(["7.25", "0"]),
        ),
        min_size=1,
        max_size=8,
    ),
    routing_rules(),
)
def test_reusing_coded_lines_across_documents_never_changes_a_result(documents, routing):
    dimensions = [
        {"dimension": "DEPARTMENT", "source": "office", "values": {"Raleigh": "D10"},
         "required": True},
        {"dimension": "DEPARTMENT2", "source": "service_line", "values": {"HVAC": "D10"}},
    ]  # fmt: skip
    shared = rules(routing=routing, dimensions=dimensions)
    for index, (line, kind, office, tax) in enumerate(documents):
        items = [
            {"id": 1, "itemType": kind, "quantity": "1", "price": "10",
             "serviceLine": {"name": line}},
            {"id": 2, "itemType": "labor", "quantity": "2", "price": "5"},
        ]  # fmt: skip
        document = invoice(id=index, items=items, office={"id": 1, "name": office}, taxRate=tax)
        fresh = rules(routing=routing, dimensions=dimensions)
        assert resolve_invoice(document, shared, CATALOG) == resolve_invoice(
            document, fresh, CATALOG
        )
