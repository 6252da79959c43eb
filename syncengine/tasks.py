"""Celery tasks: thin wrappers that load ids and call one service each.

A task message is only a nudge. `sync_records_post` claims the records it names in the database
and leaves those another worker already has or that are not due; `sync_records_sweep` (beat)
re-drives whatever a lost message or a killed worker left behind.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from syncengine import services


@shared_task(
    queue="celery", ignore_result=True, acks_late=True, time_limit=300, soft_time_limit=240
)
def sync_records_post(*, record_ids: list[int]) -> None:
    services.sync_records_post(record_ids=record_ids, now=timezone.now)


@shared_task(
    queue="celery", ignore_result=True, acks_late=True, time_limit=300, soft_time_limit=240
)
def sync_record_post(*, record_id: int) -> None:
    """One record's nudge, as sent before records were nudged in batches (messages already
    queued by an older version still work)."""
    services.sync_record_post(record_id=record_id, now=timezone.now)


@shared_task(queue="celery", ignore_result=True, time_limit=60, soft_time_limit=50)
def sync_records_sweep() -> None:
    services.sync_records_sweep(now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=1800, soft_time_limit=1740)
def reconciliation_run_all() -> None:
    from syncengine.reconcile import reconciliation_run_all as run_all

    run_all(now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=600, soft_time_limit=540)
def timecards_catch_up() -> None:
    services.timecards_catch_up(now=timezone.now())


# --- ServiceTrade API (syncengine.sources.servicetrade_api.sync) --------------------------------


@shared_task(queue="celery", ignore_result=True, time_limit=120, soft_time_limit=100)
def servicetrade_webhook_process(*, receipt_id: int) -> None:
    """Re-fetch what one stored webhook delivery names; a failure is left to the next poll."""
    from syncengine.models import SourceReceipt
    from syncengine.sources.servicetrade_api import sync

    receipt = SourceReceipt.objects.select_related("connection").get(pk=receipt_id)
    sync.webhook_message_process(receipt=receipt, now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=1800, soft_time_limit=1740)
def servicetrade_poll_due() -> None:
    from syncengine.sources.servicetrade_api import sync

    sync.servicetrade_poll_due(now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=600, soft_time_limit=540)
def servicetrade_write_back_all() -> None:
    from syncengine.sources.servicetrade_api import sync

    for connection in sync.connections_with_api():
        sync.servicetrade_write_back(connection=connection, now=timezone.now())


# --- payments back from the ERP, and e-mail to support contacts ---------------------------------


@shared_task(queue="celery", ignore_result=True, time_limit=900, soft_time_limit=840)
def servicetrade_purchase_orders_due() -> None:
    from syncengine.sources.servicetrade_api import purchase_orders

    purchase_orders.purchase_orders_due(now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=1800, soft_time_limit=1740)
def payments_sync_all() -> None:
    from syncengine.payments import payments_sync_all as sync_all

    sync_all(now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=300, soft_time_limit=240)
def notifications_check_all() -> None:
    from syncengine.notify import notifications_check_all as check_all

    check_all(now=timezone.now())


@shared_task(queue="celery", ignore_result=True, time_limit=600, soft_time_limit=540)
def notifications_digest_all() -> None:
    from syncengine.notify import notifications_digest_all as digest_all

    digest_all(now=timezone.now())
