"""Each person reads times in their own time zone; the sync log filters by kind, failure
category and received dates (read in that zone), and an Admin retries all a filter shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from console import selectors
from console.access import Role
from console.models import UserPreference
from syncengine import services
from syncengine.models import Connection, SyncRecord, SyncState
from tests.conftest import BASE_INVOICE, NOW, envelope, ingest

pytestmark = pytest.mark.django_db
CHICAGO = ZoneInfo("America/Chicago")


def user_with(role: str, connection: Connection, name: str = "ana") -> User:
    user = User.objects.create_user(username=name, password="pw")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    connection.members.add(user)
    return user


def receive(connection: Connection, source_id: int, *, at: datetime, service_line: str = "HVAC"):
    job = {**BASE_INVOICE["job"], "serviceLine": {"id": 1, "name": service_line}}
    ingest(connection, envelope(id=source_id, invoiceNumber=f"T-{source_id}", job=job), now=at)
    return SyncRecord.objects.get(document__source_id=str(source_id))


def log_numbers(client, **filters: str) -> list[str]:
    response = client.get(reverse("console:sync-log"), filters)
    assert response.status_code == 200
    return [record.document.number for record in response.context["records"]]


# --- the account page ---------------------------------------------------------------------------


def test_a_person_picks_a_time_zone_and_the_console_shows_times_in_it(client, connection):
    record = receive(connection, 1, at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC))
    client.force_login(user_with(Role.AR, connection))
    response = client.post(reverse("account"), {"time_zone": "America/Chicago"})
    assert response.status_code == 302
    assert UserPreference.objects.get().time_zone == "America/Chicago"
    page = client.get(reverse("console:record-detail", args=[record.pk])).content.decode()
    # 15:00 UTC is 09:00 in Chicago in November, and the label says whose time it is.
    assert "09:00" in page and "America/Chicago" in page
    assert "15:00 UTC" not in page


def test_times_stay_in_the_site_default_until_a_zone_is_chosen(client, connection):
    record = receive(connection, 1, at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC))
    client.force_login(user_with(Role.AR, connection))
    page = client.get(reverse("console:record-detail", args=[record.pk])).content.decode()
    assert "15:00" in page and "UTC" in page


def test_an_unknown_time_zone_is_refused_with_a_message_and_nothing_saved(client, connection):
    client.force_login(user_with(Role.AR, connection))
    response = client.post(reverse("account"), {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    assert "is not a time zone" in response.content.decode()
    assert not UserPreference.objects.exists()


def test_clearing_the_time_zone_goes_back_to_the_site_default(client, connection):
    user = user_with(Role.AR, connection)
    UserPreference.objects.create(user=user, time_zone="Europe/Paris")
    client.force_login(user)
    client.post(reverse("account"), {"time_zone": ""})
    assert UserPreference.objects.get().time_zone == ""
    assert "Now: <strong>UTC</strong>" in client.get(reverse("account")).content.decode()


def test_the_account_page_needs_a_login(client):
    response = client.get(reverse("account"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- the dashboard's days ------------------------------------------------------------------------


def test_posted_today_counts_the_readers_day_not_the_utc_day(connection):
    # 03:00 UTC on the 20th is still the 19th in Chicago; "now" is 09:00 on the 20th there.
    receive(connection, 1, at=datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    services.sync_run_until_idle(now=lambda: datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    assert SyncRecord.objects.get().state == SyncState.POSTED
    now = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    in_utc = selectors.connection_dashboard(connection=connection, now=now, zone=UTC)
    in_chicago = selectors.connection_dashboard(connection=connection, now=now, zone=CHICAGO)
    assert in_utc.counts.posted_today == 1
    assert in_chicago.counts.posted_today == 0
    chicago_days = {day.day.isoformat(): day.posted for day in in_chicago.chart.days}
    assert chicago_days["2026-11-19"] == 1 and chicago_days["2026-11-20"] == 0
    assert "America/Chicago" in in_chicago.chart.summary


# --- sync log filters ----------------------------------------------------------------------------


@pytest.fixture
def varied(connection):
    """A posted invoice, its void's credit memo, an invoice blocked by the rules, an ERP failure."""
    receive(connection, 1, at=NOW - timedelta(days=3))
    services.sync_run_until_idle(now=lambda: NOW - timedelta(days=3))
    ingest(connection, envelope(id=1, invoiceNumber="T-1", status="void"), now=NOW)
    receive(connection, 2, at=NOW, service_line="Backflow Testing")  # unmapped: blocked
    failed = receive(connection, 3, at=NOW)
    services.sync_run_until_idle(now=lambda: NOW)
    SyncRecord.objects.filter(pk=failed.pk).update(
        state=SyncState.FAILED, failure_category="AUTH", message="refused"
    )
    return connection


def test_the_kind_filter_separates_invoices_from_credit_memos(client, varied):
    client.force_login(user_with(Role.AR, varied))
    assert sorted(log_numbers(client, kind="invoice")) == ["T-1", "T-2", "T-3"]
    assert log_numbers(client, kind="credit_memo") == ["T-1"]
    assert log_numbers(client, kind="timecard") == []


def test_the_failure_category_filter_tells_rules_problems_from_erp_refusals(client, varied):
    client.force_login(user_with(Role.AR, varied))
    assert log_numbers(client, category="RULES") == ["T-2"]
    assert log_numbers(client, category="AUTH") == ["T-3"]
    assert log_numbers(client, category="CONNECTION") == []


def test_received_dates_include_both_days_in_the_readers_time_zone(client, connection):
    # Received 02:00 UTC on the 20th = the evening of the 19th in Chicago.
    receive(connection, 1, at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    receive(connection, 2, at=datetime(2026, 11, 20, 18, 0, tzinfo=UTC))
    user = user_with(Role.AR, connection)
    client.force_login(user)
    assert sorted(log_numbers(client, **{"from": "2026-11-20", "to": "2026-11-20"})) == [
        "T-1",
        "T-2",
    ]
    client.post(reverse("account"), {"time_zone": "America/Chicago"})
    assert log_numbers(client, **{"from": "2026-11-20", "to": "2026-11-20"}) == ["T-2"]
    assert log_numbers(client, **{"to": "2026-11-19"}) == ["T-1"]


def test_a_malformed_date_is_no_filter_rather_than_an_error(client, connection):
    receive(connection, 1, at=NOW)
    client.force_login(user_with(Role.AR, connection))
    assert log_numbers(client, **{"from": "20/11/2026"}) == ["T-1"]


def test_search_results_say_whose_time_they_show(client, connection):
    receive(connection, 1, at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC))
    client.force_login(user_with(Role.AR, connection))
    client.post(reverse("account"), {"time_zone": "America/Chicago"})
    page = client.get(reverse("console:search"), {"q": "T-1"}).content.decode()
    assert "2026-11-20 09:00 America/Chicago" in page


# --- bulk retry of what a filter shows ---------------------------------------------------------


def test_an_admin_retries_everything_a_filter_shows_and_watches_it_settle(client, varied):
    other = Connection.objects.create(name="Other", slug="other")
    hidden = receive(other, 99, at=NOW, service_line="Backflow Testing")
    services.sync_run_until_idle(now=lambda: NOW)
    assert SyncRecord.objects.get(pk=hidden.pk).state == SyncState.BLOCKED
    client.force_login(user_with(Role.ADMIN, varied, name="boss"))
    page = client.get(reverse("console:sync-log"), {"category": "RULES"}).content.decode()
    assert "Retry every blocked or failed record shown" in page
    response = client.post(reverse("console:sync-log-retry"), {"category": "RULES", "q": "T-"})
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/sync/?category=RULES&q=T-&batch=")
    blocked = SyncRecord.objects.get(document__number="T-2")
    assert blocked.state == SyncState.READY and blocked.retry_batch
    assert SyncRecord.objects.get(pk=hidden.pk).state == SyncState.BLOCKED  # not visible: untouched
    assert SyncRecord.objects.get(document__number="T-3").state == SyncState.FAILED  # not shown
    watching = client.get(location).content.decode()
    assert "Retrying 1 record…" in watching
    services.sync_run_until_idle(now=timezone.now)  # the retry is due from the real clock's now
    progress_url = reverse("console:sync-retry-progress", args=[blocked.retry_batch])
    settled = client.get(progress_url, HTTP_HX_REQUEST="true").content.decode()
    # Still unmapped: it is blocked again, and the panel says a person is needed.
    assert "Retry finished" in settled and "0 posted, 1 needs a person again" in settled


def test_only_admins_may_retry_what_a_filter_shows(client, varied):
    client.force_login(user_with(Role.AR, varied))
    assert (
        "Retry every blocked"
        not in client.get(reverse("console:sync-log"), {"state": "BLOCKED"}).content.decode()
    )
    assert client.post(reverse("console:sync-log-retry"), {"state": "BLOCKED"}).status_code == 403
    assert SyncRecord.objects.get(document__number="T-2").state == SyncState.BLOCKED


def test_a_filter_showing_nothing_to_retry_says_so(client, varied):
    client.force_login(user_with(Role.ADMIN, varied, name="boss"))
    response = client.post(reverse("console:sync-log-retry"), {"kind": "timecard"}, follow=True)
    assert "None of the records these filters show is blocked or failed." in (
        response.content.decode()
    )
