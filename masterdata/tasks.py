"""Celery tasks of two-way master data: thin wrappers over masterdata.services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from masterdata.services import master_outbox_send
from syncengine.models import Connection

logger = logging.getLogger(__name__)


@shared_task(queue="celery", ignore_result=True, time_limit=900, soft_time_limit=840)
def master_outbox_send_all() -> None:
    """Tell each side of every connection what it has not been told; failures stay queued."""
    for connection in Connection.objects.order_by("pk"):
        sent = master_outbox_send(connection=connection, now=timezone.now())
        if sent.failed:
            logger.warning("Master data of %s: %d not told yet", connection.slug, sent.failed)
