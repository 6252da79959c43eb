"""Job item costs post as balanced journals and PartsLedger procurement as AP invoices, through
the same receipts → documents → records path as invoices: coded by the rules, idempotent per
record, every parse error naming its field, the sandbox ledger balanced to the cent."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum

from console import demo
from mappings import services as mapping_services
from mappings.catalog import catalog_refresh
from syncengine import services
from syncengine.erps.sandbox.models import (
    AccountType,
    JournalLine,
    LedgerAccount,
    LedgerPosting,
    LedgerVendor,
)
from syncengine.models import DocumentKind, SourceReceipt, SyncRecord, SyncState
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

COST_ACCOUNTS = [
    ("1300", "Inventory", AccountType.ASSET),
    ("1400", "Job Cost WIP", AccountType.ASSET),
    ("2100", "Accounts Payable", AccountType.LIABILITY),
    ("2150", "Accrued Labor Cost", AccountType.LIABILITY),
    ("5020", "Inventory Adjustments", AccountType.EXPENSE),
    ("5100", "Subcontract Cost", AccountType.EXPENSE),
]


def cost_rules() -> dict[str, Any]:
    rules = demo.demo_rules()
    rules["defaults"].update(
        cost_account="1400",
        cost_offset_account="1300",
        payable_account="2100",
        inventory_adjustment_account="5020",
    )
    rules["maps"]["ITEM_TYPE"] = {
        "labor": {"cost_offset_account": "2150"},
        "part": {"cost_account": "1300"},  # purchases of parts go to stock
    }
    rules["routing"].append(
        {
            "id": 2,
            "conditions": {"document_kind": "job_cost", "line_kind": "part"},
            "account": "1400",
            "priority": 1,
            "note": "parts used on jobs",
        }
    )
    rules["routing"].append(
        {
            "id": 3,
            "conditions": {"document_kind": "purchase_invoice", "line_kind": "other"},
            "account": "5100",
            "priority": 1,
            "note": "subcontractors",
        }
    )
    return rules  # fmt: skip


@pytest.fixture
def books(connection):
    return cost_books(connection)


def cost_books(connection):
    """The demo connection with cost accounts in its ledger and the cost rules published."""
    for number, name, kind in COST_ACCOUNTS:
        LedgerAccount.objects.create(connection=connection, number=number, name=name, type=kind)
    catalog_refresh(connection=connection, actor="test", now=NOW)
    mapping_services.draft_replace(connection=connection, content=cost_rules(), actor="test",
                                   now=NOW, reason="Cost accounts")  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=NOW.date(),
                                   reason="Costs", actor="test", now=NOW)  # fmt: skip
    connection.refresh_from_db()
    return connection


ITEM: dict[str, Any] = {
    "id": 88001, "name": "Condenser fan motor", "libItem": {"type": "part"},
    "quantity": "2", "cost": "61.125", "usedOn": 1795705200,  # 2026-11-26 (New York)
    "serviceLine": {"name": "HVAC"},
    "job": {"id": 7001, "number": "J-1042", "type": "repair", "office": {"name": "Raleigh"},
            "location": {"address": {"state": "NC"}}, "customer": {"name": "Harbor Foods"}},
    "source": {"type": "refnumber", "value": "PO 4411 Ferguson"},
}  # fmt: skip
LABOR = {**ITEM, "id": 88002, "name": "Technician labor", "libItem": {"type": "labor"},
         "quantity": "3.5", "cost": "41.10"}  # fmt: skip


def job_items(*items: dict[str, Any]) -> bytes:
    return json.dumps({"data": {"jobItems": list(items)}}).encode()


def ingest_costs(connection, body: bytes, at=NOW):
    return services.job_costs_ingest(
        connection=connection, body=body, channel=SourceReceipt.Channel.FILE, origin="t", now=at
    )


PROCUREMENT: dict[str, Any] = {
    "format": "crosswalk-procurement/1",
    "source": "PartsLedger",
    "vendors": [{"id": "V-100", "number": "FERG", "name": "Ferguson Supply"}],
    "purchaseOrders": [{"id": "PO-4411", "number": "4411", "vendorId": "V-100",
                        "date": "2026-11-02", "office": "Raleigh",
                        "lines": [{"id": "1", "item": "MTR-22", "quantity": 2,
                                   "unitCost": "61.125"}]}],
    "receipts": [{"id": "RC-9", "number": "R-9", "purchaseOrderNumber": "4411",
                  "vendorId": "V-100", "date": "2026-11-05",
                  "lines": [{"id": "1", "item": "MTR-22", "quantity": 2, "unitCost": "61.125"}]}],
    "purchaseInvoices": [{"id": "PI-5531", "vendorInvoiceNumber": "INV-5531", "vendorId": "V-100",
                          "purchaseOrderNumber": "4411", "date": "2026-11-25",
                          "dueDate": "2026-12-25", "office": "Raleigh",
                          "lines": [
                              {"id": "1", "item": "MTR-22", "description": "Fan motor",
                               "itemType": "part", "quantity": 2, "unitCost": "61.125"},
                              {"id": "2", "description": "Crane hire", "itemType": "other",
                               "quantity": "1", "unitCost": "310.005"},
                              {"id": "3", "description": "Freight", "itemType": "other",
                               "quantity": "3", "unitCost": "0.333"}]}],
    "inventoryAdjustments": [{"id": "IA-3", "number": "ADJ-3", "date": "2026-11-27",
                              "reason": "Cycle count", "office": "Raleigh",
                              "lines": [{"id": "1", "item": "MTR-22", "quantity": "-1",
                                         "unitCost": "61.125"},
                                        {"id": "2", "item": "FLT-1", "quantity": "4",
                                         "unitCost": "2.50"}]}],
}  # fmt: skip
# Invoice: 2 × 61.125 = 122.25 (half-up); 310.01; 3 × 0.333 = 0.999 → 1.00. Total 433.26.


def ingest_procurement(connection, data: dict[str, Any], at=NOW):
    return services.procurement_ingest(
        connection=connection, body=json.dumps(data).encode(),
        channel=SourceReceipt.Channel.FILE, origin="partsledger.json", now=at,
    )  # fmt: skip


def post_due(at=NOW + timedelta(days=10)):
    return services.sync_run_until_idle(now=lambda: at)


def assert_ledger_balanced(connection):
    totals = JournalLine.objects.filter(entry__connection=connection).aggregate(
        debit=Sum("debit"), credit=Sum("credit")
    )
    assert totals["debit"] == totals["credit"]


# --- job item costs ---------------------------------------------------------------------------


def test_a_job_item_cost_posts_as_a_balanced_journal_coded_by_the_rules(books):
    result = ingest_costs(books, job_items(ITEM, LABOR))
    assert result.errors == [] and len(result.accepted) == 2
    post_due()
    part, labor = (SyncRecord.objects.get(idempotency_key=f"ST-JC-{n}") for n in (88001, 88002))
    assert part.state == SyncState.POSTED and labor.state == SyncState.POSTED
    lines = {(line.account.number, line.debit, line.credit, tuple(sorted(line.dimensions.items())))
             for line in JournalLine.objects.filter(entry__posting__external_document_number=
                                                    "ST-JC-88001")}  # fmt: skip
    dims = (("BRANCH", "RAL"), ("DEPARTMENT", "HVAC"))
    assert lines == {("1400", Decimal("122.25"), Decimal("0.00"), dims),
                     ("1300", Decimal("0.00"), Decimal("122.25"), dims)}  # fmt: skip
    labor_lines = JournalLine.objects.filter(entry__posting__external_document_number="ST-JC-88002")
    assert {(line.account.number, line.debit + line.credit) for line in labor_lines} == {
        ("1400", Decimal("143.85")), ("2150", Decimal("143.85"))}  # fmt: skip
    assert part.plan["pairs"][0]["reason"].startswith("account 1400 from routing rule 2")
    assert labor.plan["pairs"][0]["reason"] == (
        "account 1400 from the default cost account; offset 2150 from the item-type map (labor)"
    )
    assert_ledger_balanced(books)


def test_the_same_job_items_twice_create_nothing_new(books):
    ingest_costs(books, job_items(ITEM, LABOR))
    post_due()
    again = ingest_costs(books, job_items(ITEM, LABOR))
    post_due()
    assert again.accepted == [] and again.unchanged == 2
    assert LedgerPosting.objects.filter(connection=books).count() == 2


def test_a_lost_answer_is_found_by_its_key_and_never_posted_twice(books):
    ingest_costs(books, job_items(ITEM))
    post_due()
    record = SyncRecord.objects.get()
    # The ERP took it but the answer was lost: the record looks uncertain and is tried again.
    SyncRecord.objects.filter(pk=record.pk).update(state=SyncState.UNCERTAIN, erp_document_id="",
                                                   next_attempt_at=NOW)  # fmt: skip
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert record.events.last().data["found_by_lookup"] is True
    assert LedgerPosting.objects.filter(connection=books).count() == 1


def test_a_job_cost_without_a_cost_account_is_blocked_naming_what_to_set(connection):
    ingest_costs(connection, job_items(ITEM))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.BLOCKED
    assert "No job cost account is configured" in record.message


def test_job_item_errors_name_the_field_and_the_good_items_still_go_in(books):
    bad = copy.deepcopy(ITEM)
    bad.update(id=88003, quantity="lots", libItem={"type": "gadget"})
    del bad["job"]["number"]
    result = ingest_costs(books, job_items(ITEM, bad))
    assert len(result.accepted) == 1
    assert result.errors == [
        "job item 2 of 2: data.libItem.type: 'gadget' is not one of labor, part, other",
        'job item 2 of 2: data.quantity: expected a number, got "lots"',
        "job item 2 of 2: data.job.number: required",
    ]
    assert result.receipt.outcome == SourceReceipt.Outcome.PARTLY_ACCEPTED


def test_job_items_from_the_api_are_ingested_when_they_carry_a_cost(books):
    items = [ITEM, {**LABOR, "cost": None}]
    result = services.job_costs_from_api(connection=books, items=items, now=NOW)
    assert [r.idempotency_key for r in result.accepted] == ["ST-JC-88001"]
    assert result.receipt.channel == SourceReceipt.Channel.API


# --- procurement ------------------------------------------------------------------------------


def test_a_purchase_invoice_debits_each_line_and_credits_payables_to_the_cent(books):
    result = ingest_procurement(books, PROCUREMENT)
    assert result.errors == []
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert record.state == SyncState.POSTED and record.idempotency_key == "ST-PI-PI-5531"
    posting = LedgerPosting.objects.get(external_document_number="ST-PI-PI-5531")
    assert posting.amount == Decimal("433.26") == record.document.total
    assert (posting.vendor.name, posting.vendor_document_number) == ("Ferguson Supply",
                                                                     "INV-5531")  # fmt: skip
    lines = sorted((line.account.number, line.debit, line.credit)
                   for line in posting.journal_entry.lines.all())  # fmt: skip
    assert lines == [("1300", Decimal("122.25"), Decimal("0.00")),
                     ("2100", Decimal("0.00"), Decimal("433.26")),
                     ("5100", Decimal("1.00"), Decimal("0.00")),
                     ("5100", Decimal("310.01"), Decimal("0.00"))]  # fmt: skip
    assert_ledger_balanced(books)


def test_orders_receipts_and_vendors_are_kept_and_say_why_they_are_not_posted(books):
    ingest_procurement(books, PROCUREMENT)
    post_due()
    states = dict(SyncRecord.objects.values_list("document__kind", "state"))
    assert states == {
        DocumentKind.VENDOR: SyncState.SKIPPED, DocumentKind.PURCHASE_ORDER: SyncState.SKIPPED,
        DocumentKind.RECEIPT: SyncState.SKIPPED, DocumentKind.PURCHASE_INVOICE: SyncState.POSTED,
        DocumentKind.INVENTORY_ADJUSTMENT: SyncState.POSTED,
    }  # fmt: skip
    order = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_ORDER)
    # The sandbox ledger keeps no orders; Business Central connections post them.
    assert "its ERP keeps no purchase orders" in order.message


def test_an_inventory_adjustment_moves_stock_against_the_adjustment_account(books):
    ingest_procurement(books, PROCUREMENT)
    post_due()
    posting = LedgerPosting.objects.get(external_document_number="ST-IA-IA-3")
    lines = sorted((line.account.number, line.debit, line.credit)
                   for line in posting.journal_entry.lines.all())  # fmt: skip
    assert lines == [("1300", Decimal("0.00"), Decimal("61.13")),
                     ("1300", Decimal("10.00"), Decimal("0.00")),
                     ("5020", Decimal("0.00"), Decimal("10.00")),
                     ("5020", Decimal("61.13"), Decimal("0.00"))]  # fmt: skip


def test_the_same_procurement_file_twice_creates_nothing_new(books):
    ingest_procurement(books, PROCUREMENT)
    post_due()
    again = ingest_procurement(books, PROCUREMENT)
    post_due()
    assert again.accepted == [] and again.unchanged == 5
    assert LedgerPosting.objects.filter(connection=books).count() == 2
    assert LedgerVendor.objects.filter(connection=books).count() == 1


def test_a_purchase_invoice_of_a_vendor_never_imported_is_blocked_naming_the_vendor(books):
    data = {"purchaseInvoices": [{**PROCUREMENT["purchaseInvoices"][0], "vendorId": "V-404"}]}
    ingest_procurement(books, data)
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.BLOCKED
    assert record.failure_cause == "UNKNOWN_VENDOR:V-404"
    assert "Vendor V-404 is in no procurement import yet" in record.message


def test_importing_the_missing_vendor_sends_the_blocked_purchase_invoice_by_itself(books):
    data = {"purchaseInvoices": [{**PROCUREMENT["purchaseInvoices"][0], "vendorId": "V-404"}]}
    ingest_procurement(books, data)
    other = {**PROCUREMENT["purchaseInvoices"][0], "id": "PI-OTHER", "vendorId": "V-405"}
    ingest_procurement(books, {"purchaseInvoices": [other]})
    post_due()
    vendors = {"vendors": [{"id": "V-404", "number": "ACME", "name": "Acme Parts"}]}
    ingest_procurement(books, vendors, at=NOW + timedelta(minutes=5))
    waiting = SyncRecord.objects.get(document__source_id="PI-5531")
    assert waiting.state == SyncState.READY
    assert waiting.events.last().detail == "The vendor it waited for was imported: sending again."
    still_waiting = SyncRecord.objects.get(document__source_id="PI-OTHER")
    assert still_waiting.state == SyncState.BLOCKED  # V-405 is still missing
    post_due(NOW + timedelta(minutes=5))
    waiting.refresh_from_db()
    assert waiting.state == SyncState.POSTED
    assert LedgerPosting.objects.get().vendor.name == "Acme Parts"


def test_procurement_errors_name_the_list_the_row_and_the_field_and_the_rest_go_in(books):
    data = copy.deepcopy(PROCUREMENT)
    bad = copy.deepcopy(data["purchaseInvoices"][0])
    bad.update(id="PI-2", date="25/11/2026")
    del bad["vendorId"]
    bad["lines"][1]["quantity"] = "-2"
    bad["lines"][2]["unitCost"] = None
    data["purchaseInvoices"].append(bad)
    data["receipts"][0]["lines"] = []
    result = ingest_procurement(books, data)
    assert result.errors == [
        "receipts[0].lines: expected a non-empty list of lines",
        "purchaseInvoices[1].date: '25/11/2026' is not a date (YYYY-MM-DD)",
        "purchaseInvoices[1].vendorId: required",
        "purchaseInvoices[1].lines[1].quantity: -2 must be greater than zero",
        "purchaseInvoices[1].lines[2].unitCost: required",
    ]
    assert len(result.accepted) == 4


def test_an_unknown_list_is_named_and_nothing_is_guessed(books):
    result = ingest_procurement(books, {"bills": []})
    assert result.errors == [
        "bills: unknown list; known: vendors, purchaseOrders, receipts, purchaseInvoices, "
        "inventoryAdjustments"
    ]
    assert result.receipt.outcome == SourceReceipt.Outcome.REJECTED


def test_manage_py_ingest_takes_job_costs_and_procurement_files(books, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    costs, purchases = tmp_path / "items.json", tmp_path / "partsledger.json"
    costs.write_bytes(job_items(ITEM, LABOR))
    purchases.write_text(json.dumps(PROCUREMENT))
    out = StringIO()
    call_command("ingest", str(costs), kind="job-costs", stdout=out)
    call_command("ingest", str(purchases), kind="procurement", stdout=out)
    call_command("ingest", str(purchases), kind="procurement", stdout=out)
    assert out.getvalue().splitlines() == [
        "2 job item cost(s) accepted, 0 already up to date, 0 problem(s) found.",
        "5 procurement record(s) accepted, 0 already up to date, 0 problem(s) found.",
        "0 procurement record(s) accepted, 5 already up to date, 0 problem(s) found.",
    ]


def test_a_journal_the_erp_refuses_as_a_duplicate_is_not_looked_for_among_invoices(
    books, monkeypatch
):
    from syncengine.erps.base import ConnectorError, FailureCategory
    from syncengine.erps.sandbox.client import SandboxLedger

    def refuse(self, *, plan, key):
        raise ConnectorError(f"A posting with external document number {key} already exists.",
                             category=FailureCategory.DUPLICATE, transient=False)  # fmt: skip

    def no_invoice_lookup(self, *, key):
        raise AssertionError(f"looked for {key} among invoices")

    monkeypatch.setattr(SandboxLedger, "post_journal", refuse)
    monkeypatch.setattr(SandboxLedger, "find_invoice", no_invoice_lookup)
    ingest_costs(books, job_items(ITEM))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.FAILED
    assert record.failure_category == FailureCategory.DUPLICATE
    assert "already exists" in record.message
