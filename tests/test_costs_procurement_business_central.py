"""Job item costs become G/L journal lines and PartsLedger AP invoices purchase invoices in the
fake Business Central: keyed, looked up before any create whose outcome is unknown, tied out to
the cent, and every body sent uses only fields the entity set lists as writable."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from console import demo
from mappings import services as mapping_services
from mappings.catalog import catalog_refresh, catalog_store
from mappings.models import RuleAudit
from syncengine.connections import connection_settings_update
from syncengine.erps.base import CatalogItem
from syncengine.models import DocumentKind, SyncRecord, SyncState
from tests.conftest import NOW
from tests.test_business_central_engine import assert_writable, writable_fields
from tests.test_costs_procurement import (
    COST_ACCOUNTS,
    ITEM,
    LABOR,
    PROCUREMENT,
    cost_rules,
    ingest_costs,
    ingest_procurement,
    job_items,
    post_due,
)

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]


@pytest.fixture
def bc(fake_bc):
    fake_bc.seed_demo_books()
    for number, name, _ in COST_ACCOUNTS:
        fake_bc.add("accounts", number=number, displayName=name, blocked=False,
                    accountType="Posting", directPosting=True, category="")  # fmt: skip
    fake_bc.add("journals", code="CROSSWALK", displayName="Crosswalk job costs")
    return fake_bc


@pytest.fixture
def connection(bc):
    connection = bc.connection(cost_journal="CROSSWALK", create_vendors=True,
                               vendor_number_prefix="PL")  # fmt: skip
    catalog_refresh(connection=connection, actor="test", now=NOW)
    imported = [CatalogItem(kind="PAY_TYPE", code=code) for code in demo.LABOR_PAY_TYPES.values()]
    imported += [CatalogItem(kind="COST_CODE", code=f"{index + 1}00")
                 for index in range(len(demo.SERVICE_LINES))]  # fmt: skip
    imported += [CatalogItem(kind="DEPARTMENT", code=code) for code in demo.OFFICE_CODES.values()]
    catalog_store(connection=connection, items=imported, actor="test", now=NOW,
                  action=RuleAudit.Action.CATALOG_IMPORTED,
                  kinds={"PAY_TYPE", "COST_CODE", "DEPARTMENT"})  # fmt: skip
    mapping_services.draft_replace(connection=connection, content=cost_rules(), actor="test",
                                   now=NOW, reason="Costs")  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=NOW.date(),
                                   reason="Costs", actor="test", now=NOW)  # fmt: skip
    connection.refresh_from_db()
    return connection


def test_job_item_costs_become_gl_journal_lines_with_the_key_and_dimensions(connection, bc):
    ingest_costs(connection, job_items(ITEM, LABOR))
    post_due()
    assert {r.state for r in SyncRecord.objects.all()} == {SyncState.POSTED}
    lines = {row["externalDocumentNumber"]: row for row in bc.rows("journalLines")}
    assert set(lines) == {"ST-JC-88001", "ST-JC-88002"}
    part = lines["ST-JC-88001"]
    assert (part["accountNumber"], part["balancingAccountNumber"], part["amount"]) == (
        "1400", "1300", Decimal("122.25"))  # fmt: skip
    assert part["documentNumber"] == "ST-JC-88001" and part["accountType"] == "G/L Account"
    dimensions = {(d["code"], d["valueCode"]) for d in bc.rows("dimensionSetLines",
                                                              parentId=part["id"])}  # fmt: skip
    assert dimensions == {("BRANCH", "RAL"), ("DEPARTMENT", "HVAC")}
    total = sum((row["amount"] for row in lines.values()), Decimal("0.00"))
    assert total == sum(r.document.total for r in SyncRecord.objects.all()) == Decimal("266.10")


def test_a_journal_line_whose_answer_was_lost_is_found_by_its_key(connection, bc):
    connection.erp_settings["timeout_seconds"] = 0.5
    connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest_costs(connection, job_items(ITEM))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert record.events.last().data["found_by_lookup"] is True
    assert len(bc.rows("journalLines")) == 1


def test_a_purchase_invoice_posts_with_its_vendor_created_first_and_ties_out(connection, bc):
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert record.state == SyncState.POSTED
    [vendor] = bc.rows("vendors")
    assert (vendor["number"], vendor["displayName"]) == ("PLV-100", "Ferguson Supply")
    [invoice] = bc.rows("purchaseInvoices")
    assert invoice["vendorInvoiceNumber"] == "ST-PI-PI-5531" and invoice["status"] == "Open"
    assert invoice["totalAmountIncludingTax"] == record.document.total == Decimal("433.26")
    assert record.erp_document_number == invoice["number"]
    adjustment = bc.rows("journalLines", externalDocumentNumber="ST-IA-IA-3")
    assert sorted((row["accountNumber"], row["balancingAccountNumber"], row["amount"])
                  for row in adjustment) == [("1300", "5020", Decimal("10.00")),
                                             ("5020", "1300", Decimal("61.13"))]  # fmt: skip


def test_a_missing_vendor_blocks_the_invoice_naming_it_when_vendors_may_not_be_created(
    connection, bc
):
    connection.erp_settings["create_vendors"] = False
    connection.save(update_fields=["erp_settings"])
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert (record.state, record.failure_category) == (SyncState.BLOCKED, "MISSING_PREREQUISITE")
    assert "Vendor PLV-100 (Ferguson Supply) does not exist in Business Central" in record.message
    assert bc.rows("purchaseInvoices") == []
    # Allowing Crosswalk to create vendors sends the waiting invoice again by itself.
    connection_settings_update(connection=connection, side="erp", values={"create_vendors": True},
                               actor="admin", now=NOW)  # fmt: skip
    record.refresh_from_db()
    assert record.state == SyncState.READY
    assert record.events.last().detail == "The ERP settings changed: sending again."
    post_due()
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and len(bc.rows("purchaseInvoices")) == 1


def test_a_purchase_invoice_whose_answer_was_lost_is_found_and_posted_once(connection, bc):
    connection.erp_settings["timeout_seconds"] = 0.5
    connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest_procurement(connection, {k: PROCUREMENT[k] for k in ("vendors", "purchaseInvoices")})
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert record.state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and record.events.last().data["found_by_lookup"]
    [invoice] = bc.rows("purchaseInvoices")
    assert invoice["status"] == "Open"  # the lookup finished the posting


def test_every_cost_and_purchase_body_uses_only_writable_fields(connection, bc):
    ingest_costs(connection, job_items(ITEM, LABOR))
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    fields, parts = writable_fields()
    bodies = [sent for sent in bc.sent if sent.body is not None and sent.method == "POST"]
    assert {sent.entity_set for sent in bodies} >= {
        "journalLines",
        "vendors",
        "purchaseInvoices",
        "purchaseInvoiceLines",
        "dimensionSetLines",
    }
    for sent in bodies:
        assert_writable(sent.entity_set, sent.body, fields, parts)
