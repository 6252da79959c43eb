"""Voids: an invoice voided before it posted is cancelled; one voided after it posted is offset
by a credit memo for exactly its amount, linked to it, once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from syncengine import services
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.models import JournalLine, LedgerInvoice
from syncengine.models import Operation, SyncRecord, SyncState
from syncengine.services import posting
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db
LATER = NOW + timedelta(days=2)


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def void(connection, at=LATER):
    ingest(connection, envelope(status="void"), now=at)


def credit_record():
    return SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)


def test_a_posted_invoice_that_is_voided_gets_an_exactly_offsetting_credit_memo(connection):
    ingest(connection, envelope())
    post_due()
    void(connection)
    post_due(LATER)
    credit = credit_record()
    assert credit.state == SyncState.POSTED
    memo = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.CREDIT_MEMO)
    invoice = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.INVOICE)
    assert (memo.applies_to, memo.amount, memo.external_document_number) == (
        invoice,
        Decimal("414.74"),
        "ST-VOID-4242",
    )
    assert credit.erp_document_number == memo.number and memo.number.startswith("CM-")
    by_account = JournalLine.objects.values("account__number").annotate(
        debit=Sum("debit"), credit=Sum("credit")
    )
    for row in by_account:  # every account nets to zero across the invoice and its credit memo
        assert row["debit"] == row["credit"], row


def test_a_second_void_is_recognised_and_changes_nothing(connection):
    ingest(connection, envelope())
    post_due()
    void(connection)
    ingest(connection, envelope(status="void", notes="again"), now=LATER + timedelta(hours=1))
    body = envelope(status="void", partial=True)  # a different payload, still a void
    ingest(connection, body, now=LATER + timedelta(hours=2))
    post_due(LATER + timedelta(hours=3))
    assert SyncRecord.objects.filter(operation=Operation.VOID_CREDIT_MEMO).count() == 1
    assert LedgerInvoice.objects.filter(kind=LedgerInvoice.Kind.CREDIT_MEMO).count() == 1
    original = SyncRecord.objects.get(operation=Operation.CREATE)
    assert (
        original.events.last().detail == "Void received again: already handled, nothing more to do."
    )


def test_a_void_before_posting_cancels_the_pending_record(connection):
    ingest(connection, envelope())
    void(connection)
    record = SyncRecord.objects.get()
    assert record.state == SyncState.CANCELLED
    assert post_due(LATER) == 0
    assert not LedgerInvoice.objects.exists()


def test_a_void_during_posting_waits_for_the_invoice_to_settle_then_credits_it(connection):
    ingest(connection, envelope())
    claim = posting._claim(record_id=None, now=NOW, actor="worker-1")
    outcome = posting._attempt(claim)  # the ERP has taken the invoice, not yet recorded
    void(connection, at=NOW + timedelta(seconds=5))
    post_due(NOW + timedelta(seconds=6))
    credit = credit_record()
    assert (credit.state, credit.failure_category) == (SyncState.RETRY_SCHEDULED, "PREREQUISITE")
    posting._finish(claim, outcome, now=NOW + timedelta(seconds=7), actor="worker-1")
    post_due(NOW + timedelta(hours=2))
    credit.refresh_from_db()
    assert credit.state == SyncState.POSTED
    assert LedgerInvoice.objects.filter(kind=LedgerInvoice.Kind.CREDIT_MEMO).count() == 1


def test_a_crash_after_the_credit_memo_landed_never_credits_twice(connection):
    ingest(connection, envelope())
    post_due()
    void(connection)
    claim = posting._claim(record_id=None, now=LATER, actor="worker-1")
    original = SyncRecord.objects.get(operation=Operation.CREATE)
    SandboxLedger(connection=connection).post_credit_memo(
        original_id=original.erp_document_id, key="ST-VOID-4242", posting_date=LATER.date()
    )  # the ERP took it; the worker died before recording it
    assert claim is not None
    post_due(LATER + timedelta(hours=1))
    credit = credit_record()
    assert credit.state == SyncState.POSTED
    assert credit.events.last().data["found_by_lookup"] is True
    assert LedgerInvoice.objects.filter(kind=LedgerInvoice.Kind.CREDIT_MEMO).count() == 1


def test_the_sandbox_refuses_to_credit_an_invoice_twice(connection):
    from syncengine.erps.base import ConnectorError

    ingest(connection, envelope())
    post_due()
    ledger = SandboxLedger(connection=connection)
    original = SyncRecord.objects.get().erp_document_id
    ledger.post_credit_memo(original_id=original, key="K1", posting_date=LATER.date())
    with pytest.raises(ConnectorError, match="already credited in full"):
        ledger.post_credit_memo(original_id=original, key="K2", posting_date=LATER.date())


def test_a_voided_invoice_is_never_posted_even_when_retried(connection):
    items = [{"id": 1, "itemType": "labor", "quantity": "1", "price": "80",
              "serviceLine": {"name": "Backflow Testing"}}]  # fmt: skip
    ingest(connection, envelope(items=items))
    claim = posting._claim(record_id=None, now=NOW, actor="worker-1")
    ingest(connection, envelope(items=items, status="void"), now=NOW + timedelta(seconds=1))
    posting._finish(claim, posting._attempt(claim), now=NOW + timedelta(seconds=2),
                     actor="worker-1")  # fmt: skip
    original = SyncRecord.objects.get(operation=Operation.CREATE)
    assert original.state == SyncState.SKIPPED
    assert original.message == "Voided in ServiceTrade: not posted."
    post_due(LATER)
    assert credit_record().state == SyncState.SKIPPED
    assert not LedgerInvoice.objects.exists()


def test_a_void_of_a_failed_invoice_that_did_land_is_still_credited(connection):
    """An attempt whose answer was lost left the record FAILED though the ERP has it."""
    ingest(connection, envelope())
    claim = posting._claim(record_id=None, now=NOW, actor="worker-1")
    posting._attempt(claim)  # the ERP took it; the answer never came back
    SyncRecord.objects.filter(pk=claim.record_id).update(
        state=SyncState.FAILED, lease_until=None, lease_token=""
    )
    void(connection)
    post_due(LATER)
    assert credit_record().state == SyncState.POSTED
    assert LedgerInvoice.objects.filter(kind=LedgerInvoice.Kind.CREDIT_MEMO).count() == 1
