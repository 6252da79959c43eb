import base64
import json
from datetime import timedelta

import pytest

from syncengine import services
from syncengine.models import SourceDocument, SourceReceipt, SyncEvent, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest, invoice_data

pytestmark = pytest.mark.django_db


def test_an_approved_invoice_is_kept_raw_and_becomes_a_ready_sync_record(connection):
    body = envelope()
    result = ingest(connection, body)
    assert result.errors == []
    receipt = SourceReceipt.objects.get()
    assert receipt.body == body.decode()
    assert receipt.outcome == SourceReceipt.Outcome.ACCEPTED
    record = SyncRecord.objects.get()
    assert record.state == SyncState.READY
    assert record.idempotency_key == "ST-INV-4242"
    assert record.document.number == "10482"
    assert str(record.document.total) == "414.74"
    assert list(record.events.values_list("from_state", "to_state")) == [("", "READY")]


def test_receiving_the_same_invoice_twice_changes_nothing(connection):
    ingest(connection, envelope())
    again = ingest(connection, envelope(), now=NOW + timedelta(minutes=5))
    assert again.unchanged == 1 and again.accepted == []
    assert SyncRecord.objects.count() == 1
    assert SyncEvent.objects.count() == 1
    assert SourceReceipt.objects.count() == 2  # every delivery is still kept


def test_one_malformed_invoice_in_a_list_page_does_not_block_the_others(connection):
    good = invoice_data(id=1, invoiceNumber="A-1")
    bad = invoice_data(id=2, invoiceNumber="A-2")
    bad["items"][1]["price"] = "12,50"
    also_good = invoice_data(id=3, invoiceNumber="A-3")
    body = json.dumps({"data": {"invoices": [good, bad, also_good]}}).encode()
    result = ingest(connection, body)
    assert result.errors == [
        'invoice 2 of 3 (A-2): data.items[1].price: expected a number, got "12,50"'
    ]
    assert sorted(SourceDocument.objects.values_list("number", flat=True)) == ["A-1", "A-3"]
    assert result.receipt.outcome == SourceReceipt.Outcome.PARTLY_ACCEPTED
    assert result.receipt.errors == result.errors


def test_a_body_that_is_not_json_is_kept_and_rejected(connection):
    result = ingest(connection, b"\xff\xfe garbage")
    assert result.receipt.outcome == SourceReceipt.Outcome.REJECTED
    assert result.errors[0].startswith("body: not valid JSON")
    receipt = SourceReceipt.objects.get()
    assert receipt.body_is_base64
    assert base64.b64decode(receipt.body) == b"\xff\xfe garbage"
    assert SyncRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("internal_review", "Status 'internal_review' is not approved for posting"),
        ("void", "Voided in ServiceTrade before it was posted"),
    ],
)
def test_unapproved_and_voided_invoices_are_skipped_with_the_reason(connection, status, message):
    ingest(connection, envelope(status=status))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.SKIPPED
    assert record.message.startswith(message)


def test_which_statuses_count_as_approved_is_set_per_connection(connection):
    connection.approved_statuses = ["internal_review"]
    connection.save()
    ingest(connection, envelope(status="internal_review"))
    assert SyncRecord.objects.get().state == SyncState.READY


def test_an_invoice_approved_later_becomes_ready(connection):
    ingest(connection, envelope(status="internal_review"))
    ingest(connection, envelope(status="ok"), now=NOW + timedelta(hours=1))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.READY
    changes = record.events.last().data["changes"]
    assert {"field": "status", "before": "internal_review", "after": "ok"} in changes


def test_a_change_after_posting_is_flagged_and_never_posted_again(connection):
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    ingest(connection, envelope(taxRate=7.5), now=NOW + timedelta(days=1))
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    last = record.events.last()
    assert last.detail.startswith("Changed in ServiceTrade after it was posted")
    assert {change["field"] for change in last.data["changes"]} >= {"tax_rate", "tax_amount"}
    assert services.sync_run_until_idle(now=lambda: NOW + timedelta(days=1)) == 0


def test_a_void_after_posting_queues_a_credit_memo_record(connection):
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    ingest(connection, envelope(status="void"), now=NOW + timedelta(days=1))
    original, credit = SyncRecord.objects.order_by("id")
    assert original.state == SyncState.POSTED
    assert (credit.operation, credit.state, credit.idempotency_key) == (
        "VOID_CREDIT_MEMO",
        SyncState.READY,
        "ST-VOID-4242",
    )
    assert original.events.last().detail == (
        f"Voided in ServiceTrade: credit memo record {credit.pk} will offset it."
    )


def test_long_source_ids_still_give_a_key_that_fits_the_erp_field():
    key = services.invoice_key("x" * 64)
    assert len(key) == 35 and key.startswith("ST-INV-")
    assert key == services.invoice_key("x" * 64)


def _page(*invoices: dict) -> bytes:
    return json.dumps({"data": {"invoices": list(invoices)}}).encode()


def test_a_page_of_new_invoices_is_written_in_a_few_statements_whatever_its_length(
    connection, django_assert_max_num_queries
):
    page = _page(*(invoice_data(id=n, invoiceNumber=f"B-{n}") for n in range(1, 201)))
    # A handful on PostgreSQL; a few more on SQLite, which caps the rows of one insert.
    with django_assert_max_num_queries(30):
        result = ingest(connection, page)
    assert len(result.accepted) == 200 and result.errors == []
    assert SyncRecord.objects.filter(state=SyncState.READY).count() == 200
    assert SyncEvent.objects.filter(from_state="", to_state="READY").count() == 200
    record = SyncRecord.objects.get(document__number="B-7")
    assert record.idempotency_key == "ST-INV-7"
    assert record.document.receipt == result.receipt


def test_a_page_mixing_new_repeated_changed_and_twice_listed_invoices_accepts_each_as_alone(
    connection,
):
    ingest(connection, _page(invoice_data(id=1, invoiceNumber="C-1"),
                             invoice_data(id=2, invoiceNumber="C-2")))  # fmt: skip
    changed = invoice_data(id=2, invoiceNumber="C-2")
    changed["items"][0]["price"] = "999.00"
    first, second = invoice_data(id=5, invoiceNumber="C-5"), invoice_data(id=5, invoiceNumber="C-5")
    second["status"] = "void"
    result = ingest(
        connection,
        _page(invoice_data(id=1, invoiceNumber="C-1"), changed,
              invoice_data(id=3, invoiceNumber="C-3"), first, second),
        now=NOW + timedelta(minutes=1),
    )  # fmt: skip
    assert result.unchanged == 1
    assert sorted(r.document.number for r in result.accepted) == ["C-2", "C-3", "C-5", "C-5"]
    by_number = {r.document.number: r for r in SyncRecord.objects.select_related("document")}
    assert by_number["C-1"].events.count() == 1
    assert by_number["C-2"].document.total != SourceDocument.objects.get(number="C-1").total
    assert list(by_number["C-2"].events.values_list("to_state", flat=True)) == ["READY", "READY"]
    # The later listing of C-5 saw the earlier one: received, then voided before posting.
    assert by_number["C-5"].state == SyncState.CANCELLED
    assert list(by_number["C-5"].events.values_list("to_state", flat=True)) == [
        "READY", "CANCELLED"
    ]  # fmt: skip
    assert by_number["C-3"].state == SyncState.READY


def test_a_new_invoice_another_delivery_creates_meanwhile_is_taken_one_by_one_and_kept_once(
    connection, monkeypatch
):
    from syncengine.services import ingest as ingest_module

    bulk = ingest_module._records_create_in_bulk

    def the_other_delivery_first(*args, **kwargs):
        monkeypatch.setattr(ingest_module, "_records_create_in_bulk", bulk)
        ingest(connection, envelope(id=11, invoiceNumber="D-11"))
        return bulk(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_records_create_in_bulk", the_other_delivery_first)
    result = ingest(connection, _page(invoice_data(id=11, invoiceNumber="D-11"),
                                      invoice_data(id=12, invoiceNumber="D-12")))  # fmt: skip
    assert result.errors == []
    assert result.unchanged == 1
    assert [r.document.number for r in result.accepted] == ["D-12"]
    assert SourceDocument.objects.filter(number="D-11").count() == 1
    assert SyncRecord.objects.count() == 2
    assert SyncEvent.objects.count() == 2


def test_source_values_of_a_bulk_page_count_each_new_invoice_once(connection):
    from mappings.models import SourceValue

    ingest(connection, _page(*(invoice_data(id=n, invoiceNumber=f"E-{n}") for n in (1, 2, 3))))
    ingest(connection, _page(invoice_data(id=1, invoiceNumber="E-1")),
           now=NOW + timedelta(minutes=1))  # fmt: skip
    office = SourceValue.objects.get(connection=connection, attribute="office")
    assert office.documents == 3
    assert office.last_seen_at == NOW + timedelta(minutes=1)
