"""Approved timecards become time entries with employee, pay type, job, cost code and department;
re-sending a week (the weekly catch-up) skips what already went."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from syncengine import services
from syncengine.erps.sandbox.models import LedgerTimeEntry
from syncengine.models import SourceReceipt, SyncRecord, SyncState
from syncengine.services import posting
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

CARD = {
    "id": "TC-77",
    "technician": {"id": "300", "name": "Maria Lopez"},
    "weekStarting": "2026-11-09",
    "status": "approved",
    "entries": [
        {"id": "1", "kind": "labor", "date": "2026-11-09", "jobNumber": "J-20001",
         "serviceLine": "HVAC", "office": "Raleigh", "laborType": "standard", "hours": "7.5"},
        {"id": "2", "kind": "labor", "date": "2026-11-10", "jobNumber": "J-20002",
         "serviceLine": "Plumbing", "office": "Atlanta", "laborType": "overtime", "hours": 2},
        {"id": "3", "kind": "generic", "date": "2026-11-11", "laborType": "PTO", "hours": "8"},
        {"id": "4", "kind": "clock", "date": "2026-11-12", "clockIn": "07:30",
         "clockOut": "08:00", "hours": "0.5", "laborType": "standard"},
    ],
}  # fmt: skip


def send(connection, card, at=NOW):
    body = json.dumps({"data": card}).encode()
    return services.timecards_ingest(
        connection=connection, body=body, channel=SourceReceipt.Channel.FILE, origin="test", now=at
    )


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def test_an_approved_timecard_posts_every_entry_fully_coded(connection):
    assert send(connection, CARD).errors == []
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED and record.rule_version == 1
    entries = {e.external_document_number: e for e in LedgerTimeEntry.objects.all()}
    labor = entries["ST-TE-TC-77-1"]
    assert (labor.employee, labor.pay_type, labor.cost_code, labor.department, labor.hours) == (
        "E300",
        "REG",
        "100",
        "RAL",
        Decimal("7.50"),
    )
    assert entries["ST-TE-TC-77-2"].pay_type == "OT"
    assert entries["ST-TE-TC-77-3"].pay_type == "PTO" and entries["ST-TE-TC-77-3"].job_number == ""
    assert (entries["ST-TE-TC-77-4"].clock_in, entries["ST-TE-TC-77-4"].clock_out) == (
        "07:30",
        "08:00",
    )
    reasons = [line["codings"]["pay_type"]["reason"] for line in record.plan["entries"]]
    assert reasons[2] == "pay type PTO from the labor-type map (PTO)"


def test_only_approved_time_is_posted(connection):
    send(connection, {**CARD, "status": "submitted"})
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.SKIPPED
    assert record.message == "Status 'submitted': only approved time is posted."
    assert not LedgerTimeEntry.objects.exists()


def test_an_unmapped_technician_blocks_the_timecard_with_the_fix_named(connection):
    send(connection, {**CARD, "technician": {"id": "999", "name": "New Hire"}})
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.BLOCKED
    assert record.message == (
        "No employee code for technician 'New Hire': add them to the technician map."
    )


def test_a_changed_timecard_posts_only_the_entries_not_already_there(connection):
    send(connection, CARD)
    post_due()
    changed = copy.deepcopy(CARD)
    changed["entries"].append({"id": "5", "kind": "labor", "date": "2026-11-13",
                               "jobNumber": "J-20003", "serviceLine": "HVAC", "office": "Raleigh",
                               "laborType": "standard", "hours": "4"})  # fmt: skip
    send(connection, changed, at=NOW + timedelta(days=1))
    post_due(NOW + timedelta(days=1))
    assert LedgerTimeEntry.objects.count() == 5
    assert SyncRecord.objects.get().erp_document_number == "5 time entries"


def test_the_weekly_catch_up_resends_the_past_week_and_skips_what_already_went(connection):
    send(connection, CARD)
    post_due()
    assert services.timecards_catch_up(now=NOW + timedelta(days=2)) == 1
    post_due(NOW + timedelta(days=2))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert LedgerTimeEntry.objects.count() == 4
    assert record.events.filter(actor="weekly catch-up").count() == 1


def test_malformed_timecards_are_rejected_with_the_field_named_and_the_others_kept(connection):
    bad = copy.deepcopy(CARD)
    bad["id"] = "TC-78"
    bad["entries"][0]["hours"] = "30"
    bad["entries"][1]["kind"] = "vacation"
    body = json.dumps({"data": {"timecards": [CARD, bad]}}).encode()
    result = services.timecards_ingest(
        connection=connection, body=body, channel=SourceReceipt.Channel.FILE, origin="t", now=NOW
    )
    assert result.errors == [
        "timecard 2 of 2: data.entries[0].hours: 30 is not between 0 and 24",
        "timecard 2 of 2: data.entries[1].kind: 'vacation' is not one of labor, clock, generic",
    ]
    assert SyncRecord.objects.count() == 1


def test_technicians_and_labor_types_are_learned_for_the_coverage_warnings(connection):
    from mappings.models import SourceValue

    send(connection, CARD)
    learned = set(SourceValue.objects.values_list("attribute", "value"))
    assert {("technician", "300"), ("labor_type", "PTO"), ("labor_type", "overtime")} <= learned


def test_a_timecard_changed_while_it_is_being_sent_is_noted_on_its_timeline(connection):
    send(connection, CARD)
    posting._claim(record_id=None, now=NOW, actor="worker-1")
    changed = copy.deepcopy(CARD)
    changed["entries"][0]["hours"] = "6"
    send(connection, changed, at=NOW + timedelta(seconds=5))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTING
    assert "changed in ServiceTrade while it was being sent" in record.events.last().detail
