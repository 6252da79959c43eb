"""Celery tasks of the crosswalk: thin wrappers that call one service each."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from mappings import catalog


# Connections are refreshed one after another. At the soft limit the refresh in progress rolls
# back and the run ends; the next scheduled run starts again from the first connection.
@shared_task(queue="celery", ignore_result=True, time_limit=1800, soft_time_limit=1740)
def catalogs_refresh() -> None:
    """Refresh every connection's ERP catalog (beat, hourly); failures are logged, not raised."""
    catalog.catalogs_refresh(actor="schedule", now=timezone.now)
