"""Parsing a rule-set document: every problem is reported, with its path, in one error."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.ruleset import EMPTY_CONTENT, RuleSetFormatError, norm, parse_ruleset


def errors_of(content: Any) -> list[str]:
    with pytest.raises(RuleSetFormatError) as raised:
        parse_ruleset(content)
    assert str(raised.value) == "; ".join(raised.value.errors)
    return raised.value.errors


ROUTING_ATTRIBUTE_CHOICES = (
    "document_kind, line_kind, service_line, office, job_type, customer_tag, state"
)
DIMENSION_SOURCE_CHOICES = (
    "service_line, office, job, job_type, location_state, customer, item_type"
)


# --- a well-formed document -------------------------------------------------------------------


def test_a_complete_document_parses_and_serialises_back_to_the_same_content():
    content = {
        "defaults": {"receivable_account": "1200", "revenue_account": "4090",
                     "tax_account": "2300", "tax_code_source": "STATE"},
        "maps": {"SERVICE_LINE": {"HVAC": {"cost_code": "100", "revenue_account": "4010"}}},
        "routing": [{"id": 1, "conditions": {"line_kind": "labor", "service_line": "HVAC"},
                     "account": "4011", "priority": 2, "note": "labor"}],
        "dimensions": [{"dimension": "DEPARTMENT", "source": "service_line",
                        "values": {"HVAC": "D10"}, "default": "D99", "pass_through": False,
                        "required": True}],
        "numbering": [{"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 9999,
                       "width": 5}],
        "ownership": [{"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"}],
    }  # fmt: skip
    assert parse_ruleset(content).to_content() == content


def test_an_empty_document_is_the_empty_rule_set():
    assert parse_ruleset({}).to_content() == EMPTY_CONTENT


def test_source_values_are_kept_as_typed_apart_from_surrounding_spaces():
    ruleset = parse_ruleset({"maps": {"SERVICE_LINE": {" HVAC ": {"revenue_account": "4010"}}}})
    assert list(ruleset.maps["SERVICE_LINE"]) == ["HVAC"]


def test_norm_ignores_case_spacing_and_trailing_zeros_of_numbers():
    assert norm("  Roof   Top HVAC ") == "roof top hvac"
    assert norm("7.250") == norm("7.25") == "7.25"
    assert norm("1e2") == "100"
    assert norm("NaN") == "nan" and norm("-inf") == "-inf"


def test_norm_caches_without_confusing_equal_values_of_different_types():
    assert norm(1) == "1"  # type: ignore[arg-type]
    assert norm(True) == "true"  # type: ignore[arg-type]
    assert norm(1) == "1"  # type: ignore[arg-type]


# --- the document and its sections -------------------------------------------------------------


def test_a_document_that_is_not_an_object_is_refused():
    assert errors_of(["maps"]) == ["rule set: expected an object"]


def test_unknown_top_level_fields_are_named():
    assert errors_of({"mapz": {}, "routing": []}) == ["rule set.mapz: unknown field"]


@pytest.mark.parametrize(
    ("section", "wrong", "message"),
    [
        ("defaults", [], "defaults: expected an object"),
        ("maps", [], "maps: expected an object"),
        ("routing", {}, "routing: expected a list"),
        ("dimensions", {}, "dimensions: expected a list"),
        ("numbering", {}, "numbering: expected a list"),
        ("ownership", {}, "ownership: expected a list"),
    ],
)
def test_a_section_of_the_wrong_shape_is_refused(section: str, wrong: Any, message: str):
    assert errors_of({section: wrong}) == [message]


def test_every_problem_is_reported_at_once_in_document_order():
    content = {
        "defaults": {"receivable_account": ["1200"]},
        "maps": {"SERVICE_LINE": {"HVAC": {}}},
        "routing": [{"id": 1}],
    }
    assert errors_of(content) == [
        "defaults.receivable_account: expected text",
        "maps.SERVICE_LINE.HVAC: maps to nothing; give at least one of revenue_account, "
        "cost_code, cost_center",
        "routing[0].account: required",
    ]


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_refuse_unknown_fields_non_text_accounts_and_unknown_tax_code_sources():
    content = {"defaults": {"receivable_account": 12.5, "colour": "red",
                            "tax_code_source": "ZIP"}}  # fmt: skip
    assert errors_of(content) == [
        "defaults.colour: unknown field",
        "defaults.receivable_account: expected text",
        "defaults.tax_code_source: 'ZIP' is not one of RATE, STATE",
    ]


def test_whole_numbers_are_accepted_as_account_text():
    defaults = parse_ruleset({"defaults": {"receivable_account": 1200}}).defaults
    assert defaults.receivable_account == "1200"


# --- maps --------------------------------------------------------------------------------------


def test_an_unknown_map_is_named_with_the_maps_that_exist():
    assert errors_of({"maps": {"COLOUR": {}}}) == [
        "maps.COLOUR: unknown map; known maps: SERVICE_LINE, OFFICE, TECHNICIAN, LABOR_TYPE, "
        "LOCATION_STATE, TAX_RATE, COST_CENTER, JOB_TYPE, ITEM_TYPE"
    ]


def test_a_map_that_is_not_an_object_is_refused():
    assert errors_of({"maps": {"OFFICE": ["Raleigh"]}}) == ["maps.OFFICE: expected an object"]


def test_an_empty_source_value_is_refused():
    content = {"maps": {"OFFICE": {"  ": {"department": "RAL"}}}}
    assert errors_of(content) == ["maps.OFFICE.  : the source value is empty"]


def test_two_source_values_that_normalise_alike_are_refused():
    content = {"maps": {"SERVICE_LINE": {"HVAC": {"revenue_account": "4010"},
                                         " hvac ": {"revenue_account": "4020"}},
                        "TAX_RATE": {"7.25": {"tax_code": "NC"},
                                     "7.250": {"tax_code": "NC2"}}}}  # fmt: skip
    assert errors_of(content) == [
        "maps.SERVICE_LINE. hvac : same source value as 'HVAC'",
        "maps.TAX_RATE.7.250: same source value as '7.25'",
    ]


def test_a_map_row_must_be_an_object_of_known_text_targets():
    content = {"maps": {"SERVICE_LINE": {"HVAC": ["4010"], "Plumbing": {"gl": "4020"},
                                         "Fire": {"revenue_account": ["4030"]}}}}  # fmt: skip
    assert errors_of(content) == [
        "maps.SERVICE_LINE.HVAC: expected an object",
        "maps.SERVICE_LINE.Plumbing.gl: unknown field",
        "maps.SERVICE_LINE.Fire.revenue_account: expected text",
    ]


def test_a_map_row_with_only_empty_targets_maps_to_nothing():
    content = {"maps": {"TAX_RATE": {"7.25": {"tax_code": " ", "tax_account": ""}}}}
    assert errors_of(content) == [
        "maps.TAX_RATE.7.25: maps to nothing; give at least one of tax_code, tax_account"
    ]


def test_empty_targets_are_dropped_from_a_row_that_has_others():
    content = {"maps": {"TAX_RATE": {"7.25": {"tax_code": "NC", "tax_account": ""}}}}
    assert parse_ruleset(content).maps["TAX_RATE"]["7.25"] == {"tax_code": "NC"}


# --- routing -----------------------------------------------------------------------------------


def test_a_routing_rule_must_be_an_object_with_a_whole_number_id_and_an_account():
    assert errors_of({"routing": ["4010"]}) == [
        "routing[0]: expected an object",
        "routing[0].id: expected a whole number",
        "routing[0].account: required",
    ]


def test_a_routing_rule_refuses_unknown_fields_and_non_numeric_priorities():
    content = {"routing": [{"id": True, "account": "4010", "priority": "high", "colour": 1}]}
    assert errors_of(content) == [
        "routing[0].colour: unknown field",
        "routing[0].id: expected a whole number",
        "routing[0].priority: expected a whole number",
    ]


def test_two_routing_rules_with_one_id_are_refused():
    content = {"routing": [{"id": 7, "account": "4010"}, {"id": 7, "account": "4020"}]}
    assert errors_of(content) == ["routing[1].id: rule 7 appears twice"]


def test_conditions_must_be_an_object():
    content = {"routing": [{"id": 1, "account": "4010", "conditions": ["HVAC"]}]}
    assert errors_of(content) == ["routing[0].conditions: expected an object"]


def test_conditions_name_only_routing_attributes_and_need_a_value():
    content = {"routing": [{"id": 1, "account": "4010",
                            "conditions": {"colour": "red", "office": " "}}]}  # fmt: skip
    assert errors_of(content) == [
        f"routing[0].conditions.colour: not one of {ROUTING_ATTRIBUTE_CHOICES}",
        "routing[0].conditions.office: required",
    ]


def test_line_kind_and_document_kind_conditions_take_only_their_known_values():
    conditions = {"document_kind": "bill", "line_kind": "travel"}
    content = {"routing": [{"id": 1, "account": "4010", "conditions": conditions}]}
    assert errors_of(content) == [
        "routing[0].conditions.document_kind: not one of invoice, credit_memo, job_cost, "
        "purchase_invoice",
        "routing[0].conditions.line_kind: not one of labor, part, other",
    ]


def test_priority_defaults_to_zero_and_specificity_counts_conditions():
    (rule,) = parse_ruleset(
        {
            "routing": [
                {"id": 1, "account": "4010", "conditions": {"office": "Raleigh", "state": "NC"}}
            ]
        }  # fmt: skip
    ).routing
    assert rule.priority == 0 and rule.specificity == 2


# --- dimensions ----------------------------------------------------------------------------------


def test_a_dimension_needs_a_name_a_known_source_and_non_empty_values():
    content = {"dimensions": [{"dimension": "", "source": "colour", "values": {"HVAC": ""},
                               "shade": 1}]}  # fmt: skip
    assert errors_of(content) == [
        "dimensions[0].shade: unknown field",
        "dimensions[0].dimension: required",
        "dimensions[0].values.HVAC: required",
        f"dimensions[0].source: 'colour' is not one of {DIMENSION_SOURCE_CHOICES}",
    ]


def test_a_dimension_without_a_source_is_refused():
    assert errors_of({"dimensions": [{"dimension": "DEPARTMENT"}]}) == [
        "dimensions[0].source: required"
    ]


def test_dimension_values_must_be_an_object_and_flags_true_or_false():
    content = {"dimensions": [{"dimension": "DEPARTMENT", "source": "office", "values": ["D10"],
                               "pass_through": "yes", "required": 1}]}  # fmt: skip
    assert errors_of(content) == [
        "dimensions[0].values: expected an object",
        "dimensions[0].pass_through: expected true or false",
        "dimensions[0].required: expected true or false",
    ]


def test_only_a_dimension_filled_from_the_document_can_be_a_customer_default():
    content = {"dimensions": [
        {"dimension": "DEPARTMENT", "source": "service_line", "customer_default": True},
        {"dimension": "BRANCH", "source": "office", "customer_default": "yes"},
    ]}  # fmt: skip
    assert errors_of(content) == [
        "dimensions[0].customer_default: a customer's default dimension must come from the "
        "document (office, job …), not from each line's service line",
        "dimensions[1].customer_default: expected true or false",
    ]


def test_a_customer_default_is_written_back_only_when_set():
    content = {"dimensions": [
        {"dimension": "BRANCH", "source": "office", "customer_default": True},
        {"dimension": "PROJECT", "source": "job", "customer_default": False},
    ]}  # fmt: skip
    written = parse_ruleset(content).to_content()["dimensions"]
    assert [setting.get("customer_default") for setting in written] == [True, None]
    assert parse_ruleset({"dimensions": written}).dimensions[0].customer_default is True


def test_a_dimension_set_twice_is_refused():
    content = {"dimensions": [{"dimension": "DEPARTMENT", "source": "office"},
                              {"dimension": "DEPARTMENT", "source": "service_line"}]}  # fmt: skip
    assert errors_of(content) == ["dimensions[1].dimension: DEPARTMENT is set twice"]


# --- numbering and ownership -------------------------------------------------------------------


def test_numbering_needs_a_known_entity_whole_numbers_and_no_unknown_fields():
    content = {"numbering": [{"entity": "TRUCK", "start": "1", "end": 2.0, "width": "5",
                              "colour": 1}]}  # fmt: skip
    assert errors_of(content) == [
        "numbering[0].colour: unknown field",
        "numbering[0].entity: 'TRUCK' is not one of CUSTOMER, SITE, JOB",
        "numbering[0].start: expected a whole number",
        "numbering[0].end: expected a whole number",
        "numbering[0].width: expected a whole number",
    ]


def test_a_numbering_range_must_be_non_negative_and_not_empty():
    content = {"numbering": [{"entity": "CUSTOMER", "start": 10, "end": 5},
                             {"entity": "SITE", "start": -1, "end": 5}]}  # fmt: skip
    assert errors_of(content) == [
        "numbering[0]: the range 10–5 is empty or negative",
        "numbering[1]: the range -1–5 is empty or negative",
    ]


def test_an_entity_numbered_twice_is_refused():
    content = {"numbering": [{"entity": "JOB", "start": 1, "end": 9},
                             {"entity": "JOB", "prefix": "J", "start": 1, "end": 9}]}  # fmt: skip
    assert errors_of(content) == ["numbering[1].entity: JOB is numbered twice"]


def test_ownership_needs_a_known_entity_a_field_and_a_known_owner():
    content = {"ownership": [{"entity": "TRUCK", "field": "", "owner": "ME", "since": 1}]}
    assert errors_of(content) == [
        "ownership[0].since: unknown field",
        "ownership[0].entity: 'TRUCK' is not one of CUSTOMER, LOCATION, CONTACT",
        "ownership[0].field: required",
        "ownership[0].owner: 'ME' is not one of ERP, SOURCE, LATEST",
    ]


def test_a_field_with_two_owners_is_refused():
    content = {"ownership": [
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"},
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "SOURCE"},
    ]}  # fmt: skip
    assert errors_of(content) == ["ownership[1]: CUSTOMER.tax_code has two owners"]
