"""Payments applied in the ERP back to ServiceTrade: the sandbox ledger's payments and
reversals, the service that sums them per posted invoice and tells ServiceTrade once per change,
and Business Central's customer payments read page by page (against the fakes, real database)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from console import demo
from mappings import services as rules
from mappings.catalog import catalog_refresh, catalog_store
from mappings.models import RuleAudit
from paymentsync.models import AppliedPayment, InvoicePayment, PaymentCursor, PaymentStatus
from syncengine import payments, services
from syncengine.erps.base import CatalogItem, ErpPayment
from syncengine.erps.business_central.client import BusinessCentral
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.models import JournalEntry, LedgerInvoice, LedgerPayment
from syncengine.erps.sandbox.payments import PaymentRefused, ledger_payment_record
from syncengine.models import SyncEvent, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest
from tests.fakes.servicetrade import st_connection

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade", "tests.fakes.business_central"]

TOTAL = Decimal("414.74")  # BASE_INVOICE's total


def posted(connection, invoice_id=4242):
    ingest(connection, envelope(id=invoice_id, invoiceNumber=str(invoice_id)))
    services.sync_run_until_idle(now=lambda: NOW)
    record = SyncRecord.objects.get(connection=connection, document__source_id=str(invoice_id))
    assert record.state == SyncState.POSTED
    return record


def pay(connection, record, amount, *, reverse=False, reason="", at=NOW):
    return ledger_payment_record(
        connection=connection, invoice=record.erp_document_number, amount=Decimal(amount),
        reverse=reverse, reason=reason, payment_date=date(2026, 11, 20), cash_account="1100",
        now=at,
    )  # fmt: skip


@pytest.fixture
def told(connection, fake_st):
    """The demo connection with ServiceTrade write-back on, pointing at the fake."""
    fake_st.add_invoice(id=4242, status="processed")
    return st_connection(connection, fake_st, write_back=True)


def st_invoice(fake_st, invoice_id=4242):
    return fake_st.entities["invoice"][invoice_id]


# --- the sandbox ledger -------------------------------------------------------------------------


def test_a_payment_posts_a_balanced_entry_debiting_cash_and_crediting_the_receivable(connection):
    record = posted(connection)
    payment = pay(connection, record, "100.005")
    assert payment.amount == Decimal("100.01")  # rounded half-up to the cent, once
    entry = JournalEntry.objects.get(pk=payment.journal_entry_id)
    assert entry.state == JournalEntry.State.POSTED
    lines = {line.account.number: (line.debit, line.credit) for line in entry.lines.all()}
    assert lines == {"1100": (Decimal("100.01"), 0), "1200": (0, Decimal("100.01"))}


def test_a_reversal_posts_the_opposite_entry(connection):
    record = posted(connection)
    pay(connection, record, "50.00")
    reversal = pay(connection, record, "50.00", reverse=True, reason="NSF")
    lines = {line.account.number: (line.debit, line.credit)
             for line in reversal.journal_entry.lines.all()}  # fmt: skip
    assert lines == {"1100": (0, Decimal("50.00")), "1200": (Decimal("50.00"), 0)}
    assert reversal.kind == LedgerPayment.Kind.REVERSAL
    assert "NSF" in reversal.journal_entry.memo


def test_the_ledger_refuses_paying_more_than_is_open_or_reversing_more_than_is_paid(connection):
    record = posted(connection)
    with pytest.raises(PaymentRefused, match="open"):
        pay(connection, record, "414.75")
    pay(connection, record, "14.74")
    with pytest.raises(PaymentRefused, match="Only 14.74 is paid"):
        pay(connection, record, "15.00", reverse=True)
    with pytest.raises(PaymentRefused, match="more than zero"):
        pay(connection, record, "0")
    assert LedgerPayment.objects.filter(connection=connection).count() == 1


def test_ledger_pay_finds_the_invoice_by_its_key_and_says_what_it_recorded(connection):
    record = posted(connection)
    out = StringIO()
    call_command("ledger", "pay", "--connection", "demo", "--invoice", record.idempotency_key,
                 "--amount", "12.34", "--date", "2026-11-21", stdout=out)  # fmt: skip
    payment = LedgerPayment.objects.get(connection=connection)
    assert (payment.amount, payment.payment_date) == (Decimal("12.34"), date(2026, 11, 21))
    assert f"payment of 12.34 on invoice {record.erp_document_number}" in out.getvalue()
    with pytest.raises(CommandError, match="No invoice 'SI-999999'"):
        call_command("ledger", "pay", "--connection", "demo", "--invoice", "SI-999999",
                     "--amount", "1")  # fmt: skip


def test_the_sandbox_reads_payments_since_a_time_with_reversals_negative(connection):
    record = posted(connection)
    pay(connection, record, "100.00", at=NOW)
    pay(connection, record, "40.00", reverse=True, reason="NSF", at=NOW + timedelta(hours=1))
    read = list(SandboxLedger(connection=connection).payments(since=None))
    assert [(p.amount, p.reason, p.invoice_key) for p in read] == [
        (Decimal("100.00"), "", record.idempotency_key),
        (Decimal("-40.00"), "NSF", record.idempotency_key),
    ]
    later = SandboxLedger(connection=connection).payments(since=NOW + timedelta(minutes=1))
    assert [p.amount for p in later] == [Decimal("-40.00")]


# --- the service --------------------------------------------------------------------------------


def test_a_full_payment_marks_the_invoice_paid_in_servicetrade_once(told, fake_st):
    record = posted(told)
    pay(told, record, "414.74")
    result = payments.payments_sync(connection=told, now=NOW)
    assert (result.read, result.changed, result.invoices_changed, result.told) == (1, 1, 1, 1)
    assert st_invoice(fake_st)["status"] == "paid"
    status = InvoicePayment.objects.get(record=record)
    assert (status.status, status.applied, status.told_status) == (PaymentStatus.PAID, TOTAL,
                                                                   PaymentStatus.PAID)  # fmt: skip
    details = list(SyncEvent.objects.filter(record=record, actor="payments")
                   .order_by("pk").values_list("detail", flat=True))  # fmt: skip
    assert details == [
        "Payments in the ERP: 414.74 of 414.74 applied (paid).",
        "ServiceTrade told: paid (414.74 of 414.74).",
    ]
    # Read again (the cursor overlaps): nothing changes and nothing is sent.
    calls = len(fake_st.requests)
    again = payments.payments_sync(connection=told, now=NOW + timedelta(hours=1))
    assert (again.read, again.changed, again.told) == (1, 0, 0)
    assert len(fake_st.requests) == calls
    assert SyncEvent.objects.filter(record=record, actor="payments").count() == 2


def test_part_payments_are_noted_and_the_one_that_completes_the_invoice_marks_it_paid(
    told, fake_st
):
    record = posted(told)
    pay(told, record, "100.00")
    payments.payments_sync(connection=told, now=NOW)
    assert st_invoice(fake_st)["status"] == "processed"
    assert st_invoice(fake_st)["notes"].endswith("Partially paid in the ERP: 100.00 of 414.74.")
    pay(told, record, "214.74", at=NOW + timedelta(minutes=5))
    payments.payments_sync(connection=told, now=NOW + timedelta(minutes=10))
    assert st_invoice(fake_st)["notes"].endswith("Partially paid in the ERP: 314.74 of 414.74.")
    pay(told, record, "100.00", at=NOW + timedelta(minutes=15))
    payments.payments_sync(connection=told, now=NOW + timedelta(minutes=20))
    assert st_invoice(fake_st)["status"] == "paid"
    assert InvoicePayment.objects.get(record=record).applied == TOTAL


def test_an_nsf_reversal_of_a_paid_invoice_reopens_it_in_servicetrade(told, fake_st):
    record = posted(told)
    pay(told, record, "414.74")
    payments.payments_sync(connection=told, now=NOW)
    pay(told, record, "414.74", reverse=True, reason="NSF", at=NOW + timedelta(minutes=5))
    result = payments.payments_sync(connection=told, now=NOW + timedelta(minutes=10))
    assert result.told == 1
    assert st_invoice(fake_st)["status"] == "processed"
    assert st_invoice(fake_st)["notes"].endswith(
        "Payment reversed in the ERP (NSF): nothing of 414.74 is paid now."
    )
    status = InvoicePayment.objects.get(record=record)
    assert (status.status, status.told_status) == (PaymentStatus.UNPAID, PaymentStatus.UNPAID)
    assert SyncEvent.objects.filter(record=record, detail__startswith="ServiceTrade told: reopened")
    # Paid again later: told paid again.
    pay(told, record, "414.74", at=NOW + timedelta(minutes=15))
    payments.payments_sync(connection=told, now=NOW + timedelta(minutes=20))
    assert st_invoice(fake_st)["status"] == "paid"


def test_a_part_reversal_of_a_paid_invoice_reopens_it_as_partly_paid(told, fake_st):
    record = posted(told)
    pay(told, record, "414.74")
    payments.payments_sync(connection=told, now=NOW)
    pay(told, record, "14.74", reverse=True, reason="Voided receipt", at=NOW + timedelta(minutes=5))
    payments.payments_sync(connection=told, now=NOW + timedelta(minutes=10))
    assert st_invoice(fake_st)["status"] == "processed"
    assert st_invoice(fake_st)["notes"].endswith("Partially paid in the ERP: 400.00 of 414.74.")
    assert SyncEvent.objects.filter(
        record=record, detail="ServiceTrade told: reopened, partially paid (400.00 of 414.74)."
    ).exists()


def test_a_write_back_that_fails_is_told_on_the_next_run_and_only_then(told, fake_st):
    record = posted(told)
    pay(told, record, "414.74")
    fake_st.fail("PUT", "/invoice/4242", 400, times=1)
    result = payments.payments_sync(connection=told, now=NOW)
    assert (result.told, result.tell_failures) == (0, 1)
    assert InvoicePayment.objects.get(record=record).told_status == PaymentStatus.UNPAID
    retried = payments.payments_sync(connection=told, now=NOW + timedelta(hours=1))
    assert (retried.changed, retried.told) == (0, 1)
    assert st_invoice(fake_st)["status"] == "paid"


def test_without_write_back_the_status_is_kept_on_the_timeline_and_nothing_is_sent(
    connection, fake_st
):
    connection = st_connection(connection, fake_st)  # write_back stays off
    record = posted(connection)
    pay(connection, record, "200.00")
    result = payments.payments_sync(connection=connection, now=NOW)
    assert (result.invoices_changed, result.told) == (1, 0)
    assert fake_st.requests == []
    assert InvoicePayment.objects.get(record=record).status == PaymentStatus.PARTIALLY_PAID
    assert SyncEvent.objects.get(record=record, actor="payments").detail == (
        "Payments in the ERP: 200.00 of 414.74 applied (partially paid)."
    )


def test_payments_are_summed_to_the_cent_and_an_edited_payment_replaces_its_amount(connection):
    record = posted(connection)
    key = record.idempotency_key

    def entry(pid, amount, minute):
        return ErpPayment(id=pid, amount=Decimal(amount), payment_date=date(2026, 11, 20),
                          changed_at=NOW + timedelta(minutes=minute), invoice_key=key)  # fmt: skip

    payments.PaymentCursor.objects.create(connection=connection)
    first = [entry("a", "138.25", 1), entry("b", "138.245", 2), entry("c", "0.10", 3)]
    payments.payments_store(connection=connection, payments=first, now=NOW)
    assert InvoicePayment.objects.get(record=record).applied == Decimal("276.60")
    # The ERP changed payment "b" (a typo fixed): the new amount replaces the old one.
    payments.payments_store(connection=connection, payments=[entry("b", "276.39", 9)], now=NOW)
    status = InvoicePayment.objects.get(record=record)
    assert (status.applied, status.status) == (TOTAL, PaymentStatus.PAID)
    total = AppliedPayment.objects.filter(record=record).aggregate(s=Sum("amount"))["s"]
    assert total == TOTAL
    assert PaymentCursor.objects.get(connection=connection).changed_at == NOW + timedelta(minutes=9)


def test_payments_on_invoices_crosswalk_did_not_post_are_counted_and_not_kept(connection):
    posted(connection)
    stranger = ErpPayment(id="x", amount=Decimal("10.00"), payment_date=date(2026, 11, 20),
                          changed_at=NOW, invoice_number="SI-424242")  # fmt: skip
    PaymentCursor.objects.create(connection=connection)
    result = payments.payments_store(connection=connection, payments=[stranger], now=NOW)
    assert (result.read, result.unmatched, result.changed) == (1, 1, 0)
    assert not AppliedPayment.objects.filter(connection=connection).exists()


def test_the_payments_command_reports_each_connection(connection):
    record = posted(connection)
    pay(connection, record, "14.74")
    out = StringIO()
    call_command("payments", "sync", "--connection", "demo", stdout=out)
    assert out.getvalue().startswith("demo: 1 payment(s) read, 1 new or changed, 1 invoice(s)")
    assert InvoicePayment.objects.get(record=record).status == PaymentStatus.PARTIALLY_PAID


# --- Business Central ---------------------------------------------------------------------------


def bc_posted(fake_bc):
    """An invoice posted by the engine into the fake Business Central."""
    fake_bc.seed_demo_books()
    connection = fake_bc.connection()
    catalog_refresh(connection=connection, actor="test", now=NOW)
    # Lists Business Central has no page for, as test_business_central_engine imports them.
    imported = [CatalogItem(kind="PAY_TYPE", code=code) for code in demo.LABOR_PAY_TYPES.values()]
    imported += [CatalogItem(kind="COST_CODE", code=f"{index + 1}00")
                 for index in range(len(demo.SERVICE_LINES))]  # fmt: skip
    imported += [CatalogItem(kind="DEPARTMENT", code=code) for code in demo.OFFICE_CODES.values()]
    catalog_store(connection=connection, items=imported, actor="test", now=NOW,
                  action=RuleAudit.Action.CATALOG_IMPORTED,
                  kinds={"PAY_TYPE", "COST_CODE", "DEPARTMENT"})  # fmt: skip
    rules.draft_replace(connection=connection, content=demo.demo_rules(), actor="test", now=NOW,
                        reason="Rules for Business Central")  # fmt: skip
    rules.draft_publish(connection=connection, effective_from=demo.RULES_EFFECTIVE_FROM,
                        reason="Go live", actor="test", now=NOW)  # fmt: skip
    connection.refresh_from_db()
    return connection, posted(connection)


def test_business_central_payments_are_read_page_by_page_and_since_the_cursor(fake_bc):
    connection, record = bc_posted(fake_bc)
    invoice = fake_bc.rows("salesInvoices", id=record.erp_document_id)[0]
    fake_bc.clock = lambda: NOW
    for amount in ("-100.00", "-100.00", "-100.00", "-50.00"):  # four lines: two pages of three
        fake_bc.add_payment(invoice, amount)
    fake_bc.clock = lambda: NOW + timedelta(hours=2)
    fake_bc.add_payment(invoice, "50.00", description="NSF")  # a returned payment
    bc = BusinessCentral(connection=connection)
    every = list(bc.payments(since=None))
    amounts = ("100.00", "100.00", "100.00", "50.00", "-50.00")
    assert [p.amount for p in every] == [Decimal(amount) for amount in amounts]
    assert every[-1].reason == "NSF"
    assert {p.invoice_number for p in every} == {record.erp_document_number}
    later = list(bc.payments(since=NOW + timedelta(hours=1)))
    assert [p.amount for p in later] == [Decimal("-50.00")]


def test_business_central_payments_decide_the_status_of_the_posted_invoice(fake_bc):
    connection, record = bc_posted(fake_bc)
    invoice = fake_bc.rows("salesInvoices", id=record.erp_document_id)[0]
    fake_bc.add_payment(invoice, "-414.74")
    result = payments.payments_sync(connection=connection, now=NOW)
    assert (result.read, result.invoices_changed) == (1, 1)
    assert InvoicePayment.objects.get(record=record).status == PaymentStatus.PAID
    assert LedgerInvoice.objects.filter(connection=connection).count() == 0


def test_the_hourly_task_reads_every_connection_and_one_that_fails_does_not_stop_the_rest(
    connection,
):
    from syncengine import tasks
    from syncengine.models import Connection

    broken = Connection.objects.create(
        name="Business Central without credentials", slug="bc-broken",
        target=Connection.Target.BUSINESS_CENTRAL, erp_settings={"tenant_id": "t",
                                                                  "company_id": "c"},
    )  # fmt: skip
    record = posted(connection)
    pay(connection, record, "414.74")
    tasks.payments_sync_all()
    assert InvoicePayment.objects.get(record=record).status == PaymentStatus.PAID
    assert "client id and secret" in PaymentCursor.objects.get(connection=broken).last_error
