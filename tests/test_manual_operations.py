"""By hand: retry one record, retry every record of one cause, cancel, mark resolved — audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncengine import services
from syncengine.models import SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db
ADMIN = "user:admin"


def blocked_invoice(connection, number: int, service_line: str = "Backflow Testing"):
    items = [{"id": 1, "itemType": "labor", "quantity": "1", "price": "80",
              "serviceLine": {"name": service_line}}]  # fmt: skip
    ingest(connection, envelope(id=number, invoiceNumber=str(number), items=items))


def test_blocked_records_are_grouped_by_the_fix_that_cures_them(connection):
    for number in range(3):
        blocked_invoice(connection, 100 + number)
    blocked_invoice(connection, 200, service_line="Elevators")
    services.sync_run_until_idle(now=lambda: NOW)
    causes = SyncRecord.objects.failure_causes()
    assert [(c["failure_cause"], c["count"]) for c in causes] == [
        ("UNMAPPED_SERVICE_LINE:Backflow Testing", 3),
        ("UNMAPPED_SERVICE_LINE:Elevators", 1),
    ]
    assert causes[0]["message"].startswith("No revenue account for service line 'Backflow Testing'")


def test_bulk_retry_of_one_cause_queues_exactly_those_records_and_reports_progress(connection):
    for number in range(3):
        blocked_invoice(connection, 100 + number)
    blocked_invoice(connection, 200, service_line="Elevators")
    ingest(connection, envelope(id=300, invoiceNumber="300"))
    services.sync_run_until_idle(now=lambda: NOW)
    progress = []
    queued = services.sync_records_retry_bulk(
        records=SyncRecord.objects.filter(failure_cause="UNMAPPED_SERVICE_LINE:Backflow Testing"),
        actor=ADMIN, now=NOW, on_progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    assert queued == 3 and progress == [(3, 3)]
    states = dict(SyncRecord.objects.values_list("document__number", "state"))
    assert states == {"100": "READY", "101": "READY", "102": "READY", "200": "BLOCKED",
                      "300": "POSTED"}  # fmt: skip
    assert SyncRecord.objects.get(document__number="100").events.last().actor == ADMIN


def test_cancelling_needs_a_reason_and_is_refused_once_the_erp_may_have_it(connection):
    blocked_invoice(connection, 100)
    ingest(connection, envelope(id=300, invoiceNumber="300"))
    services.sync_run_until_idle(now=lambda: NOW)
    blocked = SyncRecord.objects.get(document__number="100")
    with pytest.raises(ValueError, match="needs a reason"):
        services.sync_record_cancel(record=blocked, actor=ADMIN, now=NOW, reason=" ")
    services.sync_record_cancel(record=blocked, actor=ADMIN, now=NOW, reason="Billed twice")
    blocked.refresh_from_db()
    assert (blocked.state, blocked.message) == (
        SyncState.CANCELLED,
        f"Cancelled by {ADMIN}: Billed twice",
    )
    posted = SyncRecord.objects.get(document__number="300")
    with pytest.raises(ValueError, match="may already be in the ERP"):
        services.sync_record_cancel(record=posted, actor=ADMIN, now=NOW, reason="oops")


def test_a_record_settled_by_hand_is_marked_resolved_with_the_reason(connection):
    blocked_invoice(connection, 100)
    services.sync_run_until_idle(now=lambda: NOW)
    record = SyncRecord.objects.get()
    services.sync_record_resolve_outside(
        record=record, actor=ADMIN, now=NOW + timedelta(hours=1),
        reason="Keyed into the ERP by AR", erp_document_number="SI-9001",
    )  # fmt: skip
    record.refresh_from_db()
    assert record.state == SyncState.SKIPPED and record.erp_document_number == "SI-9001"
    event = record.events.last()
    assert (event.actor, event.data["reason"]) == (ADMIN, "Keyed into the ERP by AR")
    assert services.sync_run_until_idle(now=lambda: NOW + timedelta(days=1)) == 0
