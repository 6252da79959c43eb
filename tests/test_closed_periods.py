"""Closed periods: a posting date in a period the connection has closed is held until the period
reopens (or a person acts), or moved to the first open day with a note on the record."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from syncengine import services
from syncengine.connections import connection_settings_update
from syncengine.erps.sandbox.models import LedgerInvoice, LedgerPosting, LedgerTimeEntry
from syncengine.models import ConnectionAudit, Operation, SyncRecord, SyncState
from syncengine.plans import PostingPolicy
from tests.conftest import NOW, envelope, ingest
from tests.test_costs_procurement import ITEM, books, ingest_costs, job_items  # noqa: F401
from tests.test_document_flows import MIXED
from tests.test_timecards import CARD, send

pytestmark = pytest.mark.django_db
LATER = NOW + timedelta(hours=1)


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def close(connection, **settings):
    connection.erp_settings = {**connection.erp_settings, **settings}
    connection.save(update_fields=["erp_settings"])


def test_an_invoice_dated_in_a_closed_period_is_held_with_a_plain_message(connection):
    close(connection, closed_through="2025-11-30")  # the invoice is dated 2025-11-20
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_cause) == (SyncState.BLOCKED, "PERIOD_CLOSED")
    assert "2025-11-20 is in a closed period (closed through 2025-11-30)" in record.message
    assert not LedgerInvoice.objects.exists()


def test_reopening_the_period_sends_the_held_invoice_on_its_own_date(connection):
    close(connection, closed_through="2025-11-30")
    ingest(connection, envelope())
    post_due()
    reopened = {"closed_through": "2025-10-31"}
    connection_settings_update(connection=connection, side="erp", values=reopened, actor="admin",
                               now=LATER, reason="Reopen November")  # fmt: skip
    record = SyncRecord.objects.get()
    assert record.state == SyncState.READY
    assert record.events.last().detail == "The closed period changed: sending again."
    assert ConnectionAudit.objects.get().reason == "Reopen November"
    post_due(LATER)
    assert LedgerInvoice.objects.get().posting_date == date(2025, 11, 20)


def test_a_change_that_keeps_the_period_closed_leaves_the_record_held(connection):
    close(connection, closed_through="2025-11-30")
    ingest(connection, envelope())
    post_due()
    connection_settings_update(connection=connection, side="erp", values={
        "closed_through": "2025-11-20"}, actor="admin", now=LATER)  # fmt: skip
    assert SyncRecord.objects.get().state == SyncState.BLOCKED


def test_a_redating_connection_posts_on_the_first_open_day_with_an_audit_note(connection):
    close(connection, closed_through="2025-10-31", closed_period_policy="redate",
          closed_periods={"2025-11-01": "2025-11-30", "2025-12-01": "2025-12-02"})  # fmt: skip
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert LedgerInvoice.objects.get().posting_date == date(2025, 12, 3)
    note = "Posting date moved from 2025-11-20 to 2025-12-03, the first open day"
    assert note in record.events.last().detail
    assert (record.plan["posting_date"], record.plan["redated_from"]) == (
        "2025-12-03",
        "2025-11-20",
    )


def test_switching_to_redating_releases_the_held_records(connection):
    close(connection, closed_through="2025-11-30")
    ingest(connection, envelope())
    post_due()
    connection_settings_update(connection=connection, side="erp", values={
        "closed_period_policy": "redate"}, actor="admin", now=LATER)  # fmt: skip
    post_due(LATER)
    assert LedgerInvoice.objects.get().posting_date == date(2025, 12, 1)


def test_both_parts_of_a_split_invoice_are_redated_together(connection):
    close(connection, closed_through="2025-11-30", closed_period_policy="redate",
          mixed_sign="split")  # fmt: skip
    ingest(connection, envelope(items=MIXED))
    post_due()
    dates = set(LedgerInvoice.objects.values_list("posting_date", flat=True))
    assert dates == {date(2025, 12, 1)} and LedgerInvoice.objects.count() == 2


def test_the_first_open_day_skips_periods_that_follow_each_other():
    periods = {"2025-02-01": "2025-02-28", "2025-03-05": "2025-03-06"}
    policy = PostingPolicy(closed_through="2025-01-31", closed_periods=periods)
    assert policy.first_open_day(date(2025, 1, 15)) == date(2025, 3, 1)
    assert policy.first_open_day(date(2025, 3, 5)) == date(2025, 3, 7)
    assert policy.first_open_day(date(2025, 3, 2)) == date(2025, 3, 2)
    assert policy.closed_until(date(2025, 3, 2)) is None


# --- the other document kinds --------------------------------------------------------------------


def test_a_void_credited_on_a_closed_day_is_held_then_posts_when_the_day_reopens(connection):
    ingest(connection, envelope())
    post_due()
    close(connection, closed_through="2026-11-30")  # "today" (2026-11-20) is closed
    ingest(connection, envelope(status="void"), now=LATER)
    post_due(LATER)
    credit = SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)
    assert (credit.state, credit.failure_cause) == (SyncState.BLOCKED, "PERIOD_CLOSED")
    assert "2026-11-20 is in a closed period (closed through 2026-11-30)" in credit.message
    connection_settings_update(connection=connection, side="erp", values={
        "closed_through": "2026-10-31"}, actor="admin", now=LATER)  # fmt: skip
    post_due(LATER)
    memo = LedgerInvoice.objects.get(kind=LedgerInvoice.Kind.CREDIT_MEMO)
    assert memo.posting_date == date(2026, 11, 20) and memo.amount == Decimal("414.74")


def test_a_void_on_a_redating_connection_is_credited_on_the_first_open_day(connection):
    ingest(connection, envelope())
    post_due()
    close(connection, closed_through="2026-11-30", closed_period_policy="redate")
    ingest(connection, envelope(status="void"), now=LATER)
    post_due(LATER)
    credit = SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)
    assert credit.state == SyncState.POSTED
    assert LedgerInvoice.objects.get(kind="CREDIT_MEMO").posting_date == date(2026, 12, 1)
    assert "Posting date moved from 2026-11-20 to 2026-12-01" in credit.events.last().detail


def test_a_timecard_in_a_closed_period_is_held_even_when_the_connection_redates(connection):
    close(connection, closed_through="2026-11-10", closed_period_policy="redate")
    send(connection, CARD)  # work dates 2026-11-09 … 2026-11-12
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_cause) == (SyncState.BLOCKED, "PERIOD_CLOSED")
    assert "The work date 2026-11-09 is in a closed period" in record.message
    assert not LedgerTimeEntry.objects.exists()
    connection_settings_update(connection=connection, side="erp", values={
        "closed_through": "2026-11-08"}, actor="admin", now=LATER)  # fmt: skip
    post_due(LATER)
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert set(LedgerTimeEntry.objects.values_list("work_date", flat=True)) == {
        date(2026, 11, 9), date(2026, 11, 10), date(2026, 11, 11), date(2026, 11, 12),
    }  # fmt: skip


def test_a_job_cost_in_a_closed_period_is_held_or_redated_like_an_invoice(books):  # noqa: F811
    close(books, closed_through="2026-11-26")  # the cost was used on 2026-11-26
    ingest_costs(books, job_items(ITEM))
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_cause) == (SyncState.BLOCKED, "PERIOD_CLOSED")
    assert not LedgerPosting.objects.exists()
    connection_settings_update(connection=books, side="erp", values={
        "closed_period_policy": "redate"}, actor="admin", now=LATER)  # fmt: skip
    post_due(LATER)
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert LedgerPosting.objects.get().posting_date == date(2026, 11, 27)
    assert record.plan["redated_from"] == "2026-11-26"
