"""Preview a rule draft against real documents, see which blocked records it fixes, and retry
exactly those once it is published."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from mappings import preview
from mappings import services as mapping_services
from mappings.resolve import InvoicePlan
from syncengine import services
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.models import SourceDocument, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db

FINANCE = "user:finance"


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def items_of(service_line: str) -> list[dict]:
    return [
        {
            "id": 1,
            "description": f"{service_line} labor",
            "itemType": "labor",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": service_line},
        }
    ]


def ingest_invoice(connection, number: int, service_line: str = "HVAC", at=NOW) -> SyncRecord:
    body = envelope(id=number, invoiceNumber=str(number), items=items_of(service_line))
    result = ingest(connection, body, now=at)
    assert not result.errors
    return result.accepted[0]


def map_service_line(connection, source: str, **targets: str) -> None:
    mapping_services.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value=source,
        targets=targets,
        actor=FINANCE,
        now=NOW,
    )


def publish(connection, effective_from=date(2025, 1, 1)):
    return mapping_services.draft_publish(
        connection=connection,
        effective_from=effective_from,
        reason="Map Backflow Testing",
        actor=FINANCE,
        now=NOW,
    )


def state_of(record: SyncRecord) -> str:
    record.refresh_from_db()
    return record.state


def test_a_draft_that_maps_an_unmapped_service_line_previews_the_document_as_newly_fixed(
    connection,
):
    record = ingest_invoice(connection, 1, "Backflow Testing")
    post_due()
    assert state_of(record) == SyncState.BLOCKED
    map_service_line(connection, "Backflow Testing", revenue_account="4060")

    [result] = preview.preview_documents(connection=connection, documents=[record.document])

    assert result.newly_fixed and result.changed and not result.newly_broken
    assert result.outcome == "newly_fixed"
    assert result.version_before == 1
    assert [problem.code for problem in result.before] == ["UNMAPPED_SERVICE_LINE"]
    assert isinstance(result.after, InvoicePlan)
    line = result.lines[0]
    assert (line.account.before, line.account.after) == (None, "4060")
    assert line.reason_after == "revenue account 4060 from the service-line map (Backflow Testing)"
    data = json.loads(json.dumps(result.to_dict()))
    assert data["outcome"] == "newly_fixed"
    assert data["before"]["problems"][0]["source_value"] == "Backflow Testing"
    assert data["after"]["plan"]["lines"][0]["account"] == "4060"
    assert data["lines"][0]["account"] == {"before": None, "after": "4060", "changed": True}


def test_a_draft_that_changes_an_account_shows_the_line_diff_with_its_new_reason(connection):
    ingest(connection, envelope())  # HVAC labor, two HVAC parts, NC tax
    map_service_line(connection, "HVAC", revenue_account="4020")  # the cost code is dropped

    [result] = preview.preview_recent(connection=connection)

    assert result.outcome == "changed" and result.changed
    assert not result.newly_fixed and not result.newly_broken
    labor, part, filters, tax = result.lines
    assert (labor.account.before, labor.account.after) == ("4010", "4020")
    assert labor.reason_before == "revenue account 4010 from the service-line map (HVAC)"
    assert labor.reason_after == "revenue account 4020 from the service-line map (HVAC)"
    assert (labor.codings["cost_code"].before, labor.codings["cost_code"].after) == ("100", None)
    assert labor.codings["dimension:DEPARTMENT"].changed is False
    assert labor.changed
    # The parts are routed by rule 1, whatever the service-line map says.
    assert (part.account.before, part.account.after) == ("4011", "4011")
    assert part.reason_after == (
        "revenue account 4011 from rule 1 (line kind part, service line HVAC)"
    )
    assert part.codings["cost_code"].changed  # the cost code still comes from the service line
    assert (tax.tax_code.before, tax.tax_code.after) == ("NC-7.25", "NC-7.25")
    assert not tax.changed
    assert result.header == ()


def test_a_header_coding_the_draft_adds_is_listed_as_a_header_change(connection):
    ingest(connection, envelope())
    mapping_services.draft_map_row_set(
        connection=connection,
        map_kind="LOCATION_STATE",
        source_value="NC",
        targets={"work_state": "NC"},
        actor=FINANCE,
        now=NOW,
    )

    [result] = preview.preview_recent(connection=connection)

    assert result.outcome == "changed"
    assert [change.to_dict() for change in result.header] == [
        {"field": "work_state", "before": None, "after": "NC"}
    ]
    assert not any(line.changed for line in result.lines)


def test_a_draft_that_removes_a_mapping_previews_the_document_as_newly_broken(connection):
    ingest(connection, envelope())
    mapping_services.draft_map_row_delete(
        connection=connection, map_kind="SERVICE_LINE", source_value="HVAC", actor=FINANCE, now=NOW
    )

    [result] = preview.preview_recent(connection=connection)

    assert result.newly_broken and result.changed and result.outcome == "newly_broken"
    assert isinstance(result.before, InvoicePlan)
    assert [(problem.code, problem.source_value) for problem in result.after] == [
        ("UNMAPPED_SERVICE_LINE", "HVAC")
    ]
    assert (result.lines[0].account.before, result.lines[0].account.after) == ("4010", None)
    assert result.lines[0].reason_after is None


def test_preview_recent_previews_the_newest_documents_first_up_to_the_limit(connection):
    for number in (1, 2, 3):
        ingest_invoice(connection, number, at=NOW + timedelta(minutes=number))
    map_service_line(connection, "Backflow Testing", revenue_account="4060")

    results = preview.preview_recent(connection=connection, limit=2)

    assert [result.number for result in results] == ["3", "2"]
    assert [result.outcome for result in results] == ["unchanged", "unchanged"]
    assert not any(result.changed for result in results)
    assert preview.preview_summary(results)["unchanged"] == 2
    assert preview.preview_recent(connection=connection, limit=0) == []


def test_the_draft_impact_lists_exactly_the_blocked_records_it_fixes(connection, monkeypatch):
    backflow = ingest_invoice(connection, 1, "Backflow Testing")
    elevators = ingest_invoice(connection, 2, "Elevators")
    hvac = ingest_invoice(connection, 3, "HVAC")
    post_due()
    failing = ingest_invoice(connection, 4, "HVAC")
    original = SandboxLedger.post_invoice

    def refuse(self, *, plan, key):
        raise ConnectorError("Customer is blocked", category=FailureCategory.VALUE)

    monkeypatch.setattr(SandboxLedger, "post_invoice", refuse)
    post_due()
    monkeypatch.setattr(SandboxLedger, "post_invoice", original)
    # Today the engine blocks coding problems; a record failed with one (an older release, or
    # another path) counts, because rules can fix it.
    failed_on_coding = ingest_invoice(connection, 5, "Backflow Testing")
    SyncRecord.objects.filter(pk=failed_on_coding.pk).update(
        state=SyncState.FAILED, failure_category="UNMAPPED_SERVICE_LINE"
    )
    assert [state_of(r) for r in (backflow, elevators, hvac, failing)] == [
        SyncState.BLOCKED,
        SyncState.BLOCKED,
        SyncState.POSTED,
        SyncState.FAILED,
    ]
    map_service_line(connection, "Backflow Testing", revenue_account="4060")

    impact = preview.draft_impact(connection=connection)

    assert [entry.record_id for entry in impact.fixed] == [backflow.pk, failed_on_coding.pk]
    assert [entry.record_id for entry in impact.still_blocked] == [elevators.pk]
    assert [problem.code for problem in impact.still_blocked[0].problems] == [
        "UNMAPPED_SERVICE_LINE"
    ]
    assert impact.still_blocked[0].problems[0].source_value == "Elevators"
    assert impact.fixable_now == ()
    assert impact.counts == {
        "considered": 3,
        "fixed": 2,
        "still_blocked": 1,
        "fixable_now": 0,
        "failures_ignored": 1,  # the connector's VALUE failure: no rule fixes it
    }
    assert json.loads(json.dumps(impact.to_dict()))["fixed"][0]["number"] == "1"


def test_after_publishing_exactly_the_fixed_records_are_retried_and_post_under_the_new_version(
    connection,
):
    backflow = ingest_invoice(connection, 1, "Backflow Testing")
    elevators = ingest_invoice(connection, 2, "Elevators")
    hvac = ingest_invoice(connection, 3, "HVAC")
    post_due()
    map_service_line(connection, "Backflow Testing", revenue_account="4060")
    version = publish(connection)

    fixed = preview.records_fixed_by(connection=connection, version=version)
    assert fixed == [backflow.pk]
    assert preview.records_fixed_by(connection=connection, version=version.number) == fixed
    queued = preview.impact_retry(
        connection=connection, record_ids=[*fixed, hvac.pk], actor="user:admin", now=NOW
    )
    assert queued == 1  # the posted HVAC invoice is skipped
    post_due()

    backflow.refresh_from_db()
    assert backflow.state == SyncState.POSTED
    assert backflow.rule_version == version.number == 2
    assert state_of(elevators) == SyncState.BLOCKED
    assert [event.actor for event in backflow.events.order_by("id")][-3:] == [
        "user:admin",
        "sync --until-idle",
        "sync --until-idle",
    ]
    again = preview.impact_retry(
        connection=connection, record_ids=fixed, actor="user:admin", now=NOW
    )
    assert again == 0  # posted since: nothing left to retry


def test_a_version_effective_after_the_document_date_fixes_none_of_its_records(connection):
    ingest_invoice(connection, 1, "Backflow Testing")  # dated 2025-11-20
    post_due()
    map_service_line(connection, "Backflow Testing", revenue_account="4060")
    version = publish(connection, effective_from=date(2026, 1, 1))

    assert preview.records_fixed_by(connection=connection, version=version) == []


def test_without_a_draft_preview_and_impact_say_to_start_one(connection):
    ingest(connection, envelope())
    document = SourceDocument.objects.get()

    with pytest.raises(mapping_services.RulesError, match="Start a draft first"):
        preview.preview_recent(connection=connection)
    with pytest.raises(mapping_services.RulesError, match="Start a draft first"):
        preview.preview_documents(connection=connection, documents=[document])
    with pytest.raises(mapping_services.RulesError, match="Start a draft first"):
        preview.draft_impact(connection=connection)


def test_the_impact_reads_a_fixed_number_of_queries_however_many_records_are_blocked(connection):
    def queries_for_impact() -> int:
        with CaptureQueriesContext(db_connection) as captured:
            preview.draft_impact(connection=connection)
        return len(captured.captured_queries)

    map_service_line(connection, "Backflow Testing", revenue_account="4060")
    ingest_invoice(connection, 1, "Backflow Testing")
    post_due()
    few = queries_for_impact()
    for number in range(2, 12):
        ingest_invoice(connection, number, "Backflow Testing")
    post_due()

    assert len(preview.draft_impact(connection=connection).fixed) == 11
    assert queries_for_impact() == few
