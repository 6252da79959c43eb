"""Many workers together stay within the ERP's request budget per connection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncengine import services
from syncengine.models import SyncRecord, SyncState
from syncengine.ratelimit import rate_budget_take
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db


def test_records_beyond_the_budget_wait_for_the_next_minute_without_using_an_attempt(connection):
    connection.rate_limit_per_minute = 2
    connection.save()
    for number in range(3):
        ingest(connection, envelope(id=number, invoiceNumber=f"R-{number}"))
    services.sync_run_until_idle(now=lambda: NOW)
    held = SyncRecord.objects.get(state=SyncState.RETRY_SCHEDULED)
    assert held.message == "Holding back to stay within 2 ERP requests a minute."
    assert held.next_attempt_at == NOW + timedelta(seconds=61)
    assert held.attempts - held.attempts_before_retry == 0  # the ERP was never called
    services.sync_run_until_idle(now=lambda: NOW + timedelta(seconds=61))
    assert set(SyncRecord.objects.values_list("state", flat=True)) == {SyncState.POSTED}


def test_the_budget_counts_every_request_and_resets_each_window(connection):
    connection.rate_limit_per_minute = 3
    assert rate_budget_take(connection=connection, requests=2, now=NOW) == 0
    assert (
        rate_budget_take(connection=connection, requests=2, now=NOW + timedelta(seconds=10)) == 51
    )
    assert rate_budget_take(connection=connection, requests=1, now=NOW + timedelta(seconds=20)) == 0
    assert rate_budget_take(connection=connection, requests=3, now=NOW + timedelta(seconds=60)) == 0


def test_no_limit_means_no_bookkeeping(connection):
    from syncengine.models import RateWindow

    assert rate_budget_take(connection=connection, requests=5, now=NOW) == 0
    assert not RateWindow.objects.exists()


# --- an ERP whose posting makes several requests -------------------------------------------------

pytest_plugins = ["tests.fakes.business_central"]


def test_a_business_central_posting_is_charged_every_request_it_made(fake_bc):
    from syncengine.models import RateWindow

    fake_bc.seed_demo_books()
    connection = fake_bc.publish_demo_rules(fake_bc.connection(), now=NOW)
    connection.rate_limit_per_minute = 3  # the first posting alone makes more than that
    connection.save()
    for number in range(3):
        ingest(connection, envelope(id=number, invoiceNumber=f"R-{number}"))
    services.sync_run_until_idle(now=lambda: NOW)
    posted = SyncRecord.objects.filter(state=SyncState.POSTED)
    made = sum(len(record.events.get(to_state=SyncState.POSTED).data["exchanges"])
               for record in posted)  # fmt: skip
    assert posted.count() == 1 and made > 3
    assert RateWindow.objects.get(connection=connection).used == made
    held = SyncRecord.objects.filter(state=SyncState.RETRY_SCHEDULED)
    assert held.exists() and all(
        record.message == "Holding back to stay within 3 ERP requests a minute." for record in held
    )
    for minute in range(1, 6):  # each new minute lets one more posting start
        services.sync_run_until_idle(now=lambda minute=minute: NOW + timedelta(minutes=minute))
    assert set(SyncRecord.objects.values_list("state", flat=True)) == {SyncState.POSTED}
