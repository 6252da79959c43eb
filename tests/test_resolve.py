"""Resolution is pure: the same document, rules and catalog always give the same plan."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from mappings.resolve import (
    Catalog,
    CatalogAccount,
    InvoicePlan,
    Rules,
    TargetValue,
    resolve_invoice,
)
from syncengine.sources.servicetrade import loads, parse_invoice, split_invoices
from tests.conftest import envelope

CATALOG = Catalog(
    accounts={
        number: CatalogAccount(number, name)
        for number, name in [("1200", "AR"), ("2300", "Tax"), ("4010", "HVAC"), ("4090", "Other")]
    }
    | {"4999": CatalogAccount("4999", "Header", direct_posting=False)},
    tax_codes={"NC": Decimal("7.25")},
)
RULES = Rules(
    receivable_account="1200",
    service_line_revenue={"hvac": TargetValue("", "4010")},
    tax_rates={"7.25": TargetValue("NC", "2300")},
)


def invoice(**changes):
    (data,) = split_invoices(loads(envelope(**changes)))
    return parse_invoice(data, currency="USD", time_zone="UTC")


def test_a_fully_mapped_invoice_resolves_to_a_plan_that_ties_to_its_total():
    plan = resolve_invoice(invoice(), RULES, CATALOG)
    assert isinstance(plan, InvoicePlan)
    assert plan.total == Decimal("414.74") == sum(line.amount for line in plan.lines)
    assert plan.receivable_account == "1200"


def test_the_connection_default_catches_unmapped_service_lines_and_says_so():
    rules = Rules(
        receivable_account="1200", default_revenue_account="4090", tax_rates=RULES.tax_rates
    )
    plan = resolve_invoice(invoice(), rules, CATALOG)
    assert plan.lines[0].reason == (
        "revenue account 4090 from the connection default (no map for HVAC)"
    )


def test_accounts_that_do_not_accept_postings_or_do_not_exist_are_problems():
    rules = Rules(
        receivable_account="4999",
        service_line_revenue={"hvac": TargetValue("", "9999")},
        tax_rates={"7.25": TargetValue("XX", "2300")},
    )
    problems = resolve_invoice(invoice(), rules, CATALOG)
    assert [problem.message for problem in problems] == [
        "The receivable account 4999 does not accept postings.",
        "The revenue account 9999 does not exist in the ERP.",
        "Tax code XX does not exist in the ERP.",
    ]


def test_a_missing_receivable_account_is_reported():
    problems = resolve_invoice(invoice(), Rules(receivable_account=""), CATALOG)
    assert problems[0].message == "No receivable account is configured for this connection."


amounts = st.decimals(min_value=Decimal("-999.99"), max_value=Decimal("9999.99"), places=2)


@given(st.lists(st.tuples(amounts, st.booleans()), min_size=1, max_size=12))
def test_resolution_always_gives_a_plan_or_problems_and_plans_always_tie_out(lines):
    items = [
        {
            "id": index,
            "itemType": "part" if taxable else "labor",
            "quantity": "1",
            "price": str(price),
            "taxable": taxable,
        }
        for index, (price, taxable) in enumerate(lines)
    ]
    document = invoice(items=items)
    result = resolve_invoice(document, RULES, CATALOG)
    assert isinstance(result, InvoicePlan)
    assert sum(line.amount for line in result.lines) == result.total == document.total
    assert resolve_invoice(document, RULES, CATALOG) == result
