"""Celery tasks of two-way master data: thin wrappers over masterdata.services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from masterdata.services import master_from_erp, master_outbox_send
from syncengine.erps.base import ConnectorError
from syncengine.models import Connection

logger = logging.getLogger(__name__)


@shared_task(queue="celery", ignore_result=True, time_limit=900, soft_time_limit=840)
def master_data_sync_all() -> None:
    """For every connection: read the ERP's changed customers, then tell each side what it has
    not been told. One connection's failure never stops the others; failures stay queued."""
    for connection in Connection.objects.order_by("pk"):
        try:
            master_from_erp(connection=connection, now=timezone.now())
        except ConnectorError as error:
            logger.warning("Master data of %s not read: %s", connection.slug, error.message)
        sent = master_outbox_send(connection=connection, now=timezone.now())
        if sent.failed:
            logger.warning("Master data of %s: %d not told yet", connection.slug, sent.failed)
