"""The resumable backfill: interrupted halfway (a ServiceTrade outage, Ctrl-C), run again, it
continues from its stored position and ingests every invoice exactly once."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command

from syncengine.models import SourceCursor, SourceDocument, SourceReceipt, SyncRecord
from syncengine.sources.servicetrade_api import sync
from syncengine.sources.servicetrade_api.client import ServiceTradeError, to_epoch
from tests.conftest import NOW
from tests.fakes.servicetrade import st_connection

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade"]

SINCE = date(2026, 10, 1)


def invoice_pages_asked(fake):
    return [(q["createdAfter"], q["page"]) for q in fake.calls("GET", "/invoice")]


def test_a_backfill_of_10000_invoices_interrupted_halfway_resumes_and_ingests_each_once(
    connection, fake_st
):
    connection = st_connection(connection, fake_st, page_limit=500)
    fake_st.seed_invoices(10_000, created_from=to_epoch(SINCE), spacing=60)
    fake_st.break_after("/invoice", 10)  # ServiceTrade goes down after ten pages

    with pytest.raises(ServiceTradeError):
        sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    cursor = sync.backfill_cursor_of(connection)
    assert cursor is not None
    assert (cursor.page, cursor.items_read, cursor.finished_at) == (11, 5000, None)
    assert "500" in cursor.last_error
    assert SourceDocument.objects.count() == 5000

    fake_st.heal()
    before = len(fake_st.calls("GET", "/invoice"))
    result = sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)

    resumed = invoice_pages_asked(fake_st)[before:]
    first_window = str(to_epoch(SINCE))
    assert [int(page) for after, page in resumed if after == first_window] == list(range(11, 21))
    # The rest of the 50 days is a second 31-day window, empty: one page asked, nothing in it.
    assert [page for after, page in resumed if after != first_window] == ["1"]
    assert (result.invoices, result.accepted, result.unchanged) == (5000, 5000, 0)
    assert SourceDocument.objects.count() == 10_000
    assert SyncRecord.objects.count() == 10_000
    ids = set(SourceDocument.objects.values_list("source_id", flat=True))
    assert ids == {str(invoice_id) for invoice_id in fake_st.entities["invoice"]}
    # Each page was stored as its own receipt exactly once: 20 pages, no page twice.
    origins = list(
        SourceReceipt.objects.filter(channel=SourceReceipt.Channel.API).values_list(
            "origin", flat=True
        )
    )
    assert len(origins) == 20 == len(set(origins))
    cursor.refresh_from_db()
    assert cursor.items_read == 10_000
    assert cursor.finished_at == NOW
    assert cursor.position_epoch == cursor.until_epoch == to_epoch(NOW)
    poll = SourceCursor.objects.get(connection=connection, mode=SourceCursor.Mode.POLL)
    assert poll.position_epoch == to_epoch(NOW)


def test_ctrl_c_between_pages_keeps_the_position_across_several_windows(connection, fake_st):
    connection = st_connection(connection, fake_st, page_limit=10, backfill_window_days=1)
    # 24 invoices a day: each one-day window is pages of 10, 10 and 4.
    fake_st.seed_invoices(60, created_from=to_epoch(SINCE), spacing=3600)
    seen = []

    def interrupt_after_four(page, cursor):
        seen.append(page.number)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW,
                                   on_page=interrupt_after_four)  # fmt: skip
    assert SourceDocument.objects.count() == 10 + 10 + 4 + 10
    cursor = sync.backfill_cursor_of(connection)
    assert (cursor.position_epoch, cursor.page) == (to_epoch(SINCE) + 86400, 2)
    result = sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    assert (result.accepted, result.unchanged) == (26, 0)
    assert SourceDocument.objects.count() == 60
    windows = sorted({after for after, _ in invoice_pages_asked(fake_st)})
    day = 86400
    start = to_epoch(SINCE)
    assert windows[:3] == [str(start), str(start + day), str(start + 2 * day)]


def test_a_finished_backfill_run_again_reads_again_and_changes_nothing(connection, fake_st):
    connection = st_connection(connection, fake_st)
    fake_st.seed_invoices(30, created_from=to_epoch(SINCE), spacing=600)
    sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    later = NOW + timedelta(hours=1)
    result = sync.servicetrade_backfill(connection=connection, since=SINCE, now=later)
    assert (result.invoices, result.accepted, result.unchanged) == (30, 0, 30)
    assert SyncRecord.objects.count() == 30


def test_invoices_created_before_the_since_date_are_left_out(connection, fake_st):
    connection = st_connection(connection, fake_st)
    fake_st.seed_invoices(10, created_from=to_epoch(SINCE) - 5 * 600, spacing=600)
    result = sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    assert result.invoices == 5


def test_the_command_reports_an_interruption_and_continues_when_run_again(
    connection, fake_st, capsys
):
    connection = st_connection(connection, fake_st, page_limit=10)
    fake_st.seed_invoices(50, created_from=to_epoch(SINCE), spacing=60)
    fake_st.break_after("/invoice", 2)
    args = ["servicetrade", "backfill", "--since", SINCE.isoformat(), "--connection", "demo"]
    with pytest.raises(CommandError, match="run the same command again to continue"):
        call_command(*args)
    assert SourceDocument.objects.count() == 20
    fake_st.heal()
    call_command(*args)
    assert "Backfill done: 30 invoice(s) read, 30 new or changed" in capsys.readouterr().out
    assert SourceDocument.objects.count() == 50


# --- one backfill at a time ---------------------------------------------------------------------


def test_a_second_backfill_while_one_runs_is_refused_and_changes_nothing(connection, fake_st):
    connection = st_connection(connection, fake_st, page_limit=5)
    fake_st.seed_invoices(20, created_from=to_epoch(SINCE), spacing=60)
    refusals = []

    def second_backfill(page, cursor):
        if page.number == 2:
            before = (cursor.since_epoch, cursor.position_epoch, cursor.page)
            try:
                sync.servicetrade_backfill(connection=connection, since=date(2026, 9, 1),
                                           now=NOW)  # fmt: skip
            except sync.BackfillRunning as running:
                refusals.append(running.message)
            stored = SourceCursor.objects.get(pk=cursor.pk)
            assert (stored.since_epoch, stored.position_epoch, stored.page) == before

    result = sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW,
                                        on_page=second_backfill)  # fmt: skip
    assert len(refusals) == 1
    assert refusals[0].startswith(
        "Another backfill of demo is running (since 2026-10-01, started 2026-11-20 15:00 UTC): "
        "nothing was read. Wait for it to finish; if it was killed, its hold ends at "
    )
    assert (result.invoices, SourceDocument.objects.count()) == (20, 20)
    cursor = sync.backfill_cursor_of(connection)
    assert (cursor.lease_token, cursor.lease_until) == ("", None)  # released when it ended
    # Once it has finished, a new backfill runs (and finds everything already there).
    again = sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    assert (again.invoices, again.unchanged) == (20, 20)


def test_the_hold_of_a_killed_backfill_runs_out_and_the_next_one_continues(connection, fake_st):
    connection = st_connection(connection, fake_st, page_limit=5)
    fake_st.seed_invoices(10, created_from=to_epoch(SINCE), spacing=60)
    fake_st.break_after("/invoice", 1)
    with pytest.raises(ServiceTradeError):
        sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    # As if that process had been killed holding the cursor: its hold ends ten minutes on.
    SourceCursor.objects.filter(mode="BACKFILL", entity="invoice").update(
        lease_token="killed", lease_until=NOW + timedelta(minutes=10)
    )
    fake_st.heal()
    with pytest.raises(sync.BackfillRunning):
        sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW)
    later = NOW + timedelta(minutes=10)
    result = sync.servicetrade_backfill(connection=connection, since=SINCE, now=later)
    assert result.invoices == 5  # the second page only: the first was ingested before
    assert SourceDocument.objects.count() == 10


def test_the_command_says_another_backfill_is_running(connection, fake_st):
    connection = st_connection(connection, fake_st)
    SourceCursor.objects.create(
        connection=connection, entity="invoice", mode="BACKFILL", since_epoch=to_epoch(SINCE),
        started_at=NOW, moved_at=NOW, lease_token="other", lease_until=NOW + timedelta(days=9),
    )  # fmt: skip
    with pytest.raises(CommandError, match="^Another backfill of demo is running"):
        call_command("servicetrade", "backfill", "--since", "2026-10-01")
    assert fake_st.calls("GET", "/invoice") == []
