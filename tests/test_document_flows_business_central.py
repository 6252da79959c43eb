"""Source credit memos and split mixed-sign invoices into the fake Business Central: sales credit
memos applied to no invoice, positive amounts, keys in externalDocumentNumber, never twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from syncengine import services
from syncengine.models import SyncRecord, SyncState
from syncengine.reconcile import reconciliation_run
from tests.conftest import NOW, envelope, ingest
from tests.test_business_central_engine import bc, connection  # noqa: F401
from tests.test_document_flows import CREDIT, MIXED

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def test_a_servicetrade_credit_posts_as_a_sales_credit_memo_of_positive_amounts(connection, bc):  # noqa: F811
    ingest(connection, envelope(items=CREDIT))
    assert post_due() == 1
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    [memo] = bc.rows("salesCreditMemos")
    assert not bc.rows("salesInvoices")
    assert (memo["externalDocumentNumber"], memo["status"], memo.get("invoiceId")) == (
        "ST-CM-4242", "Open", None,
    )  # fmt: skip
    assert memo["totalAmountIncludingTax"] == Decimal("217.60")
    assert (record.erp_document_id, record.erp_document_number) == (memo["id"], memo["number"])
    lines = bc.rows("salesCreditMemoLines", documentId=memo["id"])
    assert all(line["amountIncludingTax"] > 0 for line in lines)
    run = reconciliation_run(connection=connection, actor="test", now=NOW)
    assert run.counts == {} and run.difference == Decimal("0.00")


def test_a_credit_memo_whose_answer_was_lost_is_found_in_business_central_by_its_key(
    connection,  # noqa: F811
    bc,  # noqa: F811
):
    connection.erp_settings["timeout_seconds"] = 0.5
    connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest(connection, envelope(items=CREDIT))
    post_due()
    assert SyncRecord.objects.get().state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(hours=1))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert len(bc.rows("salesCreditMemos")) == 1


def test_a_split_mixed_sign_invoice_becomes_an_invoice_and_a_credit_memo_in_business_central(
    connection,  # noqa: F811
    bc,  # noqa: F811
):
    connection.erp_settings["mixed_sign"] = "split"
    connection.save(update_fields=["erp_settings"])
    ingest(connection, envelope(items=MIXED))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    [invoice] = bc.rows("salesInvoices")
    [memo] = bc.rows("salesCreditMemos")
    assert (invoice["externalDocumentNumber"], memo["externalDocumentNumber"]) == (
        "ST-INV-4242-P", "ST-INV-4242-N",
    )  # fmt: skip
    assert (invoice["totalAmountIncludingTax"], memo["totalAmountIncludingTax"]) == (
        Decimal("307.24"), Decimal("50.77"),
    )  # fmt: skip
    assert invoice["totalAmountIncludingTax"] - memo["totalAmountIncludingTax"] == Decimal("256.47")
    run = reconciliation_run(connection=connection, actor="test", now=NOW)
    assert run.counts == {} and run.difference == Decimal("0.00")


def test_a_void_of_a_split_posting_offsets_both_business_central_documents(
    connection,  # noqa: F811
    bc,  # noqa: F811
):
    connection.erp_settings["mixed_sign"] = "split"
    connection.save(update_fields=["erp_settings"])
    ingest(connection, envelope(items=MIXED))
    post_due()
    ingest(connection, envelope(items=MIXED, status="void"), now=NOW + timedelta(days=1))
    post_due(NOW + timedelta(days=1))
    assert {record.state for record in SyncRecord.objects.all()} == {SyncState.POSTED}
    invoices = {row["externalDocumentNumber"]: row for row in bc.rows("salesInvoices")}
    memos = {row["externalDocumentNumber"]: row for row in bc.rows("salesCreditMemos")}
    assert set(invoices) == {"ST-INV-4242-P", "ST-VOID-4242-N"}
    assert set(memos) == {"ST-INV-4242-N", "ST-VOID-4242-P"}
    assert memos["ST-VOID-4242-P"]["invoiceId"] == invoices["ST-INV-4242-P"]["id"]
    assert invoices["ST-INV-4242-P"]["remainingAmount"] == Decimal("0.00")
    assert (invoices["ST-VOID-4242-N"]["totalAmountIncludingTax"]
            == memos["ST-INV-4242-N"]["totalAmountIncludingTax"] == Decimal("50.77"))  # fmt: skip
    run = reconciliation_run(connection=connection, actor="test", now=NOW + timedelta(days=1))
    assert run.counts == {} and run.erp_credit_total == Decimal("256.47")


def test_a_void_of_an_invoice_in_a_foreign_currency_is_credited_in_that_currency(
    connection,  # noqa: F811
    bc,  # noqa: F811
):
    connection.currency = "CAD"  # ServiceTrade bills in CAD; the company's books are in USD
    connection.save(update_fields=["currency"])
    ingest(connection, envelope())
    post_due()
    ingest(connection, envelope(status="void"), now=NOW + timedelta(days=1))
    post_due(NOW + timedelta(days=1))
    assert {record.state for record in SyncRecord.objects.all()} == {SyncState.POSTED}
    [invoice], [memo] = bc.rows("salesInvoices"), bc.rows("salesCreditMemos")
    assert (invoice["currencyCode"], memo["currencyCode"]) == ("CAD", "CAD")
    assert memo["invoiceId"] == invoice["id"] and invoice["remainingAmount"] == Decimal("0.00")
    run = reconciliation_run(connection=connection, actor="test", now=NOW + timedelta(days=1))
    assert run.counts == {} and run.difference == Decimal("0.00")
