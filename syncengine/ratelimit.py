"""A request budget per connection, so many workers together stay within the ERP's limits
(e.g. Business Central's 6,000 requests per 5 minutes).

A fixed one-minute window per connection, counted in the database so every worker on every
machine draws from the same budget. A worker that finds the budget spent does not call the ERP:
its record waits for the next window without using up an attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from syncengine.models import Connection, RateWindow

WINDOW = timedelta(minutes=1)


def rate_budget_take(*, connection: Connection, requests: int, now: datetime) -> int:
    """Take `requests` from this minute's budget: 0 when granted, else seconds to wait."""
    limit = connection.rate_limit_per_minute
    if not limit:
        return 0
    with transaction.atomic():
        window = _current_window(connection, now)
        if window.used + requests > limit:
            return max(int((window.window_start + WINDOW - now).total_seconds()) + 1, 1)
        window.used += requests
        window.save(update_fields=["window_start", "used"])
        return 0


def rate_budget_charge(*, connection: Connection, requests: int, now: datetime) -> None:
    """Count requests already made against this minute's budget (never waits): what an attempt
    sent beyond what it took up front. Later attempts then wait for the next minute."""
    if not connection.rate_limit_per_minute or requests <= 0:
        return
    with transaction.atomic():
        window = _current_window(connection, now)
        window.used += requests
        window.save(update_fields=["window_start", "used"])


def _current_window(connection: Connection, now: datetime) -> RateWindow:
    """The connection's window, locked, started afresh when a minute has passed."""
    window, _ = RateWindow.objects.select_for_update().get_or_create(
        connection=connection, defaults={"window_start": now, "used": 0}
    )
    if now >= window.window_start + WINDOW:
        window.window_start, window.used = now, 0
    return window
