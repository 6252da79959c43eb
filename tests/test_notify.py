"""E-mail to a connection's support contacts: only when the blocked or failed count rises, and a
daily digest of the connection's own yesterday (real database, locmem mail backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from paymentsync.models import DigestSent, NotificationKind, NotificationMark
from syncengine import notify, services, tasks
from syncengine.models import SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db

CONTACTS = ["ops@example.com", "ar@example.com"]
UNMAPPED = {"serviceLine": {"id": 6, "name": "Backflow Testing"}}  # left unmapped by the demo


@pytest.fixture
def contacts(connection, settings):
    settings.CROSSWALK_CONSOLE_URL = "https://crosswalk.example.com"
    connection.support_emails = CONTACTS
    connection.save(update_fields=["support_emails"])
    return connection


def blocked_invoice(connection, invoice_id):
    job = {"id": 7000 + invoice_id, "number": f"J-{invoice_id}", "type": "repair", **UNMAPPED}
    ingest(connection, envelope(id=invoice_id, invoiceNumber=str(invoice_id), job=job))
    services.sync_run_until_idle(now=lambda: NOW)


def fail(connection, invoice_id):
    ingest(connection, envelope(id=invoice_id, invoiceNumber=str(invoice_id)))
    record = SyncRecord.objects.get(connection=connection, document__source_id=str(invoice_id))
    SyncRecord.objects.filter(pk=record.pk).update(
        state=SyncState.FAILED, failure_category="VALUE", failure_cause="VALUE",
        message="The ERP refused the customer's name.",
    )  # fmt: skip


def test_a_rising_blocked_count_mails_the_support_contacts_once_with_causes_and_links(
    contacts, mailoutbox
):
    blocked_invoice(contacts, 1)
    blocked_invoice(contacts, 2)
    assert notify.notifications_check(connection=contacts, now=NOW) == [NotificationKind.BLOCKED]
    [mail] = mailoutbox
    assert mail.to == CONTACTS
    assert mail.subject == f"Crosswalk: 2 record(s) of {contacts.name} blocked"
    assert "2 record(s) of" in mail.body and "(last time we wrote: 0)" in mail.body
    assert "2 × UNMAPPED_SERVICE_LINE" in mail.body
    assert "https://crosswalk.example.com/sync/?connection=demo&state=BLOCKED" in mail.body
    assert "https://crosswalk.example.com/connections/demo/" in mail.body
    # Same count: nothing more.
    assert notify.notifications_check(connection=contacts, now=NOW) == []
    assert len(mailoutbox) == 1


def test_a_fall_is_not_mailed_but_the_next_rise_is(contacts, mailoutbox):
    blocked_invoice(contacts, 1)
    blocked_invoice(contacts, 2)
    notify.notifications_check(connection=contacts, now=NOW)
    SyncRecord.objects.filter(connection=contacts, document__source_id="2").update(
        state=SyncState.CANCELLED
    )
    assert notify.notifications_check(connection=contacts, now=NOW) == []
    mark = NotificationMark.objects.get(connection=contacts, kind=NotificationKind.BLOCKED)
    assert mark.count_told == 1
    blocked_invoice(contacts, 3)
    assert notify.notifications_check(connection=contacts, now=NOW) == [NotificationKind.BLOCKED]
    assert len(mailoutbox) == 2
    assert "(last time we wrote: 1)" in mailoutbox[1].body


def test_failed_records_are_counted_apart_from_blocked_ones(contacts, mailoutbox):
    fail(contacts, 1)
    assert notify.notifications_check(connection=contacts, now=NOW) == [NotificationKind.FAILED]
    assert mailoutbox[0].subject.endswith("1 record(s) of " + contacts.name + " failed")
    assert "The ERP refused the customer's name." in mailoutbox[0].body


def test_a_connection_without_support_contacts_gets_no_mail(connection, mailoutbox):
    blocked_invoice(connection, 1)
    assert notify.notifications_check(connection=connection, now=NOW) == []
    assert notify.notifications_check_all(now=NOW) == 0
    assert notify.notifications_digest_all(now=NOW + timedelta(days=1)) == 0
    assert mailoutbox == []
    assert not NotificationMark.objects.filter(connection=connection).exists()


def test_a_mail_that_cannot_be_sent_is_tried_again_on_the_next_run(contacts, mailoutbox):
    blocked_invoice(contacts, 1)
    with mock.patch("syncengine.notify.send_mail", side_effect=OSError("SMTP down")):
        assert notify.notifications_check(connection=contacts, now=NOW) == []
    assert NotificationMark.objects.get(kind=NotificationKind.BLOCKED).count_told == 0
    assert notify.notifications_check(connection=contacts, now=NOW) == [NotificationKind.BLOCKED]
    assert len(mailoutbox) == 1


def test_the_digest_covers_the_connections_yesterday_and_goes_once(contacts, mailoutbox):
    # New York: 2026-11-20 15:00 UTC is 10:00 local. Invoice 1 posts then; invoice 2 posts at
    # 03:00 UTC on the 21st, which is still the 20th in New York.
    ingest(contacts, envelope(id=1, invoiceNumber="1"))
    services.sync_run_until_idle(now=lambda: NOW)
    ingest(contacts, envelope(id=2, invoiceNumber="2"), now=NOW + timedelta(hours=12))
    services.sync_run_until_idle(now=lambda: NOW + timedelta(hours=12))
    blocked_invoice(contacts, 3)
    fail(contacts, 4)
    before_hour = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)  # 06:00 in New York
    assert notify.digest_day_due(connection=contacts, now=before_hour) is None
    after_hour = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)  # 08:00 in New York
    assert notify.notifications_digest_all(now=after_hour) == 1
    [mail] = mailoutbox
    assert mail.subject == f"Crosswalk daily digest for {contacts.name}, Fri 20 Nov 2026"
    assert "Posted that day: 2 record(s), documents totalling 829.48 USD." in mail.body
    assert "- blocked (a mapping or prerequisite is missing): 1" in mail.body
    assert "1 × UNMAPPED_SERVICE_LINE" in mail.body
    assert "- failed: 1" in mail.body
    assert "- waiting to post: 0" in mail.body
    assert "https://crosswalk.example.com/sync/?connection=demo&state=UNCERTAIN" in mail.body
    assert DigestSent.objects.get(connection=contacts).counts["posted"] == 2
    # Later runs that day send nothing more.
    assert notify.notifications_digest_all(now=after_hour + timedelta(hours=3)) == 0
    assert len(mailoutbox) == 1


def test_a_digest_that_cannot_be_sent_is_sent_by_the_next_run(contacts, mailoutbox):
    at = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    with mock.patch("syncengine.notify.send_mail", side_effect=OSError("SMTP down")):
        assert notify.notifications_digest_all(now=at) == 0
    assert not DigestSent.objects.exists()
    assert notify.notifications_digest_all(now=at + timedelta(minutes=15)) == 1
    assert "Posted that day: 0 record(s)" in mailoutbox[0].body


def test_the_beat_tasks_run_the_checks_for_every_connection(contacts, mailoutbox):
    blocked_invoice(contacts, 1)
    tasks.notifications_check_all()
    assert [mail.subject for mail in mailoutbox] == [
        f"Crosswalk: 1 record(s) of {contacts.name} blocked"
    ]
    with mock.patch.object(timezone, "now", return_value=datetime(2026, 11, 21, 13, tzinfo=UTC)):
        tasks.notifications_digest_all()
    assert mailoutbox[-1].subject.startswith("Crosswalk daily digest")
