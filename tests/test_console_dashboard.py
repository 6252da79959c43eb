"""The connection dashboard, the sync log's cause and waiting filters, bulk retry by cause, and
the admin record actions (cancel, mark resolved outside Crosswalk)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console import selectors
from console.access import Role
from syncengine import services
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.models import Connection, SyncRecord, SyncState
from tests.conftest import BASE_INVOICE, NOW, envelope, ingest

pytestmark = pytest.mark.django_db

# NOW is Friday 20 November 2026, 15:00 UTC; the dashboard is looked at three minutes later.
LOOKED_AT = NOW + timedelta(minutes=3)
BACKFLOW = "UNMAPPED_SERVICE_LINE:Backflow Testing"


def user_with(role: str | None, *connections: Connection, name: str = "user") -> User:
    user = User.objects.create_user(username=name, password="pw")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    for connection in connections:
        connection.members.add(user)
    return user


def receive(connection, source_id, *, at=NOW, service_line="HVAC"):
    job = {**BASE_INVOICE["job"], "serviceLine": {"id": 1, "name": service_line}}
    ingest(connection, envelope(id=source_id, invoiceNumber=f"D-{source_id}", job=job), now=at)
    return SyncRecord.objects.get(document__source_id=str(source_id))


def post_due(at=NOW):
    services.sync_run_until_idle(now=lambda: at)


def erp_fails_with(monkeypatch, error):
    def post_invoice(self, *, plan, key):
        raise error

    monkeypatch.setattr(SandboxLedger, "post_invoice", post_invoice)


def refreshed(record):
    record.refresh_from_db()
    return record


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(LOOKED_AT, tick=False):
        yield


@pytest.fixture
def other_connection(db):
    return Connection.objects.create(name="Other company", slug="other")


@pytest.fixture
def busy(connection, monkeypatch):
    """A week of work: 4 posted (2 today, 1 on Wednesday, 1 last Friday), 2 blocked by the same
    unmapped service line, 1 failed, 1 uncertain, and 1 waiting to be posted."""
    records = {}
    records["last_week"] = receive(connection, 1, at=NOW - timedelta(days=7))
    post_due(NOW - timedelta(days=7))
    records["wednesday"] = receive(connection, 2, at=NOW - timedelta(days=2))
    post_due(NOW - timedelta(days=2))
    for name, source_id in (("today_1", 3), ("today_2", 4)):
        records[name] = receive(connection, source_id)
    for name, source_id in (("blocked_1", 5), ("blocked_2", 6)):
        records[name] = receive(connection, source_id, service_line="Backflow Testing")
    post_due()
    erp_fails_with(
        monkeypatch,
        ConnectorError(
            "Customer is on hold in the ERP", category=FailureCategory.VALUE, transient=False
        ),
    )
    records["failed"] = receive(connection, 7)
    post_due()
    erp_fails_with(
        monkeypatch,
        ConnectorError(
            "timed out", category=FailureCategory.CONNECTION, transient=True, outcome_unknown=True
        ),
    )
    records["uncertain"] = receive(connection, 8)
    post_due()
    records["waiting"] = receive(connection, 9)
    return {name: refreshed(record) for name, record in records.items()}


def dashboard_url(slug="demo"):
    return reverse("console:dashboard", args=[slug])


def retry_cause(client, *, cause=BACKFLOW, state="BLOCKED", slug="demo", **kwargs):
    url = reverse("console:dashboard-retry-cause", args=[slug])
    return client.post(url, {"cause": cause, "state": state}, **kwargs)


# --- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_counts_postings_in_utc_days_and_records_by_state(client, connection, busy):
    assert {name: record.state for name, record in busy.items()} == {
        "last_week": "POSTED", "wednesday": "POSTED", "today_1": "POSTED", "today_2": "POSTED",
        "blocked_1": "BLOCKED", "blocked_2": "BLOCKED", "failed": "FAILED",
        "uncertain": "UNCERTAIN", "waiting": "READY",
    }  # fmt: skip
    client.force_login(user_with(Role.AR, connection))
    response = client.get(dashboard_url())
    counts = response.context["dashboard"].counts
    assert (counts.posted_today, counts.posted_this_week) == (2, 3)
    assert (counts.waiting, counts.blocked, counts.failed, counts.uncertain) == (1, 2, 1, 1)
    page = response.content.decode()
    assert "UTC days" in page and "since Monday 16 Nov" in page


def test_every_dashboard_number_links_to_the_sync_log_filtered_by_connection_and_state(
    client, connection, busy
):
    client.force_login(user_with(Role.FINANCE, connection))
    page = client.get(dashboard_url()).content.decode()
    for state, number in [
        ("POSTED", 2),
        ("POSTED", 3),
        ("WAITING", 1),
        ("BLOCKED", 2),
        ("FAILED", 1),
        ("UNCERTAIN", 1),
    ]:
        assert f'href="/sync/?connection=demo&amp;state={state}">{number}</a>' in page


def test_failure_causes_read_as_sentences_each_linking_to_its_records(client, connection, busy):
    client.force_login(user_with(Role.AR, connection))
    page = client.get(dashboard_url()).content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    assert (
        "2 invoices blocked: No revenue account for service line &#x27;Backflow Testing&#x27;"
        in text
    )
    assert "1 invoice failed: Customer is on hold in the ERP" in text
    assert (
        'href="/sync/?connection=demo&amp;state=BLOCKED'
        '&amp;cause=UNMAPPED_SERVICE_LINE%3ABackflow%20Testing"' in page
    )
    assert 'href="/sync/?connection=demo&amp;state=FAILED&amp;cause=VALUE"' in page


def test_the_sync_log_filters_by_failure_cause_and_keeps_the_cause_when_it_refreshes(
    client, connection, busy
):
    client.force_login(user_with(Role.AR, connection))
    response = client.get(reverse("console:sync-log"), {"connection": "demo", "cause": BACKFLOW})
    assert {record.pk for record in response.context["records"]} == {
        busy["blocked_1"].pk,
        busy["blocked_2"].pk,
    }
    page = response.content.decode()
    assert "cause=UNMAPPED_SERVICE_LINE%3ABackflow+Testing" in page  # the rows' polling URL
    assert 'name="cause" value="UNMAPPED_SERVICE_LINE:Backflow Testing" checked' in page


def test_the_sync_log_waiting_filter_shows_ready_retrying_and_posting_records(
    client, connection, busy
):
    client.force_login(user_with(Role.AR, connection))
    response = client.get(reverse("console:sync-log"), {"state": "WAITING"})
    assert [record.pk for record in response.context["records"]] == [busy["waiting"].pk]


def test_the_dashboard_answers_htmx_with_only_its_summary(client, connection, busy):
    client.force_login(user_with(Role.AR, connection))
    page = client.get(dashboard_url(), headers={"HX-Request": "true"}).content.decode()
    assert 'id="summary"' in page and "<html" not in page and "<svg" not in page
    assert "2 invoices blocked" in page


def test_a_boosted_request_after_retry_all_gets_the_whole_page(client, connection, busy):
    client.force_login(user_with(Role.AR, connection))
    headers = {"HX-Request": "true", "HX-Boosted": "true"}
    response = client.get(dashboard_url(), headers=headers)
    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_the_chart_draws_one_bar_per_day_with_postings_and_one_per_day_with_failures(
    client, connection, busy
):
    receive(connection, 10, at=NOW - timedelta(days=40))  # before the chart's 30 days
    post_due(NOW - timedelta(days=40))
    client.force_login(user_with(Role.AR, connection))
    page = client.get(dashboard_url()).content.decode()
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('<g class="chart-day">') == 30
    # Postings last Friday, on Wednesday and today; the one failure today.
    assert svg.count('class="bar bar-posted"') == 3
    assert svg.count('class="bar bar-failed"') == 1
    assert "<title>Fri 20 Nov 2026: 2 posted, 1 failed</title>" in svg
    assert 'role="img"' in svg
    assert (
        'aria-label="Posted and failed per day, 22 Oct to 20 Nov 2026 (UTC): 4 posted, 1 failed; '
        'most posted in a day: 2 on 20 Nov."' in svg
    )
    assert "Posted</text>" in svg and "Failed</text>" in svg  # the legend


def test_the_chart_of_a_quiet_connection_says_so(client, connection):
    client.force_login(user_with(Role.AR, connection))
    page = client.get(dashboard_url()).content.decode()
    assert 'class="bar ' not in page
    assert "nothing posted or failed." in page


def test_latency_percentiles_cover_the_last_seven_days_of_postings(client, connection):
    receive(connection, 100, at=NOW - timedelta(days=8, minutes=90))
    post_due(NOW - timedelta(days=8))  # 90 minutes, but too old to count
    for minutes in range(1, 21):
        receive(connection, minutes, at=NOW - timedelta(minutes=minutes))
    post_due()
    client.force_login(user_with(Role.AR, connection))
    response = client.get(dashboard_url())
    latency = response.context["dashboard"].latency
    assert (latency.sample, latency.p50, latency.p95) == (20, "10 min", "19 min")
    assert "based on the latest 20 postings" in response.content.decode()


def test_latency_is_computed_over_at_most_the_latest_sample_of_postings(
    client, connection, monkeypatch
):
    monkeypatch.setattr(selectors, "LATENCY_SAMPLE", 5)
    for minutes in range(1, 21):
        receive(connection, minutes, at=NOW - timedelta(minutes=minutes))
        post_due(NOW - timedelta(minutes=minutes) + timedelta(seconds=minutes))
    client.force_login(user_with(Role.AR, connection))
    latency = client.get(dashboard_url()).context["dashboard"].latency
    # The 5 latest postings are the ones received 1–5 minutes ago, each posted after 1–5 s.
    assert (latency.sample, latency.p50_seconds, latency.p95_seconds) == (5, 3, 5)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "under 1 s"),
        (45, "45 s"),
        (200, "3 min 20 s"),
        (7500, "2 h 5 min"),
        (90000, "1 d 1 h"),
    ],
)
def test_durations_read_in_the_two_largest_units(seconds, text):
    assert selectors.duration_text(seconds) == text


def test_health_says_when_there_are_no_postings_yet(client, connection):
    client.force_login(user_with(Role.AR, connection))
    assert "No postings yet" in client.get(dashboard_url()).content.decode()


def test_health_is_good_with_a_recent_posting_and_no_failures_in_the_last_hour(
    client, connection, monkeypatch
):
    erp_fails_with(
        monkeypatch, ConnectorError("rejected", category=FailureCategory.VALUE, transient=False)
    )
    receive(connection, 1, at=NOW - timedelta(hours=2))
    post_due(NOW - timedelta(hours=2))
    monkeypatch.undo()
    receive(connection, 2)
    post_due()
    client.force_login(user_with(Role.AR, connection))
    health = client.get(dashboard_url()).context["dashboard"].health
    assert (health.level, health.text) == ("ok", "Healthy: last posting 3\xa0minutes ago")


def test_health_does_not_say_zero_minutes_for_a_posting_seconds_ago(client, connection):
    receive(connection, 1, at=LOOKED_AT - timedelta(seconds=20))
    post_due(LOOKED_AT - timedelta(seconds=10))
    client.force_login(user_with(Role.AR, connection))
    health = client.get(dashboard_url()).context["dashboard"].health
    assert health.text == "Healthy: last posting less than a minute ago"


def test_health_counts_the_records_that_failed_in_the_last_hour(client, connection, busy):
    client.force_login(user_with(Role.AR, connection))
    page = client.get(dashboard_url()).content.decode()
    assert "1 record failed in the last hour" in page


def test_the_dashboard_makes_as_many_queries_for_many_records_as_for_few(client, connection, busy):
    client.force_login(user_with(Role.AR, connection))
    client.get(dashboard_url())  # the first request of a session also reads the time zone
    with CaptureQueriesContext(db_connection) as few:
        client.get(dashboard_url())
    for source_id in range(20, 30):
        receive(connection, source_id, at=NOW - timedelta(days=source_id - 18))
        post_due(NOW - timedelta(days=source_id - 18))
    with CaptureQueriesContext(db_connection) as many:
        client.get(dashboard_url())
    assert len(many) == len(few)


# --- navigation and access --------------------------------------------------------------------


def test_home_and_the_nav_go_straight_to_the_dashboard_of_the_only_connection(client, connection):
    client.force_login(user_with(Role.AR, connection))
    assert client.get("/")["Location"] == dashboard_url()
    assert client.get(reverse("console:dashboard-index"))["Location"] == dashboard_url()
    page = client.get(dashboard_url()).content.decode()
    assert '<a href="/connections/" aria-current="page">Dashboard</a>' in page


def test_with_several_connections_home_is_the_sync_log_and_the_nav_lists_the_dashboards(
    client, connection, other_connection
):
    client.force_login(user_with(Role.AR, connection, other_connection))
    assert client.get("/")["Location"] == reverse("console:sync-log")
    page = client.get(reverse("console:dashboard-index")).content.decode()
    assert f'href="{dashboard_url("demo")}"' in page and f'href="{dashboard_url("other")}"' in page
    assert (
        'href="/connections/other/">Other company</a>'
        in client.get(dashboard_url()).content.decode()
    )


def test_every_dashboard_page_and_action_sends_anonymous_visitors_to_the_login_page(
    client, connection, busy
):
    record = busy["blocked_1"]
    pages = ["/", reverse("console:dashboard-index"), dashboard_url()]
    actions = [
        reverse("console:dashboard-retry-cause", args=["demo"]),
        reverse("console:record-cancel", args=[record.pk]),
        reverse("console:record-resolve", args=[record.pk]),
    ]
    for response in [client.get(url) for url in pages] + [client.post(url) for url in actions]:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert refreshed(record).state == SyncState.BLOCKED


def test_another_connections_dashboard_is_not_found(client, connection, busy, other_connection):
    client.force_login(user_with(Role.ADMIN, other_connection))
    assert client.get(dashboard_url("demo")).status_code == 404
    assert retry_cause(client).status_code == 404
    assert refreshed(busy["blocked_1"]).state == SyncState.BLOCKED
    assert client.get(dashboard_url("other")).status_code == 200


def test_a_user_without_a_role_may_not_see_a_dashboard(client, connection):
    client.force_login(user_with(None, connection))
    assert client.get(dashboard_url()).status_code == 403
    assert client.get(reverse("console:dashboard-index")).status_code == 403


# --- retry all of a cause ---------------------------------------------------------------------


def test_an_admin_retries_every_record_of_a_cause_at_once(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection, name="boss"))
    response = retry_cause(client, follow=True)
    [(location, status)] = response.redirect_chain
    assert status == 302 and location.startswith(f"{dashboard_url()}?batch=")
    assert "Queued 2 records for another attempt." in response.content.decode()
    for name in ("blocked_1", "blocked_2"):
        record = refreshed(busy[name])
        assert (record.state, record.failure_cause) == (SyncState.READY, "")
        assert record.events.last().actor == "user:boss"
    assert refreshed(busy["failed"]).state == SyncState.FAILED


def test_a_bulk_retry_shows_its_progress_until_every_record_has_settled(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection, name="boss"))
    location = retry_cause(client)["Location"]
    batch = location.split("batch=")[1]
    page = client.get(location).content.decode()
    progress_url = reverse("console:retry-progress", args=["demo", batch])
    assert "Retrying 2 records…" in page and f'hx-get="{progress_url}"' in page
    assert '<progress max="2" value="0"' in page
    # The workers settle them: one posts, the other fails again.
    blocked = [busy["blocked_1"].pk, busy["blocked_2"].pk]
    SyncRecord.objects.filter(pk=blocked[0]).update(state=SyncState.POSTED, erp_document_id="x")
    SyncRecord.objects.filter(pk=blocked[1]).update(state=SyncState.FAILED)
    partial = client.get(progress_url, HTTP_HX_REQUEST="true").content.decode()
    assert partial.strip().startswith('<section id="retry-progress"')
    assert "Retry finished" in partial and "hx-trigger" not in partial
    assert "1 posted, 1 needs a person again, 0 on their way." in partial
    assert '<progress max="2" value="2"' in partial


def test_a_bulk_retrys_progress_is_not_shown_across_connections(
    client, connection, other_connection, busy
):
    client.force_login(user_with(Role.ADMIN, connection, name="boss"))
    batch = retry_cause(client)["Location"].split("batch=")[1]
    stranger = user_with(Role.ADMIN, other_connection, name="stranger")
    client.force_login(stranger)
    assert client.get(reverse("console:retry-progress", args=["demo", batch])).status_code == 404
    mine = client.get(reverse("console:retry-progress", args=["other", batch]))
    assert (
        "Retry finished" in mine.content.decode() and '<progress max="0"' in mine.content.decode()
    )


def test_retry_all_retries_only_the_records_of_that_cause_still_blocked_or_failed(
    client, connection, busy
):
    client.force_login(user_with(Role.ADMIN, connection))
    retry_cause(client)
    response = retry_cause(client, follow=True)
    assert "No blocked or failed records have this cause any more." in response.content.decode()
    assert (
        "Queued 1 record for another attempt."
        in retry_cause(client, cause="VALUE", state="FAILED", follow=True).content.decode()
    )


@pytest.mark.parametrize("role", [Role.AR, Role.FINANCE])
def test_only_admins_may_retry_a_cause(client, connection, busy, role):
    client.force_login(user_with(role, connection))
    assert retry_cause(client).status_code == 403
    assert refreshed(busy["blocked_1"]).state == SyncState.BLOCKED


def test_retry_all_is_post_only_and_needs_a_cause(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection))
    url = reverse("console:dashboard-retry-cause", args=["demo"])
    assert client.get(url).status_code == 405
    assert client.post(url, {"state": "BLOCKED"}).status_code == 400
    assert refreshed(busy["blocked_1"]).state == SyncState.BLOCKED


def test_the_retry_all_button_is_offered_to_admins_only(client, connection, busy):
    client.force_login(user_with(Role.FINANCE, connection, name="fin"))
    assert "Retry all" not in client.get(dashboard_url()).content.decode()
    client.force_login(user_with(Role.ADMIN, connection, name="adm"))
    page = client.get(dashboard_url()).content.decode()
    assert ">Retry all 2</button>" in page and ">Retry all 1</button>" in page
    assert 'hx-confirm="Post these 2 blocked invoices again, with the rules in force now?"' in page


# --- cancel and resolve outside Crosswalk -----------------------------------------------------


def record_action(client, record, action, **data):
    url = reverse(f"console:record-{action}", args=[record.pk])
    return client.post(url, data, follow=True)


def test_an_admin_cancels_a_blocked_record_with_a_reason(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection, name="boss"))
    record = busy["blocked_1"]
    response = record_action(client, record, "cancel", reason="Duplicate of D-6")
    assert response.redirect_chain == [(reverse("console:record-detail", args=[record.pk]), 302)]
    assert "Cancelled: Crosswalk will not post this record." in response.content.decode()
    record = refreshed(record)
    assert record.state == SyncState.CANCELLED
    assert (record.events.last().actor, record.events.last().detail) == (
        "user:boss",
        "Cancelled: Duplicate of D-6",
    )


def test_cancelling_without_a_reason_is_refused_with_the_reason_why(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection))
    response = record_action(client, busy["blocked_1"], "cancel", reason="  ")
    assert "Say why: cancelling needs a reason." in response.content.decode()
    assert refreshed(busy["blocked_1"]).state == SyncState.BLOCKED


def test_a_record_that_may_be_in_the_erp_cannot_be_cancelled(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection))
    for name in ("today_1", "uncertain"):
        record = busy[name]
        response = record_action(client, record, "cancel", reason="oops")
        assert "cannot be cancelled: it may already be in the ERP." in response.content.decode()
        assert refreshed(record).state == busy[name].state


def test_an_admin_marks_a_failed_record_resolved_outside_crosswalk(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection))
    record = busy["failed"]
    response = record_action(
        client, record, "resolve", reason="Keyed in by hand", erp_document_number=" SI-9999 "
    )
    assert "Marked resolved outside Crosswalk" in response.content.decode()
    record = refreshed(record)
    assert (record.state, record.erp_document_number) == (SyncState.SKIPPED, "SI-9999")
    assert record.events.last().detail == (
        "Resolved outside Crosswalk: Keyed in by hand (ERP document SI-9999)"
    )


def test_resolving_needs_a_reason_and_a_plausible_erp_number(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection))
    record = busy["uncertain"]
    page = record_action(client, record, "resolve", reason="").content.decode()
    assert "Say why: marking a record resolved needs a reason." in page
    page = record_action(
        client, record, "resolve", reason="checked", erp_document_number="X" * 65
    ).content.decode()
    assert "An ERP document number has at most 64 characters." in page
    assert refreshed(record).state == SyncState.UNCERTAIN


def test_a_posted_or_waiting_record_cannot_be_marked_resolved(client, connection, busy):
    client.force_login(user_with(Role.ADMIN, connection))
    for name, words in (("today_1", "posted"), ("waiting", "ready")):
        page = record_action(client, busy[name], "resolve", reason="done").content.decode()
        assert f"A record that is {words} cannot be marked resolved." in page
        assert refreshed(busy[name]).state == busy[name].state


@pytest.mark.parametrize("role", [Role.AR, Role.FINANCE])
@pytest.mark.parametrize("action", ["cancel", "resolve"])
def test_only_admins_may_cancel_or_resolve(client, connection, busy, role, action):
    client.force_login(user_with(role, connection))
    url = reverse(f"console:record-{action}", args=[busy["blocked_1"].pk])
    assert client.post(url, {"reason": "because"}).status_code == 403
    assert refreshed(busy["blocked_1"]).state == SyncState.BLOCKED


@pytest.mark.parametrize("action", ["cancel", "resolve"])
def test_records_of_another_connection_cannot_be_cancelled_or_resolved(
    client, connection, busy, other_connection, action
):
    client.force_login(user_with(Role.ADMIN, other_connection))
    url = reverse(f"console:record-{action}", args=[busy["blocked_1"].pk])
    assert client.post(url, {"reason": "because"}).status_code == 404
    assert refreshed(busy["blocked_1"]).state == SyncState.BLOCKED


@pytest.mark.parametrize("action", ["cancel", "resolve"])
def test_cancel_and_resolve_are_post_only(client, connection, busy, action):
    client.force_login(user_with(Role.ADMIN, connection))
    url = reverse(f"console:record-{action}", args=[busy["blocked_1"].pk])
    assert client.get(url).status_code == 405


@pytest.mark.parametrize(
    ("name", "cancel", "resolve"),
    [
        ("blocked_1", True, True),
        ("failed", True, True),
        ("waiting", True, False),
        ("uncertain", False, True),
        ("today_1", False, False),
    ],
)
def test_the_record_page_offers_admins_the_actions_its_state_allows(
    client, connection, busy, name, cancel, resolve
):
    record = busy[name]
    client.force_login(user_with(Role.ADMIN, connection))
    page = client.get(reverse("console:record-detail", args=[record.pk])).content.decode()
    assert (reverse("console:record-cancel", args=[record.pk]) in page) is cancel
    assert (reverse("console:record-resolve", args=[record.pk]) in page) is resolve


def test_the_record_page_offers_finance_no_actions(client, connection, busy):
    client.force_login(user_with(Role.FINANCE, connection))
    response = client.get(reverse("console:record-detail", args=[busy["blocked_1"].pk]))
    assert not response.context["can_cancel"] and not response.context["can_resolve"]
    assert "Stop or settle this record" not in response.content.decode()


def test_an_open_circuit_shows_one_banner_saying_records_wait(client, connection):
    from datetime import timedelta

    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    connection.circuit_retry_at = timezone.now() + timedelta(minutes=1)
    connection.circuit_reason = "HTTP 401: the ERP refused the credentials."
    connection.save()
    user = User.objects.create_user(username="ops", password="pw")
    user.groups.add(Group.objects.get(name="AR"))
    connection.members.add(user)
    client.force_login(user)
    page = client.get(f"/connections/{connection.slug}/").content.decode()
    assert page.count('id="circuit-banner"') == 1
    assert "HTTP 401: the ERP refused the credentials." in page


def test_admins_find_the_operations_pages_from_the_dashboard_and_others_do_not(client, connection):
    url = reverse("console:dashboard", args=[connection.slug])
    client.force_login(user_with(Role.ADMIN, connection, name="dash-admin"))
    page = client.get(url).content.decode()
    for name in ("ops:connection-settings", "ops:master-data", "ops:servicetrade"):
        assert f'href="{reverse(name, args=[connection.slug])}"' in page
    client.force_login(user_with(Role.AR, connection, name="dash-ar"))
    page = client.get(url).content.decode()
    assert reverse("ops:master-data", args=[connection.slug]) not in page
