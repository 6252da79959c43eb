"""A document whose prerequisite is missing in the ERP (customer, project, vendor) waits,
blocked and naming it, instead of failing; it is sent again by itself when the thing can exist:
the connection's settings change (it may now create it) or the missing vendor is imported."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mappings.catalog import catalog_refresh
from syncengine import services
from syncengine.connections import connection_settings_update
from syncengine.models import SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest
from tests.test_business_central_engine import bc  # noqa: F401
from tests.test_business_central_engine import connection as bc_connection  # noqa: F401

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]
LATER = NOW + timedelta(minutes=10)


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def test_a_customer_missing_in_business_central_blocks_the_invoice_naming_it(bc_connection, bc):  # noqa: F811, E501
    bc_connection.erp_settings["create_customers"] = False
    bc_connection.save(update_fields=["erp_settings"])
    ingest(bc_connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.BLOCKED, "MISSING_PREREQUISITE")
    assert "does not exist in Business Central" in record.message
    assert record.problems[0]["code"] == "MISSING_PREREQUISITE"
    assert bc.rows("salesInvoices") == []


def test_allowing_customers_to_be_created_sends_the_blocked_invoice_by_itself(bc_connection, bc):  # noqa: F811, E501
    bc_connection.erp_settings["create_customers"] = False
    bc_connection.save(update_fields=["erp_settings"])
    ingest(bc_connection, envelope())
    post_due()
    connection_settings_update(connection=bc_connection, side="erp", actor="admin", now=LATER,
                               values={"create_customers": True})  # fmt: skip
    record = SyncRecord.objects.get()
    assert record.state == SyncState.READY
    assert record.events.last().detail == "The ERP settings changed: sending again."
    post_due(LATER)
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert [row["externalDocumentNumber"] for row in bc.rows("salesInvoices")] == ["ST-INV-4242"]


def test_a_catalog_read_that_finds_the_customer_sends_the_waiting_invoice(bc_connection, bc):  # noqa: F811, E501
    bc_connection.erp_settings["create_customers"] = False
    bc_connection.save(update_fields=["erp_settings"])
    ingest(bc_connection, envelope())
    other_customer = {"id": 777, "name": "Other Co"}
    ingest(bc_connection, envelope(id=4300, invoiceNumber="10500", customer=other_customer))
    post_due()
    record = SyncRecord.objects.get(idempotency_key="ST-INV-4242")
    assert record.failure_cause == "MISSING_PREREQUISITE:CUSTOMER:ST501"
    bc.add("customers", number="ST501", displayName="Harbor Foods", blocked=" ")  # by hand
    catalog_refresh(connection=bc_connection, actor="schedule", now=LATER, changes_only=True)
    record.refresh_from_db()
    assert record.state == SyncState.READY
    assert record.events.last().detail == (
        "The catalog read found what it waited for in the ERP: sending again."
    )
    other = SyncRecord.objects.get(idempotency_key="ST-INV-4300")
    assert (other.state, other.failure_cause) == (
        SyncState.BLOCKED, "MISSING_PREREQUISITE:CUSTOMER:ST777",
    )  # fmt: skip
    post_due(LATER)
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    [invoice] = bc.rows("salesInvoices")
    assert invoice["customerNumber"] == "ST501"


def test_a_settings_change_leaves_records_blocked_for_other_reasons_alone(connection):
    items = [{"id": 1, "itemType": "labor", "quantity": "1", "price": "80",
              "serviceLine": {"name": "Backflow Testing"}}]  # fmt: skip
    ingest(connection, envelope(items=items))
    post_due()
    connection_settings_update(connection=connection, side="erp", actor="admin", now=LATER,
                               values={"mixed_sign": "split"})  # fmt: skip
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.BLOCKED, "UNMAPPED_SERVICE_LINE")
