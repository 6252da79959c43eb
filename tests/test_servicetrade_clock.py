"""ServiceTrade clock events become weekly timecards on every way in (webhook, polling, backfill),
through the idempotent timecard ingestion; against the fake ServiceTrade and a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from syncengine import services
from syncengine.erps.sandbox.models import LedgerTimeEntry
from syncengine.models import DocumentKind, SourceCursor, SourceDocument, SyncRecord, SyncState
from syncengine.sources.servicetrade_api import clock, sync
from syncengine.sources.servicetrade_api.client import ServiceTradeError, to_epoch
from tests.conftest import NOW
from tests.fakes.servicetrade import st_connection
from tests.test_servicetrade_sync import SECRET, django_sender, hook_path

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade"]

NEW_YORK = ZoneInfo("America/New_York")
# NOW is Friday 2026-11-20 10:00 in New York; its week starts Monday 2026-11-16.
MONDAY = datetime(2026, 11, 16, tzinfo=NEW_YORK)


def at(day: int, hour: int, minute: int = 0) -> int:
    """Epoch seconds of a New York time `day` days after Monday 2026-11-16."""
    return to_epoch(MONDAY + timedelta(days=day, hours=hour, minutes=minute))


@pytest.fixture
def api_connection(connection, fake_st):
    fake_st.clock = lambda: to_epoch(NOW) - 3600
    connection = st_connection(connection, fake_st)
    connection.webhook_secret_hash = connection.hash_secret(SECRET)
    connection.save(update_fields=["webhook_secret_hash"])
    return connection


def cards():
    return {
        d.source_id: d
        for d in SourceDocument.objects.filter(kind=DocumentKind.TIMECARD).order_by("source_id")
    }


def test_a_poll_turns_closed_clock_events_into_one_weekly_card_per_technician_that_posts(
    api_connection, fake_st
):
    fake_st.add_clock_event(user_id=300, job_id=7001, clock_in=at(0, 7, 30), clock_out=at(0, 11))
    fake_st.add_clock_event(user_id=300, job_id=7002, clock_in=at(1, 8), clock_out=at(1, 16, 15),
                            activity="enroute")  # fmt: skip
    fake_st.add_clock_event(user_id=301, job_id=7001, clock_in=at(2, 9), clock_out=at(2, 10))
    fake_st.add_clock_event(user_id=301, job_id=7003, clock_in=at(4, 9), clock_out=None)  # open
    result = sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert (result.clock.events, result.clock.cards, result.clock.accepted) == (4, 2, 2)
    card = cards()["CLK-300-2026-11-16"]
    assert card.status == "approved"
    assert [(e["date"], e["clockIn"], e["clockOut"], e["hours"], e["jobNumber"])
            for e in card.payload["entries"]] == [
        ("2026-11-16", "07:30", "11:00", "3.50", "J-7001"),
        ("2026-11-17", "08:00", "16:15", "8.25", "J-7002"),
    ]  # fmt: skip
    closed = [e for e in fake_st.entities["clock"].values() if e["user"]["id"] == 301][0]
    assert [e["id"] for e in cards()["CLK-301-2026-11-16"].payload["entries"]] == [
        str(closed["id"])
    ]
    services.sync_run_until_idle(now=lambda: NOW)
    assert set(SyncRecord.objects.values_list("state", flat=True)) == {SyncState.POSTED}
    entries = LedgerTimeEntry.objects.filter(employee="E300").order_by("work_date")
    assert [
        (str(e.work_date), e.hours, e.job_number, e.clock_in, e.clock_out) for e in entries
    ] == [
        ("2026-11-16", Decimal("3.50"), "J-7001", "07:30", "11:00"),
        ("2026-11-17", Decimal("8.25"), "J-7002", "08:00", "16:15"),
    ]


def test_a_clock_out_seen_by_a_later_poll_adds_its_entry_and_only_that_one_posts(
    api_connection, fake_st
):
    fake_st.add_clock_event(user_id=300, clock_in=at(0, 7), clock_out=at(0, 9))
    late = fake_st.add_clock_event(user_id=300, clock_in=at(3, 7), clock_out=None)
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    services.sync_run_until_idle(now=lambda: NOW)
    assert LedgerTimeEntry.objects.count() == 1
    fake_st.change("clock", late["id"], clockOut=at(3, 12))
    later = NOW + timedelta(minutes=10)
    result = sync.servicetrade_poll(connection=api_connection, now=later)
    assert result.clock.accepted == 1
    services.sync_run_until_idle(now=lambda: later)
    assert sorted(LedgerTimeEntry.objects.values_list("hours", flat=True)) == [
        Decimal("2.00"),
        Decimal("5.00"),
    ]
    # A third poll finds nothing new: the card is unchanged and nothing more posts.
    result = sync.servicetrade_poll(connection=api_connection, now=later + timedelta(minutes=10))
    assert (result.clock.accepted, result.clock.unchanged) == (0, 1)
    assert SyncRecord.objects.get().state == SyncState.POSTED


def test_polling_clock_events_starts_at_the_monday_of_the_week_of_its_cursor_minus_the_lookback(
    api_connection, fake_st
):
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    # First poll: cursor = NOW − 1 day (Thursday), minus 2 days' lookback = Tuesday → Monday.
    assert fake_st.calls("GET", "/clock")[-1]["startTime"] == str(at(0, 0))
    cursor = SourceCursor.objects.get(entity="clock", mode=SourceCursor.Mode.POLL)
    assert cursor.position_epoch == to_epoch(NOW)
    fake_st.fail("GET", "/clock", 400)
    with pytest.raises(ServiceTradeError):
        sync.servicetrade_poll(connection=api_connection, now=NOW + timedelta(hours=1))
    cursor.refresh_from_db()
    assert cursor.position_epoch == to_epoch(NOW) and "400" in cursor.last_error


def test_a_job_event_re_reads_each_technicians_whole_week_and_repeats_change_nothing(
    client, api_connection, fake_st
):
    fake_st.add_clock_event(user_id=300, job_id=7001, clock_in=at(0, 7), clock_out=at(0, 9))
    other = fake_st.add_clock_event(user_id=300, job_id=7002, clock_in=at(1, 7), clock_out=None)
    send = django_sender(client)
    fake_st.deliver(hook_path(api_connection), [("job", 7001, "created")], send=send)
    card = cards()["CLK-300-2026-11-16"]
    assert len(card.payload["entries"]) == 1  # the other job's event is still open
    assert fake_st.calls("GET", "/clock")[0] == {"jobId": "7001", "page": "1"}
    assert fake_st.calls("GET", "/clock")[1]["userId"] == "300"
    fake_st.change("clock", other["id"], clockOut=at(1, 15))
    fake_st.deliver(hook_path(api_connection), [("job", 7002, "updated")], send=send)
    fake_st.deliver(hook_path(api_connection), [("job", 7001, "created")], send=send)  # late
    fake_st.deliver(hook_path(api_connection), [("job", 7002, "updated")], send=send)  # repeat
    card = cards()["CLK-300-2026-11-16"]
    assert [e["hours"] for e in card.payload["entries"]] == ["2.00", "8.00"]
    record = SyncRecord.objects.get()
    # Created, changed once (the second event closed); the late and the repeat changed nothing.
    assert list(record.events.values_list("to_state", flat=True)) == ["READY", "READY"]


def test_the_backfill_reads_clock_events_week_by_week_and_resumes_after_a_failure(
    api_connection, fake_st
):
    for week in range(3):
        fake_st.add_clock_event(user_id=300, clock_in=at(7 * week - 14, 8),
                                clock_out=at(7 * week - 14, 12))  # fmt: skip
    fake_st.break_after("/clock", 1)  # the first week reads, the second fails
    with pytest.raises(ServiceTradeError):
        sync.servicetrade_backfill(connection=api_connection, since=MONDAY - timedelta(days=14),
                                   now=NOW)  # fmt: skip
    assert list(cards()) == ["CLK-300-2026-11-02"]
    fake_st.heal()
    result = sync.servicetrade_backfill(connection=api_connection,
                                        since=MONDAY - timedelta(days=14), now=NOW)  # fmt: skip
    assert list(cards()) == ["CLK-300-2026-11-02", "CLK-300-2026-11-09", "CLK-300-2026-11-16"]
    assert result.clock.cards == 2  # the first week was not read again
    cursor = SourceCursor.objects.get(entity="clock", mode=SourceCursor.Mode.BACKFILL)
    assert cursor.finished_at == NOW and cursor.items_read == 3


def test_cards_group_by_technician_and_local_week_and_name_the_events_left_out():
    sunday_night = to_epoch(datetime(2026, 11, 15, 23, 30, tzinfo=NEW_YORK))  # 04:30 UTC Monday
    events = [
        {"id": 1, "user": {"id": 300, "firstName": "Maria", "lastName": "Lopez"},
         "clockIn": sunday_night, "clockOut": sunday_night + 1800},
        {"id": 2, "user": {"id": 300}, "clockIn": {"eventTime": at(0, 8)},
         "clockOut": {"eventTime": at(0, 8, 20)}, "activity": "enroute"},
        {"id": 3, "user": {"id": 300}, "clockIn": at(1, 8), "clockOut": at(2, 9)},  # 25 h
        {"id": 4, "user": {"id": 300}, "clockIn": at(1, 8), "clockOut": at(1, 8)},  # no time
        {"id": 5, "clockIn": at(1, 8), "clockOut": at(1, 9)},  # no user
    ]  # fmt: skip
    built, problems = clock.timecards_from_events(events, zone=NEW_YORK,
                                                  labor_types={"enroute": "travel"})  # fmt: skip
    assert [(c["id"], c["technician"]["name"], [e["id"] for e in c["entries"]]) for c in built] == [
        ("CLK-300-2026-11-09", "Maria Lopez", ["1"]),
        ("CLK-300-2026-11-16", "ServiceTrade user 300", ["2"]),
    ]
    assert built[1]["entries"][0]["hours"] == "0.33"
    assert built[1]["entries"][0]["laborType"] == "travel"
    assert problems == [
        "clock event 3: 25.00 hours is not between 0 and 24",
        "clock event 4: 0.00 hours is not between 0 and 24",
        "clock event 5: no user or clock-in time",
    ]
    assert clock.week_bounds(clock.week_start(datetime(2026, 11, 16, 4, 59, tzinfo=UTC),
                                              NEW_YORK), NEW_YORK)[0] == to_epoch(
        datetime(2026, 11, 9, tzinfo=NEW_YORK))  # fmt: skip


def test_a_connection_can_turn_clock_events_off(api_connection, fake_st):
    api_connection.source_settings["clock_events"] = False
    api_connection.save(update_fields=["source_settings"])
    fake_st.add_clock_event(user_id=300, clock_in=at(0, 7), clock_out=at(0, 9))
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert fake_st.calls("GET", "/clock") == []
    assert not cards()
