"""Rows written together (one JSON parameter on PostgreSQL, Django's bulk insert and executemany
on SQLite) read back exactly as the ORM writes them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from syncengine.bulk import rows_insert, rows_update
from syncengine.models import DocumentKind, Operation, SourceDocument, SourceReceipt, SyncRecord
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

AT = NOW + timedelta(microseconds=123456)


def documents(connection, receipt, numbers):
    return [
        SourceDocument(
            connection=connection, kind=DocumentKind.INVOICE, source_id=f"S-{number}",
            number=f"INV-{number}", status="ok", customer_name="Harbor Foods — Café",
            total=Decimal(number) + Decimal("0.05"), receipt=receipt,
            payload={"price": Decimal("110.10"), "note": 'quote " and \\ backslash'},
            canonical={"lines": [{"amount": "1.10"}]}, content_hash="h" * 64,
            first_received_at=AT, last_received_at=AT,
        )
        for number in numbers
    ]  # fmt: skip


def receipt_of(connection):
    return SourceReceipt.objects.create(
        connection=connection, channel=SourceReceipt.Channel.DEMO, origin="test", body="{}",
        body_bytes=2, received_at=NOW,
    )  # fmt: skip


def test_inserted_rows_get_their_own_ids_and_read_back_as_written(connection):
    rows = documents(connection, receipt_of(connection), [3, 1, 2])
    rows_insert(rows, key="source_id")
    for row in rows:
        stored = SourceDocument.objects.get(pk=row.pk)
        assert stored.source_id == row.source_id and stored.number == row.number
        assert stored.total == row.total and stored.customer_name == "Harbor Foods — Café"
        assert stored.payload == {"price": "110.10", "note": 'quote " and \\ backslash'}
        assert stored.canonical == {"lines": [{"amount": "1.10"}]}
        assert stored.first_received_at == AT  # to the microsecond
        assert not row._state.adding


def test_records_are_matched_to_their_documents_by_key_and_updated_together(connection):
    receipt = receipt_of(connection)
    docs = documents(connection, receipt, [1, 2])
    rows_insert(docs, key="source_id")
    records = [
        SyncRecord(connection=connection, document=document, operation=Operation.CREATE,
                   idempotency_key=f"ST-INV-{document.source_id}", next_attempt_at=NOW,
                   received_at=NOW, state_changed_at=NOW)
        for document in docs
    ]  # fmt: skip
    rows_insert(records, key="document")
    assert {record.document_id: record.pk for record in records} == dict(
        SyncRecord.objects.values_list("document_id", "pk")
    )
    records[0].plan, records[0].message, records[0].next_attempt_at = {"total": "2.05"}, "a", None
    records[1].plan, records[1].message, records[1].next_attempt_at = None, "b", AT
    rows_update(records, fields=["plan", "message", "next_attempt_at"])
    stored = {record.pk: record for record in SyncRecord.objects.all()}
    assert (stored[records[0].pk].plan, stored[records[0].pk].message) == ({"total": "2.05"}, "a")
    assert stored[records[0].pk].next_attempt_at is None
    assert (stored[records[1].pk].plan, stored[records[1].pk].next_attempt_at) == (None, AT)


def test_a_row_the_database_refuses_leaves_none_written(connection):
    receipt = receipt_of(connection)
    rows_insert(documents(connection, receipt, [1]), key="source_id")
    again = documents(connection, receipt, [2, 1])  # S-1 exists: the unique key refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(again, key="source_id")
    assert list(SourceDocument.objects.values_list("source_id", flat=True)) == ["S-1"]
