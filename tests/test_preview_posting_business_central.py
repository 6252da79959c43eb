"""`manage.py preview_posting` for job item costs, timecards, PartsLedger receipts and purchase
invoices, and credits, against the fake Business Central: the exact requests, nothing sent,
nothing stored, and every body one that Business Central lets a client write."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from syncengine.models import SyncRecord, SyncState
from tests.conftest import NOW, invoice_data
from tests.test_business_central_engine import assert_writable, writable_fields
from tests.test_costs_procurement import ITEM, LABOR, PROCUREMENT, job_items, post_due
from tests.test_costs_procurement_business_central import (
    ORDER_ONLY,
    cost_books,
    cost_connection,
    ingest_procurement,
    receipt,
    receipts,
)
from tests.test_document_flows import CREDIT
from tests.test_preview_posting_costs import blocks, nothing_stored, write
from tests.test_timecards import CARD

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]

COMPANY = "companies(11111111-2222-3333-4444-555555555555)"


@pytest.fixture
def bc(fake_bc):
    return cost_books(fake_bc)


@pytest.fixture
def connection(bc):
    return cost_connection(bc)


def preview(connection, path: Path, bc) -> dict[str, dict[str, Any]]:
    """The documents previewed, by title; asserts the fake received nothing meanwhile."""
    sent_before = len(bc.sent)
    out = StringIO()
    call_command("preview_posting", "--connection", connection.slug, "--document", str(path),
                 stdout=out)  # fmt: skip
    assert len(bc.sent) == sent_before
    return blocks(out.getvalue())


def entity_set_of(url: str) -> str:
    """The entity set a request writes, also for "$1/…" (the record request 1 of a batch made)."""
    from tests.fakes.business_central import _entity_set  # a plugin: imported once it is one

    return _entity_set("/".join(part for part in url.split("/") if not part.startswith("$")))


def batch_of(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    [batch] = [request for request in requests if request["url"] == "$batch"]
    assert batch["headers"] == {"Isolation": "snapshot"}
    return list(batch["body"]["requests"])


def test_job_costs_preview_as_journal_lines_of_the_cost_journal_and_nothing_is_sent(
    connection, bc, tmp_path
):
    shown = preview(connection, write(tmp_path, job_items(ITEM, LABOR)), bc)
    assert nothing_stored() and bc.rows("journalLines") == []
    requests = shown["Job item cost J-1042/88001 (ServiceTrade 88001)"]["requests"]
    assert requests[0] == {"method": "GET", "url": f"{COMPANY}/journals",
                           "params": {"$filter": "code eq 'CROSSWALK'"},
                           "purpose": "the cost journal's id"}  # fmt: skip
    line, *dimensions = batch_of(requests)
    assert line["url"] == f"{COMPANY}/journals(<id of journal CROSSWALK>)/journalLines"
    assert line["body"] == {
        "accountType": "G/L Account", "accountNumber": "1400", "postingDate": "2026-11-26",
        "documentNumber": "ST-JC-88001", "externalDocumentNumber": "ST-JC-88001",
        "amount": Decimal("122.25"), "description": "Job J-1042: Condenser fan motor",
        "balanceAccountType": "G/L Account", "balancingAccountNumber": "1300",
    }  # fmt: skip
    assert [(op["url"], op["body"]) for op in dimensions] == [
        ("$1/dimensionSetLines", {"code": "BRANCH", "valueCode": "RAL"}),
        ("$1/dimensionSetLines", {"code": "DEPARTMENT", "valueCode": "HVAC"}),
    ]


def test_a_purchase_invoice_previews_its_vendor_batch_and_posting(connection, bc, tmp_path):
    shown = preview(connection, write(tmp_path, PROCUREMENT), bc)
    requests = shown["Purchase invoice INV-5531 (PartsLedger PI-5531)"]["requests"]
    assert [(r["method"], r["url"].removeprefix(f"{COMPANY}/")) for r in requests] == [
        ("GET", "vendors"), ("POST", "vendors"), ("POST", "$batch"),
        ("POST", "purchaseInvoices(<id>)/Microsoft.NAV.post"), ("GET", "purchaseInvoices(<id>)"),
    ]  # fmt: skip
    assert requests[1]["body"] == {"number": "PLV-100", "displayName": "Ferguson Supply"}
    header, *lines = batch_of(requests)
    assert header["body"] == {"vendorNumber": "PLV-100", "vendorInvoiceNumber": "ST-PI-PI-5531",
                              "invoiceDate": "2026-11-25", "postingDate": "2026-11-25",
                              "dueDate": "2026-12-25"}  # fmt: skip
    costs = [op["body"]["unitCost"] for op in lines if op["url"] == "$1/purchaseInvoiceLines"]
    assert costs == [Decimal("122.25"), Decimal("310.01"), Decimal("1.00")]  # 433.26
    assert nothing_stored() and bc.rows("vendors") == [] and bc.rows("purchaseInvoices") == []


def test_a_receipt_in_the_same_file_as_its_order_previews_the_receiving_and_says_it_waits(
    connection, bc, tmp_path
):
    shown = preview(connection, write(tmp_path, PROCUREMENT), bc)
    receipt_preview = shown["Receipt R-9 (PartsLedger RC-9)"]
    assert receipt_preview["heading"].endswith(
        ", total 122.25 USD, key ST-RC-RC-9, on order 4411 (ST-PO-PO-4411), to Dynamics 365 "
        "Business Central:"
    )
    requests = receipt_preview["requests"]
    order = f"{COMPANY}/purchaseOrders(<id of order 4411>)"
    assert [(r["method"], r["url"], r.get("body")) for r in requests] == [
        ("GET", f"{COMPANY}/purchaseOrders", None),
        ("PATCH", order, {"postingDate": "2026-11-05"}),
        ("PATCH", f"{order}/purchaseOrderLines(<id of line 1>)", {"receiveQuantity": 2}),
        ("PATCH", f"{order}/purchaseOrderLines(<id of line 1>)", {"invoiceQuantity": 0}),
        ("POST", f"{order}/Microsoft.NAV.receiveAndInvoice", None),
        ("GET", order, None),
    ]  # fmt: skip
    assert requests[0]["params"]["$filter"] == (
        "vendorNumber eq 'PLV-100' and orderDate eq 2026-11-02"
    )
    assert all(r["headers"]["If-Match"] for r in requests if r["method"] == "PATCH")
    assert receipt_preview["notes"] == [
        "Received once purchase order 4411 (not stored yet) has posted: it waits for it."
    ]
    assert nothing_stored() and bc.rows("purchaseOrders") == []


def test_a_receipt_of_a_stored_order_counts_what_its_earlier_receipt_received(
    connection, bc, tmp_path
):
    ingest_procurement(connection, ORDER_ONLY)
    ingest_procurement(connection, receipts(receipt("9", 1)))
    post_due()
    post_due(NOW + timedelta(days=11))  # the receipt waited for its order
    assert SyncRecord.objects.get(idempotency_key="ST-RC-9").state == SyncState.POSTED
    sent_before = len(bc.sent)
    shown = preview(connection, write(tmp_path, receipts(receipt("10", 1))), bc)
    requests = shown["Receipt R-10 (PartsLedger 10)"]["requests"]
    assert {"receiveQuantity": 1} in [r.get("body") for r in requests]
    assert shown["Receipt R-10 (PartsLedger 10)"]["notes"] == []  # the order has posted
    # Two more would be three of the two ordered: refused before anything is sent.
    err = StringIO()
    with pytest.raises(CommandError, match="1 of 1 document"):
        call_command("preview_posting", "--connection", connection.slug, "--document",
                     str(write(tmp_path, receipts(receipt("10", 2)), "more.json")),
                     stdout=StringIO(), stderr=err)  # fmt: skip
    assert "RECEIVES_TOO_MUCH: Receipt R-10 line 1 receives 2 of order 4411 line 1, which has " \
        "1.00 left to receive" in err.getvalue()  # fmt: skip
    assert len(bc.sent) == sent_before


def test_a_receipt_whose_order_is_nowhere_is_blocked_naming_the_order(connection, bc, tmp_path):
    err = StringIO()
    with pytest.raises(CommandError, match="1 of 1 document"):
        call_command("preview_posting", "--connection", connection.slug, "--document",
                     str(write(tmp_path, receipts(receipt("9", 2)))), stdout=StringIO(),
                     stderr=err)  # fmt: skip
    assert "Receipt R-9 (PartsLedger 9) is blocked:" in err.getvalue()
    assert "UNKNOWN_PURCHASE_ORDER: Purchase order 4411 is in no procurement import yet" in (
        err.getvalue()
    )


def test_a_timecard_previews_its_projects_the_read_of_the_week_and_one_batch(
    connection, bc, tmp_path
):
    shown = preview(connection, write(tmp_path, {"data": CARD}), bc)
    requests = shown["Timecard TC-77 of Maria Lopez"]["requests"]
    assert [(r["method"], r["url"].removeprefix(f"{COMPANY}/")) for r in requests] == [
        ("GET", "projects"), ("POST", "projects"), ("GET", "projects"), ("POST", "projects"),
        ("GET", "timeRegistrationEntries"), ("POST", "$batch"),
    ]  # fmt: skip
    assert requests[4]["params"]["$filter"] == (
        "employeeNumber eq 'E300' and date ge 2026-11-09 and date lt 2026-11-13"
    )
    entries = [op["body"] for op in batch_of(requests)]
    assert [(e["date"], e["quantity"], e.get("jobNumber")) for e in entries] == [
        ("2026-11-09", Decimal("7.5"), "J-20001"), ("2026-11-10", 2, "J-20002"),
        ("2026-11-11", 8, None), ("2026-11-12", Decimal("0.5"), None),
    ]  # fmt: skip
    assert nothing_stored() and bc.rows("timeRegistrationEntries") == []


def test_a_credit_previews_as_a_credit_memo_under_its_credit_key(connection, bc, tmp_path):
    path = write(tmp_path, {"data": invoice_data(items=CREDIT, taxRate=0)})
    [credit] = preview(connection, path, bc).values()
    assert ", key ST-CM-4242, " in credit["heading"]
    header, *_ = batch_of(credit["requests"])
    assert header["url"] == f"{COMPANY}/salesCreditMemos"
    assert header["body"]["externalDocumentNumber"] == "ST-CM-4242"
    assert credit["requests"][-2]["url"].endswith("salesCreditMemos(<id>)/Microsoft.NAV.post")


def test_every_body_a_preview_shows_uses_only_fields_the_entity_set_lists_as_writable(
    connection, bc, tmp_path
):
    files = [job_items(ITEM, LABOR), PROCUREMENT, {"data": CARD}, {"data": invoice_data()},
             {"data": invoice_data(items=CREDIT, taxRate=0)}]  # fmt: skip
    requests = []
    for index, data in enumerate(files):
        for shown in preview(connection, write(tmp_path, data, f"{index}.json"), bc).values():
            requests += shown.get("requests", [])
    bodies = []
    for request in requests:
        inner = request["body"]["requests"] if request["url"] == "$batch" else [request]
        bodies += [(entity_set_of(op["url"]), op["body"]) for op in inner if op.get("body")]
    assert {entity_set for entity_set, _ in bodies} == {
        "customers", "vendors", "projects", "journalLines", "dimensionSetLines",
        "purchaseOrders", "purchaseOrderLines", "purchaseInvoices", "purchaseInvoiceLines",
        "timeRegistrationEntries", "salesInvoices", "salesInvoiceLines", "salesCreditMemos",
        "salesCreditMemoLines",
    }  # fmt: skip
    fields, parts = writable_fields()
    for entity_set, body in bodies:
        assert_writable(entity_set, body, fields, parts)
    assert nothing_stored()


def test_a_file_the_connection_cannot_read_is_refused_naming_it(connection, bc, tmp_path):
    path = write(tmp_path, {"format": "crosswalk-procurement/1", "bills": []})
    with pytest.raises(CommandError, match="bills: unknown list"):
        call_command("preview_posting", "--connection", connection.slug, "--document", str(path))
    assert json.loads(path.read_text())["bills"] == []
