import json
from decimal import Decimal

import pytest

from syncengine.sources.servicetrade import InvalidDocument, loads, parse_invoice, split_invoices
from tests.conftest import envelope, invoice_data


def parse(body: bytes, time_zone: str = "America/New_York"):
    (data,) = split_invoices(loads(body))
    return parse_invoice(data, currency="USD", time_zone=time_zone)


def test_a_servicetrade_invoice_becomes_a_canonical_invoice_with_decimal_money():
    invoice = parse(envelope())
    assert invoice.number == "10482"
    assert [line.amount for line in invoice.lines] == [
        Decimal("275.00"),
        Decimal("129.99"),
        Decimal("0.30"),
    ]
    assert all(isinstance(line.quantity, Decimal) for line in invoice.lines)
    assert invoice.lines_total == Decimal("405.29")
    assert invoice.tax_amount == Decimal("9.45")
    assert invoice.total == Decimal("414.74")
    assert invoice.location.address.state == "NC"
    assert invoice.job.service_line == "HVAC"


def test_the_posting_date_is_the_transaction_day_in_the_connections_time_zone():
    # 1763607600 is 2025-11-20 03:00 UTC, still the 19th in New York.
    assert str(parse(envelope(transactionDate=1763607600)).transaction_date) == "2025-11-19"
    assert str(parse(envelope(transactionDate=1763607600), "UTC").transaction_date) == "2025-11-20"


def test_line_amounts_round_half_up_to_the_cent():
    items = [{"id": 1, "itemType": "part", "quantity": "3", "price": "0.335"}]
    invoice = parse(envelope(items=items, taxRate=0))
    assert invoice.lines[0].amount == Decimal("1.01")  # 1.005 rounds up, not to even


def test_a_stated_tax_is_used_as_is_and_totals_must_tie_out():
    invoice = parse(envelope(totalTax="9.44", totalPrice="414.73"))
    assert invoice.tax_amount == Decimal("9.44")
    with pytest.raises(InvalidDocument) as caught:
        parse(envelope(totalPrice="414.75"))
    assert caught.value.errors == [
        "data.totalPrice: 414.75 does not equal items 405.29 + tax 9.45 = 414.74"
    ]


def test_every_problem_is_reported_and_each_names_its_field():
    data = invoice_data()
    del data["invoiceNumber"]
    data["items"][0]["quantity"] = "two"
    data["items"][1]["itemType"] = "gadget"
    data["customer"] = "Harbor Foods"
    with pytest.raises(InvalidDocument) as caught:
        parse(json.dumps({"data": data}).encode())
    errors = caught.value.errors
    assert 'data.items[0].quantity: expected a number, got "two"' in errors
    assert "data.items[1].itemType: 'gadget' is not one of labor, part, other" in errors
    assert "data.invoiceNumber: required" in errors
    assert "data.customer: expected an object" in errors


def test_an_item_whose_stated_total_disagrees_with_quantity_times_price_is_rejected():
    data = invoice_data()
    data["items"][0]["totalPrice"] = "276.00"
    with pytest.raises(InvalidDocument) as caught:
        parse(json.dumps({"data": data}).encode())
    assert caught.value.errors == [
        "data.items[0].totalPrice: 276.00 does not equal quantity × price = 275.00"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"[]", 'body: expected a JSON object with a "data" member'),
        (b'{"data": 5}', "data: expected an invoice object"),
    ],
)
def test_bodies_that_are_not_invoice_envelopes_get_a_clear_error(body, message):
    with pytest.raises(InvalidDocument) as caught:
        split_invoices(loads(body))
    assert caught.value.errors[0].startswith(message)


def test_invoices_without_items_or_with_booleans_for_numbers_are_rejected():
    with pytest.raises(InvalidDocument) as caught:
        parse(envelope(items=[]))
    assert caught.value.errors == ["data.items: expected a non-empty list of items"]
    with pytest.raises(InvalidDocument) as caught:
        parse(envelope(taxRate=True))
    assert caught.value.errors == ["data.taxRate: expected a number, got true"]
