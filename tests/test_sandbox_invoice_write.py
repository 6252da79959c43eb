"""The sandbox ledger writes an invoice, its journal entry and lines as one document: numbered,
balanced, all or nothing — on PostgreSQL in one round trip, on SQLite through the ORM."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from mappings.resolve import Coding, InvoicePlan, PlanLine
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.models import JournalEntry, JournalLine, LedgerInvoice, NumberSeries

pytestmark = pytest.mark.django_db


def plan(**changes) -> InvoicePlan:
    values = {
        "document_number": "10482", "posting_date": date(2026, 11, 20), "currency": "USD",
        "customer_ref": "501", "customer_name": "Harbor Foods", "receivable_account": "1200",
        "receivable_reason": "default", "total": Decimal("414.74"),
        "lines": (
            PlanLine("4010", Decimal("275.00"), "HVAC labor", "r", "", "1", "labor",
                     {"dimension:DEPARTMENT": Coding("HVAC", "r")}),
            PlanLine("4011", Decimal("130.29"), "Thermostat and filters", "r", "", "2", "part"),
            PlanLine("2300", Decimal("9.45"), "Sales tax 7.25%", "r", "NC-7.25", "", "tax"),
        ),
    }  # fmt: skip
    values.update(changes)
    return InvoicePlan(**values)


def lines_of(entry: JournalEntry) -> list[tuple[str, str, str, str, str, dict]]:
    return [
        (line.account.number, str(line.debit), str(line.credit), line.description,
         line.tax_code, line.dimensions)
        for line in entry.lines.select_related("account").order_by("pk")
    ]  # fmt: skip


def test_an_invoice_is_written_with_its_numbers_a_posted_balanced_entry_and_every_line(
    connection,
):
    document = SandboxLedger(connection=connection).post_invoice(plan=plan(), key="ST-INV-1")
    invoice = LedgerInvoice.objects.select_related("journal_entry", "customer").get()
    assert (document.id, document.number) == (str(invoice.pk), "SI-000001")
    assert invoice.kind == LedgerInvoice.Kind.INVOICE and invoice.amount == Decimal("414.74")
    assert (invoice.customer.source_ref, invoice.currency) == ("501", "USD")
    assert invoice.posting_date == date(2026, 11, 20) and invoice.created_at is not None
    entry = invoice.journal_entry
    assert (entry.number, entry.state, entry.external_document_number) == (
        "JE-000001", JournalEntry.State.POSTED, "ST-INV-1"
    )  # fmt: skip
    assert entry.memo == "Invoice 10482 Harbor Foods" and entry.created_at is not None
    assert lines_of(entry) == [
        ("1200", "414.74", "0.00", "Invoice 10482", "", {}),
        ("4010", "0.00", "275.00", "HVAC labor", "", {"DEPARTMENT": "HVAC"}),
        ("4011", "0.00", "130.29", "Thermostat and filters", "", {}),
        ("2300", "0.00", "9.45", "Sales tax 7.25%", "NC-7.25", {}),
    ]


def test_a_source_credit_memo_is_written_with_its_own_series_and_a_positive_amount(connection):
    credit = plan(total=Decimal("-100.00"),
                  lines=(PlanLine("4010", Decimal("-100.00"), "Refund", "r"),))  # fmt: skip
    document = SandboxLedger(connection=connection).post_source_credit_memo(plan=credit, key="K")
    memo = LedgerInvoice.objects.get()
    assert document.number == "CM-000001"
    assert (memo.kind, memo.amount) == (LedgerInvoice.Kind.CREDIT_MEMO, Decimal("100.00"))
    assert memo.journal_entry.memo == "Credit memo 10482 Harbor Foods"
    assert lines_of(memo.journal_entry) == [
        ("1200", "0.00", "100.00", "Invoice 10482", "", {}),
        ("4010", "100.00", "0.00", "Refund", "", {}),
    ]


def test_numbers_keep_counting_past_six_digits(connection):
    ledger = SandboxLedger(connection=connection)
    ledger.post_invoice(plan=plan(), key="K-1")
    NumberSeries.objects.filter(connection=connection).update(last_value=999999)
    document = ledger.post_invoice(plan=plan(), key="K-2")
    assert document.number == "SI-1000000"
    assert LedgerInvoice.objects.get(pk=document.id).journal_entry.number == "JE-1000000"


def test_an_unbalanced_invoice_is_refused_whole_and_uses_up_no_number(connection):
    ledger = SandboxLedger(connection=connection)
    lopsided = plan(total=Decimal("414.75"))  # a cent more receivable than revenue and tax
    refusal = failure(lambda: ledger.post_invoice(plan=lopsided, key="K-1"))
    assert refusal.category == FailureCategory.VALUE and not refusal.transient
    assert "does not balance" in refusal.message
    assert not LedgerInvoice.objects.exists()
    assert not JournalEntry.objects.exists() and not JournalLine.objects.exists()
    assert ledger.post_invoice(plan=plan(), key="K-1").number == "SI-000001"


def test_a_refused_write_forgets_the_connections_remembered_ids_so_a_stale_one_heals(
    connection,
):
    from syncengine.erps.sandbox import client

    ledger = SandboxLedger(connection=connection)
    ledger.post_invoice(plan=plan(), key="K-1")
    ledger.post_invoice(plan=plan(), key="K-2")  # the customer is read back and remembered
    assert (connection.pk, "1200") in client._ACCOUNT_IDS
    assert (connection.pk, "501") in client._CUSTOMER_IDS
    failure(lambda: ledger.post_invoice(plan=plan(total=Decimal("1.00")), key="K-3"))
    assert not any(pair[0] == connection.pk for pair in client._ACCOUNT_IDS)
    assert not any(pair[0] == connection.pk for pair in client._CUSTOMER_IDS)
    assert ledger.post_invoice(plan=plan(), key="K-3").number == "SI-000003"


def test_a_second_invoice_under_one_key_is_refused_as_a_duplicate_and_leaves_the_first(
    connection,
):
    ledger = SandboxLedger(connection=connection)
    first = ledger.post_invoice(plan=plan(), key="K-1")
    refusal = failure(lambda: ledger.post_invoice(plan=plan(), key="K-1"))
    assert refusal.category == FailureCategory.DUPLICATE
    assert list(LedgerInvoice.objects.values_list("number", flat=True)) == [first.number]
    assert JournalEntry.objects.count() == 1


def test_an_unknown_account_is_a_missing_reference_and_writes_nothing(connection):
    ledger = SandboxLedger(connection=connection)
    unknown = plan(lines=(PlanLine("9999", Decimal("414.74"), "Nowhere", "r"),))
    refusal = failure(lambda: ledger.post_invoice(plan=unknown, key="K-1"))
    assert refusal.category == FailureCategory.MISSING_REFERENCE
    assert not JournalEntry.objects.exists()


def test_a_connections_first_invoice_creates_its_series_without_using_up_another_number(
    connection,
):
    NumberSeries.objects.filter(connection=connection, prefix__in=["JE", "SI"]).delete()
    NumberSeries.objects.create(connection=connection, prefix="JE", last_value=5)
    document = SandboxLedger(connection=connection).post_invoice(plan=plan(), key="K-1")
    assert document.number == "SI-000001"
    assert LedgerInvoice.objects.get().journal_entry.number == "JE-000006"
    assert JournalEntry.objects.count() == 1


@pytest.mark.skipif(
    db.vendor != "postgresql",
    reason="only PostgreSQL writes an invoice in one call outside a transaction; SQLite's "
    "ORM path opens its own, as the other tests here show",
)
@pytest.mark.django_db(transaction=True)
def test_outside_any_transaction_a_refused_invoice_leaves_nothing_and_the_next_one_posts(
    connection,
):
    # As workers call it: no transaction open, the write is a transaction of its own.
    ledger = SandboxLedger(connection=connection)
    refusal = failure(lambda: ledger.post_invoice(plan=plan(total=Decimal("1.00")), key="K-1"))
    assert "does not balance" in refusal.message
    assert not JournalEntry.objects.exists() and not LedgerInvoice.objects.exists()
    assert ledger.post_invoice(plan=plan(), key="K-1").number == "SI-000001"
    assert JournalEntry.objects.get().state == JournalEntry.State.POSTED


def test_once_its_customer_is_known_an_invoice_is_written_with_no_look_up(connection):
    ledger = SandboxLedger(connection=connection)
    ledger.post_invoice(plan=plan(), key="K-1")  # creates the customer and the series
    ledger.post_invoice(plan=plan(), key="K-2")  # reads the committed customer back
    # The customer's and the accounts' ids are remembered. On PostgreSQL the write and the
    # posting are one call of the ledger's function, inside the savepoint the test's transaction
    # needs around it; SQLite writes through the ORM: savepoint, numbers, entry, lines, posting,
    # invoice, release.
    with CaptureQueriesContext(db) as queries:
        ledger.post_invoice(plan=plan(), key="K-3")
    assert LedgerInvoice.objects.count() == 3
    sent = [query["sql"] for query in queries.captured_queries]
    if db.vendor == "postgresql":
        assert len(sent) == 3 and sent[0].startswith("SAVEPOINT") and "RELEASE" in sent[2]
        assert "FROM sandbox_invoice_write(" in sent[1]
    else:
        assert len(sent) == 7


def failure(call) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        call()
    return caught.value
