"""Operations through the API, as on the console's ops pages: reconciling now, the sandbox
ledger's time entries, and importing a catalog list from CSV."""

from __future__ import annotations

import json
from decimal import Decimal
from unittest import mock

import pytest

from console.access import Role
from console.api import ops_views
from mappings.models import CatalogEntry, RuleAudit
from syncengine import services
from syncengine.erps.base import ConnectorError
from syncengine.erps.sandbox.models import LedgerInvoice, LedgerTimeEntry
from syncengine.models import Connection, ReconciliationRun, SourceReceipt, SyncRecord, SyncState
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

BASE = "/api/v1/connections/demo"
CARD = {
    "id": "TC-9",
    "technician": {"id": "300", "name": "Maria Lopez"},
    "weekStarting": "2026-11-09",
    "status": "approved",
    "entries": [
        {"id": "1", "kind": "labor", "date": "2026-11-09", "jobNumber": "J-20001",
         "serviceLine": "HVAC", "office": "Raleigh", "laborType": "standard", "hours": "7.5"},
        {"id": "2", "kind": "generic", "date": "2026-11-11", "laborType": "PTO", "hours": "8"},
        {"id": "3", "kind": "labor", "date": "2026-11-12", "jobNumber": "J-20002",
         "serviceLine": "Plumbing", "office": "Atlanta", "laborType": "overtime", "hours": 2},
    ],
}  # fmt: skip


@pytest.fixture
def admin(client, make_user, connection):
    client.force_login(make_user(Role.ADMIN, connection, name="ada"))
    return client


@pytest.fixture
def ar(client, make_user, connection):
    client.force_login(make_user(Role.AR, connection))
    return client


@pytest.fixture
def time_posted(connection) -> None:
    body = json.dumps({"data": CARD}).encode()
    services.timecards_ingest(connection=connection, body=body, channel=SourceReceipt.Channel.FILE,
                              origin="test", now=NOW)  # fmt: skip
    services.sync_run_until_idle(now=lambda: NOW)
    assert SyncRecord.objects.get(document__kind="TIMECARD").state == SyncState.POSTED


# --- reconciliation -----------------------------------------------------------------------------


def test_an_admin_reconciles_now_and_gets_the_run_with_its_findings(admin, posted):
    response = admin.post(f"{BASE}/reconciliations/", content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    run = ReconciliationRun.objects.get(pk=body["id"])
    assert (run.actor, body["actor"]) == ("user:ada", "user:ada")
    assert body["findings"] == []
    assert Decimal(body["posted_source_total"]) == Decimal(body["erp_invoice_total"])
    assert Decimal(body["posted_source_total"]) == Decimal("414.74")
    assert Decimal(body["difference"]) == 0
    listed = admin.get(f"{BASE}/reconciliations/").json()
    assert listed[0]["id"] == run.pk


def test_a_posted_invoice_missing_in_the_erp_is_a_finding_and_is_looked_up_again(admin, posted):
    LedgerInvoice.objects.update(external_document_number="SOMETHING-ELSE")
    response = admin.post(f"{BASE}/reconciliations/", content_type="application/json")
    assert response.status_code == 201
    findings = response.json()["findings"]
    assert [(f["kind"], f["record"]) for f in findings] == [("MISSING_IN_ERP", posted.pk)]
    assert response.json()["counts"]["MISSING_IN_ERP"] == 1
    posted.refresh_from_db()
    assert posted.state == SyncState.UNCERTAIN


def test_reconciling_an_erp_that_cannot_be_read_is_a_bad_gateway_and_records_no_run(admin):
    offline = mock.Mock()
    offline.list_documents.side_effect = ConnectorError(
        "Tenant offline", category="CONNECTION", transient=True
    )
    with mock.patch("syncengine.reconcile.connector_for", return_value=offline):
        response = admin.post(f"{BASE}/reconciliations/", content_type="application/json")
    assert response.status_code == 502
    assert response.json()["code"] == "erp_unavailable"
    assert "Tenant offline" in response.json()["detail"]
    assert not ReconciliationRun.objects.exists()


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AR])
def test_only_an_admin_reconciles_and_nothing_runs_otherwise(client, make_user, connection, role):
    client.force_login(make_user(role, connection))
    response = client.post(f"{BASE}/reconciliations/", content_type="application/json")
    assert response.status_code == 403
    assert not ReconciliationRun.objects.exists()


# --- the sandbox ledger's time entries ----------------------------------------------------------


def test_time_posted_to_the_sandbox_is_listed_newest_first(ar, time_posted):
    response = ar.get(f"{BASE}/ledger/time-entries/")
    assert response.status_code == 200
    results = response.json()["results"]
    stored = LedgerTimeEntry.objects.order_by("-pk")
    assert [row["external_document_number"] for row in results] == [
        entry.external_document_number for entry in stored
    ]
    labor = next(row for row in results if row["external_document_number"] == "ST-TE-TC-9-1")
    assert (labor["employee"], labor["hours"], labor["pay_type"], labor["job_number"]) == (
        "E300", "7.50", "REG", "J-20001",
    )  # fmt: skip
    assert response.json()["next"] is None


def test_time_entries_page_by_id_until_every_one_was_listed(ar, time_posted, monkeypatch):
    monkeypatch.setattr(ops_views, "LEDGER_PAGE_SIZE", 2)
    seen: list[str] = []
    url: str | None = f"{BASE}/ledger/time-entries/"
    while url:
        page = ar.get(url).json()
        assert len(page["results"]) <= 2
        seen += [row["external_document_number"] for row in page["results"]]
        url = page["next"]
    assert seen == list(
        LedgerTimeEntry.objects.order_by("-pk").values_list("external_document_number", flat=True)
    )


def test_a_connection_that_does_not_post_to_the_sandbox_has_no_time_entries(ar, connection):
    Connection.objects.filter(pk=connection.pk).update(target=Connection.Target.BUSINESS_CENTRAL)
    assert ar.get(f"{BASE}/ledger/time-entries/").status_code == 404


# --- catalog import -----------------------------------------------------------------------------


def catalog_import(client, kind: str, text: str | bytes, reason: str = ""):
    url = f"{BASE}/catalog/import/?kind={kind}&reason={reason}"
    return client.post(url, text, content_type="text/csv")


def test_an_admin_replaces_one_catalog_list_from_csv_and_the_import_is_audited(admin, connection):
    kept = set(CatalogEntry.objects.exclude(kind="TAX_CODE").values_list("pk", flat=True))
    old = set(CatalogEntry.objects.filter(kind="TAX_CODE").values_list("code", flat=True))
    text = "code,name\nNC-7.25,North Carolina 7.25%\nZZ-1,Test code\n"
    response = catalog_import(admin, "TAX_CODE", text, reason="Offline%20tenant")
    assert response.status_code == 200, response.content
    counts = response.json()["counts"]
    assert counts["returned"] == 2
    listed = CatalogEntry.objects.filter(kind="TAX_CODE", missing_since__isnull=True)
    assert set(listed.values_list("code", flat=True)) == {"NC-7.25", "ZZ-1"}
    assert counts["missing"] == len(old - {"NC-7.25", "ZZ-1"})
    assert set(CatalogEntry.objects.exclude(kind="TAX_CODE").values_list("pk", flat=True)) == kept
    audit = RuleAudit.objects.filter(connection=connection).latest("id")
    assert (audit.action, audit.actor, audit.reason) == (
        RuleAudit.Action.CATALOG_IMPORTED, "user:ada", "Offline tenant",
    )  # fmt: skip


def test_a_bad_catalog_file_names_row_and_column_and_stores_nothing(admin):
    before = list(CatalogEntry.objects.order_by("pk").values_list("pk", "code", "missing_since"))
    response = catalog_import(admin, "ACCOUNT", "code,name,active\n4010,Revenue,maybe\n,No code,\n")
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "import_invalid"
    assert [error["field"].lower() for error in problem["errors"]] == [
        "row 2, column active", "row 3, column code",
    ]  # fmt: skip
    after = list(CatalogEntry.objects.order_by("pk").values_list("pk", "code", "missing_since"))
    assert after == before


def test_a_catalog_file_that_is_not_utf8_is_refused_with_its_line(admin):
    response = catalog_import(admin, "ACCOUNT", b"code,name\n4010,Caf\xe9\n")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "line 2"


def test_an_unknown_catalog_kind_is_a_validation_problem(admin):
    response = catalog_import(admin, "PLANETS", "code\nX\n")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "kind"


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AR])
def test_only_an_admin_imports_a_catalog_list(client, make_user, connection, role):
    client.force_login(make_user(role, connection))
    before = CatalogEntry.objects.count()
    assert catalog_import(client, "TAX_CODE", "code\nZZ-1\n").status_code == 403
    assert CatalogEntry.objects.count() == before
