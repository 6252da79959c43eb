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
