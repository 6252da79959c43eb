"""Reconciliation finds what the real-time path missed, re-drives what it can, reports the rest."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from syncengine import services
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import ReconciliationFinding, SyncRecord, SyncState
from syncengine.reconcile import reconciliation_run
from syncengine.services import posting
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db
LATER = NOW + timedelta(hours=1)
Kind = ReconciliationFinding.Kind


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def reconcile(connection, at=LATER):
    return reconciliation_run(connection=connection, actor="test", now=at)


def kinds(run):
    return sorted(run.findings.values_list("kind", "key"))


def test_a_clean_ledger_ties_out_to_the_cent(connection):
    ingest(connection, envelope(id=1, invoiceNumber="1"))
    ingest(connection, envelope(id=2, invoiceNumber="2"))
    post_due()
    run = reconcile(connection)
    assert kinds(run) == []
    assert run.posted_source_total == run.erp_invoice_total == Decimal("829.48")
    assert run.difference == 0


def test_an_approved_invoice_stuck_after_a_lost_message_is_re_driven(connection):
    ingest(connection, envelope())
    record = SyncRecord.objects.get()
    SyncRecord.objects.filter(pk=record.pk).update(state=SyncState.RECEIVED, next_attempt_at=None)
    run = reconcile(connection)
    assert kinds(run) == [(Kind.NOT_POSTED, "ST-INV-4242")]
    assert run.findings.get().action == "re-driven"
    post_due(LATER)
    assert SyncRecord.objects.get().state == SyncState.POSTED


def test_a_document_the_erp_took_after_a_timeout_is_recorded_not_posted_again(connection):
    ingest(connection, envelope())
    claim = posting._claim(record_id=None, now=NOW, actor="worker-1")
    posting._attempt(claim)  # the ERP took it; the answer was lost
    SyncRecord.objects.filter(pk=claim.record_id).update(
        state=SyncState.FAILED, lease_until=None, lease_token=""
    )
    run = reconcile(connection)
    assert kinds(run) == [(Kind.NOT_RECORDED, "ST-INV-4242")]
    post_due(LATER)
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED and LedgerInvoice.objects.count() == 1
    assert record.events.last().data["found_by_lookup"] is True


def test_a_posted_record_whose_document_is_missing_in_the_erp_is_settled_by_lookup(connection):
    ingest(connection, envelope())
    post_due()
    LedgerInvoice.objects.update(external_document_number="SOMETHING-ELSE")
    run = reconcile(connection)
    assert (Kind.MISSING_IN_ERP, "ST-INV-4242") in kinds(run)
    assert SyncRecord.objects.get().state == SyncState.UNCERTAIN  # looks up before any post
    post_due(LATER)
    assert SyncRecord.objects.get().state == SyncState.POSTED


def test_an_amount_that_differs_by_a_cent_is_reported_with_both_amounts(connection):
    ingest(connection, envelope())
    post_due()
    ingest(connection, envelope(totalTax="9.46", totalPrice="414.75"), now=NOW + timedelta(1))
    run = reconcile(connection)
    finding = run.findings.get()
    assert (finding.kind, finding.source_amount, finding.erp_amount) == (
        Kind.AMOUNT_DIFFERS,
        Decimal("414.75"),
        Decimal("414.74"),
    )
    assert "-0.01 difference" in finding.detail and finding.action == ""


def test_duplicates_in_the_erp_are_reported_and_never_deleted(connection, monkeypatch):
    from syncengine.erps.base import ErpDocumentSummary

    ingest(connection, envelope())
    post_due()
    original = SandboxLedger.list_documents

    def doubled(self):
        documents = list(original(self))
        return documents + [ErpDocumentSummary(key="ST-INV-4242", id="x", number="SI-999999",
                                               kind="INVOICE", amount=Decimal("414.74"),
                                               posting_date=NOW.date())]  # fmt: skip

    monkeypatch.setattr(SandboxLedger, "list_documents", doubled)
    run = reconcile(connection)
    finding = run.findings.get()
    assert finding.kind == Kind.DUPLICATE_IN_ERP and "SI-000001, SI-999999" in finding.detail
    assert LedgerInvoice.objects.count() == 1 and SyncRecord.objects.get().state == "POSTED"


def test_the_reconcile_command_prints_totals_and_findings(connection):
    ingest(connection, envelope())
    post_due()
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "ERP invoices 414.74 (difference +0.00)" in out.getvalue()
    assert out.getvalue().strip().endswith("Everything ties out.")
