"""`manage.py preview_posting` prints the exact requests a connector would send for a ServiceTrade
invoice file, for the sandbox ledger and for Business Central, and sends nothing."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mappings.catalog import catalog_refresh
from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import SyncRecord
from tests.conftest import NOW, invoice_data

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]


def invoice_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "invoice.json"
    path.write_text(json.dumps({"data": invoice_data(**changes)}))
    return path


def preview(slug: str, path: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("preview_posting", "--connection", slug, "--document", str(path), stdout=out,
                 stderr=err)  # fmt: skip
    return out.getvalue(), err.getvalue()


def test_the_sandbox_preview_shows_the_journal_it_would_post_and_posts_nothing(
    connection, tmp_path
):
    out, _ = preview("demo", invoice_file(tmp_path))
    assert out.startswith("Invoice 10482 (ServiceTrade 4242), total 414.74 USD, key ST-INV-4242")
    requests = json.loads(out.split(":\n", 1)[1])
    assert requests[1]["external_document_number"] == "ST-INV-4242"
    assert [line["account"] for line in requests[1]["lines"]] == [
        "1200",
        "4010",
        "4011",
        "4011",
        "2300",
    ]
    assert not LedgerInvoice.objects.exists() and not SyncRecord.objects.exists()


def test_the_business_central_preview_shows_the_batch_and_sends_nothing(fake_bc, tmp_path):
    fake_bc.seed_demo_books()
    connection = fake_bc.connection(slug="bc")
    from console import demo
    from mappings import services as mapping_services
    from mappings.catalog import catalog_store
    from mappings.models import RuleAudit
    from syncengine.erps.base import CatalogItem

    catalog_refresh(connection=connection, actor="test", now=NOW)
    catalog_store(connection=connection, actor="test", now=NOW,
                  items=[CatalogItem(kind="DEPARTMENT", code=code)
                         for code in demo.OFFICE_CODES.values()],
                  action=RuleAudit.Action.CATALOG_IMPORTED, kinds={"DEPARTMENT"})  # fmt: skip
    rules = demo.demo_rules()
    rules["maps"] = {kind: rows for kind, rows in rules["maps"].items()
                     if kind in ("SERVICE_LINE", "TAX_RATE", "OFFICE")}  # fmt: skip
    for row in rules["maps"]["SERVICE_LINE"].values():
        row.pop("cost_code")
    mapping_services.draft_replace(connection=connection, content=rules, actor="test", now=NOW,
                                   reason="BC")  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=demo.RULES_EFFECTIVE_FROM,
                                   reason="BC", actor="test", now=NOW)  # fmt: skip
    sent_before = len(fake_bc.sent)
    out, _ = preview("bc", invoice_file(tmp_path))
    assert len(fake_bc.sent) == sent_before and fake_bc.rows("salesInvoices") == []
    requests = json.loads(out.split(":\n", 1)[1])
    # look up the customer, create it, the invoice's batch, post it, read it back posted
    assert [request["method"] for request in requests] == ["GET", "POST", "POST", "POST", "GET"]
    batch = requests[2]["body"]["requests"]
    assert batch[0]["body"]["externalDocumentNumber"] == "ST-INV-4242"
    prices = [op["body"]["unitPrice"] for op in batch if op["url"] == "$1/salesInvoiceLines"]
    assert prices == [275, 129.99, 0.3, 9.45]  # exact JSON numbers, as Business Central gets them
    assert '"unitPrice": 129.99' in out


def test_a_blocked_invoice_prints_every_problem_and_fails(connection, tmp_path):
    items = [{"id": 1, "itemType": "labor", "quantity": "1", "price": "80",
              "serviceLine": {"name": "Backflow Testing"}},
             {"id": 2, "itemType": "part", "quantity": "1", "price": "80", "taxable": True,
              "serviceLine": {"name": "Elevators"}}]  # fmt: skip
    err = StringIO()
    with pytest.raises(CommandError, match="1 of 1 document"):
        call_command("preview_posting", "--document", str(invoice_file(tmp_path, items=items,
                     taxRate="6.75")), stderr=err)  # fmt: skip
    assert "Invoice 10482 (ServiceTrade 4242) is blocked:" in err.getvalue()
    assert err.getvalue().count("UNMAPPED_SERVICE_LINE") == 2
    assert "UNMAPPED_TAX_RATE" in err.getvalue()


def test_an_unreadable_file_is_refused_with_the_reason(connection, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="bad.json"):
        preview("demo", path)


def test_a_purchase_order_preview_for_the_sandbox_says_it_is_kept_not_posted(connection, tmp_path):
    from tests.test_costs_procurement import PROCUREMENT

    path = tmp_path / "partsledger.json"
    path.write_text(json.dumps({key: PROCUREMENT[key] for key in ("format", "purchaseOrders")}))
    out, _ = preview("demo", path)
    assert out.startswith("Purchase order 4411 (PartsLedger PO-4411): Purchase orders are kept, "
                          "not posted, for this connection")  # fmt: skip


def test_a_credit_previews_as_a_sandbox_credit_memo_under_its_credit_key(connection, tmp_path):
    from tests.test_document_flows import CREDIT

    out, _ = preview("demo", invoice_file(tmp_path, items=CREDIT, taxRate=0))
    assert ", key ST-CM-4242, " in out.splitlines()[0]
    _, memo = json.loads(out.split(":\n", 1)[1])
    assert memo["operation"] == "create credit memo and post its journal entry"
    assert (memo["external_document_number"], memo["amount"]) == ("ST-CM-4242", "211.00")
    assert not LedgerInvoice.objects.exists() and not SyncRecord.objects.exists()


def test_a_void_of_a_posted_invoice_says_it_is_credited_and_succeeds(connection, tmp_path):
    from syncengine import services
    from tests.conftest import envelope, ingest

    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    out, _ = preview("demo", invoice_file(tmp_path, status="void"))
    number = SyncRecord.objects.get().erp_document_number
    assert out == (
        f"Invoice 10482 (ServiceTrade 4242): A void of an invoice posted as {number}: "
        "it is credited in full under key ST-VOID-4242 by a credit memo the ERP builds "
        "from that document as it holds it, so there is nothing to show before then.\n"
    )


def test_a_mixed_sign_invoice_split_by_policy_previews_both_documents_on_a_redated_day(
    connection, tmp_path
):
    from tests.test_document_flows import MIXED

    connection.erp_settings = {
        **connection.erp_settings,
        "mixed_sign": "split",
        "closed_through": "2025-11-30",
        "closed_period_policy": "redate",
    }
    connection.save(update_fields=["erp_settings"])
    out, _ = preview("demo", invoice_file(tmp_path, items=MIXED))
    heading, rest = out.split(":\n", 1)
    requests, end = json.JSONDecoder().raw_decode(rest)
    keys = [r["external_document_number"] for r in requests if "external_document_number" in r]
    assert keys == ["ST-INV-4242-P", "ST-INV-4242-N"]
    assert [r["operation"] for r in requests][1::2] == [
        "create invoice and post its journal entry",
        "create credit memo and post its journal entry",
    ]
    assert {r["posting_date"] for r in requests if "posting_date" in r} == {"2025-12-01"}
    notes = rest[end:].strip().splitlines()
    assert notes[0].startswith("Note: Posting date moved from 2025-11-20 to 2025-12-01")
    assert notes[1] == (
        "Note: Split in two by the mixed_sign policy: ST-INV-4242-P (invoice) "
        "and ST-INV-4242-N (credit memo)."
    )
    assert not SyncRecord.objects.exists()
