"""The books and the audit trail are protected by the database itself, not only by Python."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from django.db import connection as db

from syncengine import services
from syncengine.erps.sandbox.models import JournalEntry, JournalLine, LedgerAccount
from syncengine.models import SyncEvent, SyncRecord
from syncengine.services.records import _event, events_written_together
from tests.conftest import envelope, ingest

pytestmark = pytest.mark.django_db


def draft_entry(connection, *amounts):
    """A draft entry with lines given as (account number, debit, credit)."""
    entry = JournalEntry.objects.create(
        connection=connection, number="JE-T1", posting_date=date(2026, 11, 1)
    )
    for number, debit, credit in amounts:
        JournalLine.objects.create(
            entry=entry,
            account=LedgerAccount.objects.get(connection=connection, number=number),
            debit=Decimal(debit),
            credit=Decimal(credit),
        )
    return entry


def post(entry):
    entry.state = JournalEntry.State.POSTED
    entry.save(update_fields=["state"])


def refused(action, match=None):
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        action()


def test_a_balanced_entry_posts_even_when_its_cents_would_not_add_up_in_floating_point(connection):
    entry = draft_entry(
        connection, ("1200", "0.30", "0"), ("4010", "0", "0.10"), ("4010", "0", "0.20")
    )
    post(entry)
    assert JournalEntry.objects.get(pk=entry.pk).state == JournalEntry.State.POSTED


def test_the_database_refuses_to_post_an_unbalanced_entry(connection):
    entry = draft_entry(connection, ("1200", "100.00", "0"), ("4010", "0", "99.99"))
    refused(lambda: post(entry))
    assert JournalEntry.objects.get(pk=entry.pk).state == JournalEntry.State.DRAFT


def test_the_database_refuses_an_entry_with_a_single_line(connection):
    entry = draft_entry(connection, ("1200", "100.00", "0"))
    refused(lambda: post(entry))


def test_an_entry_cannot_be_created_already_posted(connection):
    refused(
        lambda: JournalEntry.objects.create(
            connection=connection,
            number="JE-X",
            posting_date=date(2026, 11, 1),
            state=JournalEntry.State.POSTED,
        )
    )


def test_lines_of_a_posted_entry_cannot_be_changed_added_or_removed(connection):
    entry = draft_entry(connection, ("1200", "50.00", "0"), ("4010", "0", "50.00"))
    post(entry)
    line = entry.lines.first()
    refused(lambda: JournalLine.objects.filter(pk=line.pk).update(debit=Decimal("60.00")), "posted")
    refused(lambda: JournalLine.objects.filter(pk=line.pk).delete(), "posted")
    refused(
        lambda: JournalLine.objects.create(
            entry=entry, account=line.account, debit=Decimal("1.00"), credit=Decimal("0")
        ),
        "posted",
    )
    refused(lambda: JournalEntry.objects.filter(pk=entry.pk).update(memo="edited"), "posted")
    refused(lambda: JournalEntry.objects.filter(pk=entry.pk).delete())  # PROTECT refuses first


def test_a_journal_line_must_have_exactly_one_positive_side(connection):
    entry = draft_entry(connection)
    account = LedgerAccount.objects.get(connection=connection, number="1200")
    for debit, credit in [("0", "0"), ("5", "5"), ("-5", "0")]:
        refused(
            lambda d=debit, c=credit: JournalLine.objects.create(
                entry=entry, account=account, debit=Decimal(d), credit=Decimal(c)
            )
        )


def test_sync_events_cannot_be_edited_or_deleted_by_the_application(connection):
    ingest(connection, envelope())
    event = SyncEvent.objects.get()
    refused(lambda: SyncEvent.objects.filter(pk=event.pk).update(detail="rewritten"))
    refused(lambda: SyncEvent.objects.filter(pk=event.pk).delete())

    def raw_update():
        with db.cursor() as cursor:
            cursor.execute("UPDATE syncengine_syncevent SET actor = 'mallory'")

    refused(raw_update)
    assert SyncEvent.objects.get().actor == "system"


def test_event_data_encoded_once_is_stored_as_json_and_read_back_as_the_object(connection):
    ingest(connection, envelope())
    record = SyncRecord.objects.get()
    data = {"amount": Decimal("12.50"), "on": date(2026, 11, 23), "exchanges": [{"status": 200}]}
    with transaction.atomic(), events_written_together():
        _event(record, "READY", "READY", actor="test", now=record.received_at, data=data)
    _event(record, "READY", "READY", actor="test", now=record.received_at, detail="alone")
    stored = SyncEvent.objects.filter(record=record, actor="test").order_by("id")
    assert [event.data for event in stored] == [
        {"amount": "12.50", "on": "2026-11-23", "exchanges": [{"status": 200}]},
        {},
    ]
    assert stored.filter(data__exchanges__0__status=200).count() == 1


def test_a_posted_sync_record_must_carry_its_erp_document_id(connection):
    ingest(connection, envelope())
    record = SyncRecord.objects.get()
    refused(lambda: SyncRecord.objects.filter(pk=record.pk).update(state="POSTED"))


def test_the_same_idempotency_key_cannot_exist_twice_on_a_connection(connection):
    ingest(connection, envelope())
    record = SyncRecord.objects.get()
    record.pk = None
    record.operation = "OTHER"
    refused(record.save)
    assert services.invoice_key("4242") == record.idempotency_key
