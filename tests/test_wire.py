"""Money leaves and comes back exact: JSON bodies for ERPs and the stored form of plans."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from mappings.resolve import Coding, InvoicePlan, PlanLine, invoice_plan_from_dict
from syncengine.canonical import to_jsonable
from syncengine.erps import wire


def test_decimals_are_written_digit_for_digit_and_read_back_as_decimals():
    body = {"amount": Decimal("110.00"), "lines": [{"price": Decimal("-0.10")}],
            "date": date(2026, 11, 23), "count": 3}  # fmt: skip
    text = wire.dumps(body)
    assert (
        text == '{"amount": 110.00, "lines": [{"price": -0.10}], "date": "2026-11-23", "count": 3}'
    )
    assert wire.loads(text) == {**body, "date": "2026-11-23"}
    indented = wire.dumps(body, indent=2)
    assert '"amount": 110.00,' in indented and '"price": -0.10' in indented
    assert wire.loads(indented) == wire.loads(text)


def test_a_string_that_looks_like_a_marked_number_is_left_as_written():
    lookalike = '"0123456789abcdef12.5' + '0123456789abcdef"'
    text = wire.dumps({"note": lookalike[1:-1], "amount": Decimal("1.5")})
    assert wire.loads(text) == {"note": lookalike[1:-1], "amount": Decimal("1.5")}


def test_a_plan_stored_as_json_comes_back_equal_and_shares_nothing_with_the_original():
    codings = {"dimension:DEPARTMENT": Coding("HVAC", "rule 3")}
    plan = InvoicePlan(
        document_number="10482", posting_date=date(2026, 11, 20), currency="USD",
        customer_ref="501", customer_name="Harbor Foods", receivable_account="1200",
        receivable_reason="default", total=Decimal("275.00"),
        lines=(PlanLine("4010", Decimal("275.00"), "HVAC labor", "r", "", "1", "labor", codings),),
        codings=codings, customer_dimensions={"DEPARTMENT": "HVAC"},
    )  # fmt: skip
    stored = to_jsonable(plan)
    assert stored["total"] == "275.00"
    assert stored["lines"][0]["codings"] == {
        "dimension:DEPARTMENT": {"value": "HVAC", "reason": "rule 3"}
    }
    assert json.loads(json.dumps(stored)) == stored
    assert invoice_plan_from_dict(stored) == plan
    stored["customer_dimensions"]["DEPARTMENT"] = "changed"
    assert plan.customer_dimensions == {"DEPARTMENT": "HVAC"}


def test_values_of_subclassed_and_nested_types_become_json_the_same_way_as_plain_ones():
    class Kind(enum.StrEnum):
        LABOR = "labor"

    class Pair(NamedTuple):
        left: int
        right: Decimal

    @dataclasses.dataclass
    class Row:
        kind: Kind
        pair: Pair
        when: date
        items: tuple[Decimal, ...]
        extra: collections.OrderedDict[str, Decimal]

    row = Row(Kind.LABOR, Pair(1, Decimal("2.50")), date(2026, 11, 23), (Decimal("0.10"),),
              collections.OrderedDict(fee=Decimal("3")))  # fmt: skip
    assert to_jsonable({"rows": [row], "flag": True, "none": None}) == {
        "rows": [{"kind": "labor", "pair": {"left": 1, "right": "2.50"}, "when": "2026-11-23",
                  "items": ["0.10"], "extra": {"fee": "3"}}],
        "flag": True, "none": None,
    }  # fmt: skip
