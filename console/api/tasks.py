"""Celery tasks of the API: thin wrappers that call one service each."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from console.api import services


@shared_task(queue="celery", ignore_result=True, time_limit=300, soft_time_limit=240)
def idempotent_requests_purge() -> None:
    """Delete expired Idempotency-Key rows (beat, hourly). Nothing to retry: the next run
    deletes whatever this one did not."""
    services.idempotent_requests_purge(now=timezone.now())
