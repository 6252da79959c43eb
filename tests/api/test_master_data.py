"""Two-way master data through the API: an integration pushes one side's changes (decided by the
ownership rules, bad items named by position), reads what waits and what lost, and sends now."""

from __future__ import annotations

import pytest

from console.access import Role
from masterdata.models import MasterChange, MasterRecord
from syncengine import services
from syncengine.erps.sandbox.models import LedgerCustomer
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db

BASE = "/api/v1/connections/demo/master-data"


@pytest.fixture
def admin(client, make_user, connection):
    client.force_login(make_user(Role.ADMIN, connection))
    return client


def push(client, side, changes, entity="CUSTOMER", **headers):
    return client.post(f"{BASE}/changes/", {"side": side, "entity": entity, "changes": changes},
                       content_type="application/json", **headers)  # fmt: skip


def test_pushed_changes_are_decided_and_bad_items_are_named_by_position(admin):
    response = push(admin, "SOURCE", [
        {"source_ref": "501", "values": {"phone": "919-555-0100"},
         "changed_at": "2026-11-20T15:00:00Z"},
        {"source_ref": "502", "values": {"fax": "1"}, "changed_at": "2026-11-20T15:00:00Z"},
    ])  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["taken"] == 1 and body["errors"][0].startswith("item 1: CUSTOMER has no field fax")
    erp_change = {"source_ref": "501", "values": {"phone": "919-555-0199"},
                  "changed_at": "2026-11-20T14:00:00Z", "erp_ref": "C-1"}  # fmt: skip
    older = push(admin, "ERP", [erp_change])
    assert older.json() == {"taken": 1, "errors": []}
    assert MasterRecord.objects.get().values == {"phone": "919-555-0100"}
    read = admin.get(f"{BASE}/").json()
    [waiting] = read["waiting"]
    assert (waiting["source_ref"], waiting["to_erp"], waiting["to_servicetrade"]) == (
        "501", {"phone": "919-555-0100"}, {},
    )  # fmt: skip
    [lost] = read["lost"]
    assert (lost["field"], lost["side"], lost["value"], lost["standing_value"]) == (
        "phone", "ERP", "919-555-0199", "919-555-0100",
    )  # fmt: skip


def test_a_push_that_is_not_valid_is_refused_whole_with_the_reason(admin):
    response = push(admin, "SOURCE", [{"source_ref": "501", "values": {"name": "a\x00b"},
                                       "changed_at": "2026-11-20T15:00:00Z"}])  # fmt: skip
    assert response.status_code == 400 and "NUL" in response.content.decode()
    assert push(admin, "SOURCE", []).status_code == 400
    assert push(admin, "SOURCE", [{"source_ref": "501", "values": {}, "changed_at": "soon"}]
                ).status_code == 400  # fmt: skip
    assert not MasterChange.objects.exists()


def test_the_same_push_again_changes_nothing_and_a_key_replays_the_answer(admin):
    change = [{"source_ref": "501", "values": {"phone": "1"}, "changed_at": "2026-11-20T15:00:00Z"}]
    first = push(admin, "SOURCE", change, HTTP_IDEMPOTENCY_KEY="push-1")
    again = push(admin, "SOURCE", change, HTTP_IDEMPOTENCY_KEY="push-1")
    assert first.json() == again.json()
    push(admin, "SOURCE", change)
    assert MasterChange.objects.count() == 1


def test_send_now_tells_the_sandbox_ledger(admin, connection):
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    push(admin, "SOURCE", [{"source_ref": "501", "values": {"name": "Harbor Foods Inc."},
                            "changed_at": "2026-11-20T15:00:00Z"}])  # fmt: skip
    response = admin.post(f"{BASE}/send/", content_type="application/json")
    assert response.json() == {"told": 1, "failed": 0, "errors": []}
    assert LedgerCustomer.objects.get(source_ref="501").name == "Harbor Foods Inc."
