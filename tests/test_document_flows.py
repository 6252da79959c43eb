"""Source credit memos and mixed-sign invoices into the sandbox ledger: a credit issued in
ServiceTrade posts as a credit memo under its own key; a mixed-sign invoice posts as one document
or, by the connection's policy, as an invoice and a credit memo that sum to it to the cent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from console import demo
from mappings import services as mapping_services
from syncengine import services
from syncengine.canonical import invoice_from_dict
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.models import JournalLine, LedgerInvoice
from syncengine.models import Operation, SyncRecord, SyncState
from syncengine.plans import PostingPolicy, apportion_tax, part_key
from syncengine.reconcile import reconciliation_run
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db
LATER = NOW + timedelta(days=2)

CREDIT = [
    {"id": 1, "itemType": "labor", "quantity": "-1", "price": "120.00", "taxable": False},
    {"id": 2, "itemType": "part", "quantity": "-2", "price": "45.50"},
]  # -120.00 - 91.00 = -211.00; tax 7.25 % of -91.00 = -6.5975 → -6.60; total -217.60
MIXED = [
    {"id": 1, "itemType": "labor", "quantity": "2", "price": "100.00", "taxable": False},
    {"id": 2, "itemType": "part", "quantity": "3", "price": "33.33"},
    {"id": 3, "itemType": "part", "quantity": "1", "price": "-12.34", "description": "Return"},
    {"id": 4, "itemType": "other", "quantity": "1", "price": "-35.00", "description": "Discount"},
]  # 200.00 + 99.99 - 12.34 - 35.00 = 252.65; taxable 99.99 - 12.34 - 35.00 = 52.65
# tax 7.25 % of 52.65 = 3.817125 → 3.82; total 256.47


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def split_policy(connection):
    connection.erp_settings = {**connection.erp_settings, "mixed_sign": "split"}
    connection.save(update_fields=["erp_settings"])


def journal_balances(invoice):
    return JournalLine.objects.filter(entry=invoice.journal_entry).aggregate(
        debit=Sum("debit"), credit=Sum("credit")
    )


# --- source credit memos ------------------------------------------------------------------------


def test_a_credit_issued_in_servicetrade_posts_as_a_credit_memo_with_its_own_key(connection):
    ingest(connection, envelope(items=CREDIT))
    assert post_due() == 1
    record = SyncRecord.objects.get()
    assert (record.state, record.idempotency_key) == (SyncState.POSTED, "ST-CM-4242")
    memo = LedgerInvoice.objects.get()
    assert (memo.kind, memo.amount, memo.applies_to) == (
        LedgerInvoice.Kind.CREDIT_MEMO, Decimal("217.60"), None,
    )  # fmt: skip
    assert memo.external_document_number == "ST-CM-4242" and memo.number.startswith("CM-")
    assert record.erp_document_number == memo.number
    lines = JournalLine.objects.filter(entry=memo.journal_entry)
    # coded by the same rules, the sides turned: revenue and tax debited, receivable credited
    assert lines.get(account__number="1200").credit == Decimal("217.60")
    assert lines.get(account__number="4010").debit == Decimal("120.00")
    assert lines.get(account__number="4011").debit == Decimal("91.00")
    assert lines.get(account__number="2300").debit == Decimal("6.60")
    assert journal_balances(memo) == {"debit": Decimal("217.60"), "credit": Decimal("217.60")}


def test_a_credit_memo_is_routed_by_rules_that_name_the_credit_memo_document_kind(connection):
    rules = demo.demo_rules()
    rules["routing"].append({"id": 2, "conditions": {"document_kind": "credit_memo"},
                             "account": "4060", "priority": 5, "note": "credits"})  # fmt: skip
    mapping_services.draft_replace(connection=connection, content=rules, actor="test", now=NOW,
                                   reason="Credits to their own account")  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=demo.RULES_EFFECTIVE_FROM,
                                   reason="Credits", actor="test", now=NOW)  # fmt: skip
    ingest(connection, envelope(items=CREDIT))
    ingest(connection, envelope(id=4243, invoiceNumber="10483"))
    post_due()
    memo = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.CREDIT_MEMO)
    invoice = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.INVOICE)
    lines = JournalLine.objects.filter(entry=memo.journal_entry)
    # the labor credit goes to the credit memo account; the more specific HVAC-parts rule still
    # routes the returned part
    assert lines.get(account__number="4060").debit == Decimal("120.00")
    assert lines.get(account__number="4011").debit == Decimal("91.00")
    assert not JournalLine.objects.filter(entry=invoice.journal_entry, account__number="4060")


def test_an_invoice_edited_into_a_credit_before_it_posts_takes_the_credit_memo_key(connection):
    ingest(connection, envelope())
    ingest(connection, envelope(items=CREDIT), now=NOW + timedelta(minutes=1))
    record = SyncRecord.objects.get()
    assert record.idempotency_key == "ST-CM-4242"
    post_due(NOW + timedelta(minutes=2))
    assert LedgerInvoice.objects.get().kind == LedgerInvoice.Kind.CREDIT_MEMO


def test_a_credit_memo_whose_answer_was_lost_is_found_by_its_key_and_not_created_again(
    connection, monkeypatch
):
    real = SandboxLedger.post_source_credit_memo

    def lost_answer(self, *, plan, key):
        real(self, plan=plan, key=key)
        raise ConnectorError("Timed out after sending.", category=FailureCategory.CONNECTION,
                             transient=True, outcome_unknown=True)  # fmt: skip

    monkeypatch.setattr(SandboxLedger, "post_source_credit_memo", lost_answer)
    ingest(connection, envelope(items=CREDIT))
    post_due()
    assert SyncRecord.objects.get().state == SyncState.UNCERTAIN
    monkeypatch.undo()
    post_due(NOW + timedelta(hours=1))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert LedgerInvoice.objects.count() == 1
    assert record.events.last().data["found_by_lookup"] is True


def test_a_void_of_a_posted_credit_memo_is_recognised_and_skipped(connection):
    ingest(connection, envelope(items=CREDIT))
    post_due()
    ingest(connection, envelope(items=CREDIT, status="void"), now=LATER)
    post_due(LATER)
    assert not SyncRecord.objects.filter(operation=Operation.VOID_CREDIT_MEMO).exists()
    assert LedgerInvoice.objects.count() == 1
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert record.events.last().detail.startswith("Void of a credit memo: recognised and skipped")


def test_reconciliation_counts_a_credit_memo_against_its_negative_source_total(connection):
    ingest(connection, envelope())  # 414.74
    ingest(connection, envelope(id=4243, invoiceNumber="10483", items=CREDIT))  # -217.60
    post_due()
    run = reconciliation_run(connection=connection, actor="test", now=LATER)
    assert run.counts == {}
    assert run.posted_source_total == run.erp_invoice_total == Decimal("197.14")
    assert run.difference == Decimal("0.00")


# --- mixed-sign invoices ------------------------------------------------------------------------


def test_a_mixed_sign_invoice_posts_as_one_document_by_default(connection):
    ingest(connection, envelope(items=MIXED))
    post_due()
    invoice = LedgerInvoice.objects.get()
    assert (invoice.kind, invoice.amount) == (LedgerInvoice.Kind.INVOICE, Decimal("256.47"))
    assert invoice.external_document_number == "ST-INV-4242"


def test_a_split_mixed_sign_invoice_posts_an_invoice_and_a_credit_memo_that_sum_to_it(connection):
    split_policy(connection)
    ingest(connection, envelope(items=MIXED))
    assert post_due() == 1
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    invoice = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.INVOICE)
    memo = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.CREDIT_MEMO)
    assert (invoice.external_document_number, memo.external_document_number) == (
        "ST-INV-4242-P", "ST-INV-4242-N",
    )  # fmt: skip
    # tax: 3.82 × 99.99 / 52.65 = 7.2546… → 7.25 on the invoice; 3.82 - 7.25 = -3.43 credited
    assert (invoice.amount, memo.amount) == (Decimal("307.24"), Decimal("50.77"))
    assert invoice.amount - memo.amount == record.document.total == Decimal("256.47")
    tax = JournalLine.objects.filter(account__number="2300")
    assert tax.get(entry=invoice.journal_entry).credit == Decimal("7.25")
    assert tax.get(entry=memo.journal_entry).debit == Decimal("3.43")
    assert record.erp_document_number == f"{invoice.number} + {memo.number}"
    assert [part["key"] for part in record.plan["parts"]] == ["ST-INV-4242-P", "ST-INV-4242-N"]
    run = reconciliation_run(connection=connection, actor="test", now=LATER)
    assert run.counts == {} and run.difference == Decimal("0.00")


def test_a_split_whose_credit_part_failed_posts_only_the_missing_part_on_retry(
    connection, monkeypatch
):
    split_policy(connection)

    def refused(self, *, plan, key):
        raise ConnectorError("HTTP 503", category=FailureCategory.CONNECTION, transient=True)

    monkeypatch.setattr(SandboxLedger, "post_source_credit_memo", refused)
    ingest(connection, envelope(items=MIXED))
    post_due()
    assert SyncRecord.objects.get().state == SyncState.RETRY_SCHEDULED
    assert LedgerInvoice.objects.count() == 1
    monkeypatch.undo()
    post_due(NOW + timedelta(hours=1))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert sorted(LedgerInvoice.objects.values_list("external_document_number", flat=True)) == [
        "ST-INV-4242-N", "ST-INV-4242-P",
    ]  # fmt: skip
    assert [part["found_by_lookup"] for part in record.plan["parts"]] == [True, False]


def test_an_invoice_with_lines_of_one_sign_is_not_split(connection):
    split_policy(connection)
    ingest(connection, envelope())
    ingest(connection, envelope(id=4243, invoiceNumber="10483", items=CREDIT))
    post_due()
    keys = LedgerInvoice.objects.values_list("external_document_number", "kind")
    assert sorted(keys) == [("ST-CM-4243", "CREDIT_MEMO"), ("ST-INV-4242", "INVOICE")]


def test_a_void_of_a_split_posting_offsets_both_parts_exactly(connection):
    split_policy(connection)
    ingest(connection, envelope(items=MIXED))
    post_due()
    ingest(connection, envelope(items=MIXED, status="void"), now=LATER)
    post_due(LATER)
    void = SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)
    assert void.state == SyncState.POSTED
    part_invoice = LedgerInvoice.objects.get(external_document_number="ST-INV-4242-P")
    part_memo = LedgerInvoice.objects.get(external_document_number="ST-INV-4242-N")
    credit = LedgerInvoice.objects.get(external_document_number="ST-VOID-4242-P")
    reversal = LedgerInvoice.objects.get(external_document_number="ST-VOID-4242-N")
    # The invoice part is credited in full, applied to it; the credit memo part is reversed by an
    # invoice of its amount: together they take the posted 256.47 out to the cent.
    assert (credit.kind, credit.applies_to, credit.amount) == (
        LedgerInvoice.Kind.CREDIT_MEMO, part_invoice, part_invoice.amount,
    )  # fmt: skip
    assert (reversal.kind, reversal.amount) == (LedgerInvoice.Kind.INVOICE, part_memo.amount)
    assert credit.amount - reversal.amount == Decimal("256.47")
    for account in ("1200", "2300", "4010"):
        lines = JournalLine.objects.filter(account__number=account)
        assert sum(line.debit - line.credit for line in lines) == Decimal("0.00"), account
    assert void.erp_document_number == f"{credit.number} + {reversal.number}"
    run = reconciliation_run(connection=connection, actor="test", now=LATER)
    assert run.counts == {} and run.erp_credit_total == Decimal("256.47")


def test_a_split_void_whose_reversal_failed_posts_only_the_missing_part_on_retry(
    connection, monkeypatch
):
    split_policy(connection)
    ingest(connection, envelope(items=MIXED))
    post_due()

    def refused(self, *, plan, key):
        raise ConnectorError("HTTP 503", category=FailureCategory.CONNECTION, transient=True)

    monkeypatch.setattr(SandboxLedger, "post_invoice", refused)
    ingest(connection, envelope(items=MIXED, status="void"), now=LATER)
    post_due(LATER)
    void = SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)
    assert void.state == SyncState.RETRY_SCHEDULED
    monkeypatch.undo()
    post_due(LATER + timedelta(hours=1))
    void.refresh_from_db()
    assert void.state == SyncState.POSTED
    keys = LedgerInvoice.objects.values_list("external_document_number", flat=True)
    assert sorted(key for key in keys if key.startswith("ST-VOID")) == [
        "ST-VOID-4242-N", "ST-VOID-4242-P",
    ]  # fmt: skip


def test_an_unreadable_mixed_sign_policy_blocks_the_record_naming_the_setting(connection):
    connection.erp_settings = {"mixed_sign": "halves"}
    connection.save(update_fields=["erp_settings"])
    ingest(connection, envelope(items=MIXED))
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.BLOCKED, "BAD_POLICY")
    assert "mixed_sign must be 'one_document' or 'split', not 'halves'" in record.message
    assert not LedgerInvoice.objects.exists()


@pytest.mark.parametrize(
    ("prices", "tax_rate"),
    [
        (["100.00", "-100.00"], "7.25"),  # nets to zero: shared by the rate
        (["0.01", "-0.02"], "10"),
        (["999.99", "-0.01", "-333.33"], "7.25"),
        (["0.05", "-0.04", "-0.03"], "7.25"),
        (["19.99", "-5.00"], "0"),
    ],
)
def test_split_parts_always_sum_to_the_original_to_the_cent(prices, tax_rate, connection):
    split_policy(connection)
    items = [{"id": index, "itemType": "part", "quantity": "1", "price": price}
             for index, price in enumerate(prices)]  # fmt: skip
    ingest(connection, envelope(items=items, taxRate=tax_rate))
    post_due()
    record = SyncRecord.objects.get()
    invoice = invoice_from_dict(record.document.canonical)
    positive_tax = apportion_tax(invoice.tax_amount, invoice)
    assert positive_tax == positive_tax.quantize(Decimal("0.01"))
    documents = LedgerInvoice.objects.all()
    signed = sum(
        (
            doc.amount if doc.kind == LedgerInvoice.Kind.INVOICE else -doc.amount
            for doc in documents
        ),
        Decimal("0.00"),
    )
    assert record.state == SyncState.POSTED and signed == invoice.total
    for document in documents:
        balance = journal_balances(document)
        assert balance["debit"] == balance["credit"] == document.amount


def test_a_part_key_stays_within_35_characters_and_apart_from_its_neighbours():
    long_a, long_b = services.invoice_key("9" * 40), services.invoice_key("9" * 39 + "8")
    keys = {part_key(key, suffix) for key in (long_a, long_b) for suffix in "PN"}
    assert len(keys) == 4 and all(len(key) <= 35 for key in keys)
    assert part_key("ST-INV-4242", "P") == "ST-INV-4242-P"


def test_the_posting_policy_names_every_unreadable_setting(connection):
    connection.erp_settings = {"closed_through": "last month", "closed_period_policy": "wait",
                               "closed_periods": {"2025-02-01": "2025-01-01"}}  # fmt: skip
    with pytest.raises(ValueError) as raised:
        PostingPolicy.of(connection)
    assert len(raised.value.errors) == 3  # type: ignore[attr-defined]
