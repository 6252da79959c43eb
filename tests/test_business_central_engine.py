"""The sync engine posting into the fake Business Central: invoices, a void, a mixed-sign invoice
and a week of time tie out to the cent, nothing is posted twice, and every body sent uses only
fields Business Central lets a client write."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from console import demo
from mappings import services as mapping_services
from syncengine import services
from syncengine.models import Operation, SyncRecord, SyncState
from syncengine.reconcile import reconciliation_run
from tests.conftest import NOW, envelope, ingest
from tests.test_timecards import CARD, send

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]

LATER = NOW + timedelta(days=2)
ENTITIES = (
    Path(__file__).resolve().parents[2] / "shared/validators/business-central/apiv2-entities.json"
)
MIXED = [
    {"id": 1, "itemType": "labor", "quantity": "2", "price": "100.00"},
    {"id": 2, "itemType": "other", "quantity": "1", "price": "-35.00", "description": "Discount"},
]


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


@pytest.fixture
def bc(fake_bc):
    fake_bc.seed_demo_books()
    return fake_bc


@pytest.fixture
def connection(bc):
    """A Business Central connection with the demo's rules, its catalog read from the fake plus
    the lists Business Central has no page for (pay types, cost codes, departments) imported."""
    return bc.publish_demo_rules(bc.connection(), now=NOW)


def test_invoices_a_void_and_a_week_of_time_post_to_business_central_and_tie_out(connection, bc):
    ingest(connection, envelope())  # 414.74 with tax
    ingest(connection, envelope(id=4243, invoiceNumber="10483", items=MIXED, taxRate=0))  # 165.00
    send(connection, CARD)
    assert post_due() == 3
    records = {record.idempotency_key: record for record in SyncRecord.objects.all()}
    assert {record.state for record in records.values()} == {SyncState.POSTED}
    invoices = {row["externalDocumentNumber"]: row for row in bc.rows("salesInvoices")}
    assert set(invoices) == {"ST-INV-4242", "ST-INV-4243"}
    source_total = sum(
        (record.document.total for record in records.values() if record.document.total),
        Decimal("0.00"),
    )
    erp_total = sum((row["totalAmountIncludingTax"] for row in invoices.values()), Decimal("0.00"))
    assert source_total == erp_total == Decimal("579.74")
    for key, row in invoices.items():
        assert (records[key].erp_document_id, records[key].erp_document_number) == (
            row["id"], row["number"],
        )  # fmt: skip
        assert row["number"] in records[key].erp_document_url and row["status"] == "Open"
    tax = bc.rows("salesInvoiceLines", lineObjectNumber="2300")
    assert [line["amountIncludingTax"] for line in tax] == [Decimal("9.45")]
    # the week: every entry once, its hours to the hundredth, the projects created first
    entries = bc.rows("timeRegistrationEntries")
    assert sum((entry["quantity"] for entry in entries), Decimal(0)) == Decimal("18.00")
    assert len(entries) == len(CARD["entries"])
    assert {row["number"] for row in bc.rows("projects")} == {"J-20001", "J-20002"}

    ingest(connection, envelope(status="void"), now=LATER)
    assert post_due(LATER) == 1
    credit = SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)
    assert credit.state == SyncState.POSTED
    [memo] = bc.rows("salesCreditMemos")
    assert (memo["invoiceId"], memo["totalAmountIncludingTax"]) == (
        invoices["ST-INV-4242"]["id"], Decimal("414.74"),
    )  # fmt: skip
    assert memo["externalDocumentNumber"] == credit.idempotency_key == "ST-VOID-4242"

    run = reconciliation_run(connection=connection, actor="test", now=LATER)
    assert run.counts == {} and run.difference == Decimal("0.00")
    assert (run.erp_invoice_total, run.erp_credit_total) == (Decimal("579.74"), Decimal("414.74"))


def test_an_invoice_whose_answer_was_lost_is_found_by_its_key_and_not_created_again(connection, bc):
    connection.erp_settings["timeout_seconds"] = 0.5
    connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(hours=2))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert record.events.last().data["found_by_lookup"] is True
    assert len(bc.rows("salesInvoices")) == 1
    assert bc.rows("salesInvoices")[0]["status"] == "Open"  # the lookup finished the posting


def test_a_rate_limited_invoice_waits_for_retry_after_then_posts(connection, bc):
    bc.inject("429", path_contains="$batch", retry_after=120)
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.RETRY_SCHEDULED, "RATE_LIMIT")
    assert record.next_attempt_at >= NOW + timedelta(seconds=120)
    post_due(record.next_attempt_at)
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and len(bc.rows("salesInvoices")) == 1


def test_a_blocked_account_fails_the_record_with_business_centrals_reason(connection, bc):
    bc.rows("accounts", number="4011")[0]["blocked"] = True
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.FAILED, "VALUE")
    assert "4011" in record.message and bc.rows("salesInvoices") == []


# --- every body uses only fields Business Central lets a client write -----------------------------


def writable_fields() -> tuple[dict[str, set[str]], dict[str, dict[str, str]]]:
    """Per entity set, its writable fields and its parts (sub-collections), from the facts file
    in ../shared when it is there, else from the fake's own table."""
    if ENTITIES.exists():
        entities = json.loads(ENTITIES.read_text())["entities"]
        fields = {
            name: set(entity["editableFields"])
            for name, entity in entities.items()
            if entity.get("pageProperties", {}).get("Editable", True) is not False
        }
        parts = {
            name: {part["name"]: part["entitySetName"] for part in entity["partDetails"]}
            for name, entity in entities.items()
        }
        return fields, parts
    from tests.fakes.business_central import WRITABLE

    return {name: set(names) for name, names in WRITABLE.items()}, {}


def assert_writable(entity_set: str, body: dict[str, Any], fields, parts) -> None:
    assert entity_set in fields, f"{entity_set} is not a writable entity set"
    for name, value in body.items():
        if name in parts.get(entity_set, {}):  # a deep insert
            for item in value if isinstance(value, list) else [value]:
                assert_writable(parts[entity_set][name], item, fields, parts)
            continue
        assert name in fields[entity_set], f"{entity_set}: {name!r} is not writable"


def test_every_body_sent_uses_only_fields_the_entity_set_lists_as_writable(connection, bc):
    connection.erp_settings["time_dimensions"] = {"department": "BRANCH"}
    connection.erp_settings["line_tax_code"] = "NC-7.25"
    connection.erp_settings["customer_dimension_posting"] = "Same Code"
    connection.save(update_fields=["erp_settings"])
    rules = demo.demo_rules()
    rules["dimensions"][1]["customer_default"] = True  # BRANCH, from the office
    mapping_services.draft_replace(connection=connection, content=rules, actor="test", now=NOW,
                                   reason="Branch as the customers' default")  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=demo.RULES_EFFECTIVE_FROM,
                                   reason="Customer defaults", actor="test", now=NOW)  # fmt: skip
    ingest(connection, envelope())
    send(connection, CARD)
    post_due()
    ingest(connection, envelope(status="void"), now=LATER)
    post_due(LATER)
    fields, parts = writable_fields()
    bodies = [
        sent for sent in bc.sent if sent.body is not None and sent.method in ("POST", "PATCH")
    ]
    sets = {sent.entity_set for sent in bodies}
    assert sets == {"customers", "defaultDimensions", "projects", "salesInvoices",
                    "salesInvoiceLines", "salesCreditMemos", "salesCreditMemoLines",
                    "dimensionSetLines", "timeRegistrationEntries"}  # fmt: skip
    for sent in bodies:
        assert_writable(sent.entity_set, sent.body, fields, parts)
