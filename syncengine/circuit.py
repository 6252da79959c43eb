"""A circuit breaker per connection: when the ERP refuses our credentials, or keeps failing to
answer, Crosswalk stops calling it for a while instead of failing records by the hundred.

- An authentication failure opens the circuit at once; five connection failures in a row open it.
- While open, the connection's records wait (they are not runnable, see
  `SyncRecordQuerySet.runnable`); the console shows one banner and the support contacts get one
  e-mail.
- When the cool-down ends, the next record is tried: success closes the circuit, another
  failure reopens it for twice as long (up to 30 minutes).

Called by the sync engine inside its finishing transaction, with the connection row locked.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.models import Connection, SyncRecord, SyncState

logger = logging.getLogger(__name__)

FAILURES_TO_OPEN = 5
# The failures that say the ERP itself is unusable, not that one document is wrong.
CIRCUIT_CATEGORIES = (FailureCategory.AUTH, FailureCategory.CONNECTION)
FIRST_COOL_DOWN = 60
MAX_COOL_DOWN = 1800


def circuit_failure(*, connection_id: int, error: ConnectorError, now: datetime) -> Connection:
    """Count a failure; open (or reopen) the circuit when it says the ERP is unusable."""
    connection = Connection.objects.select_for_update().get(pk=connection_id)
    if error.category not in CIRCUIT_CATEGORIES:
        return connection
    connection.circuit_failures += 1
    must_open = (
        error.category == FailureCategory.AUTH
        or connection.circuit_failures >= FAILURES_TO_OPEN
        or connection.circuit_retry_at is not None  # a failed trial after the cool-down
    )
    if must_open:
        _open(connection, error, now)
    connection.save(update_fields=["circuit_failures", "circuit_retry_at", "circuit_reason",
                                   "circuit_opened_at", "circuit_cool_down"])  # fmt: skip
    return connection


def _open(connection: Connection, error: ConnectorError, now: datetime) -> None:
    was_open = connection.circuit_retry_at is not None
    cool_down = (
        min(connection.circuit_cool_down * 2, MAX_COOL_DOWN) if was_open else FIRST_COOL_DOWN
    )
    connection.circuit_cool_down = cool_down
    connection.circuit_retry_at = now + timedelta(seconds=cool_down)
    connection.circuit_reason = error.message[:500]
    if not was_open:
        connection.circuit_opened_at = now
        transaction.on_commit(lambda: circuit_alert(connection_id=connection.pk), robust=True)
        logger.warning("Circuit opened for connection %s: %s", connection.slug, error.message)


def circuit_success(*, connection_id: int) -> None:
    """A call went through: the ERP is usable again."""
    Connection.objects.filter(pk=connection_id).exclude(
        circuit_failures=0, circuit_retry_at__isnull=True
    ).update(circuit_failures=0, circuit_retry_at=None, circuit_reason="", circuit_opened_at=None,
             circuit_cool_down=0)  # fmt: skip


def circuit_alert(*, connection_id: int) -> None:
    """One e-mail to the connection's support contacts when its circuit opens."""
    connection = Connection.objects.get(pk=connection_id)
    if not connection.support_emails:
        return
    waiting = SyncRecord.objects.filter(
        connection=connection,
        state__in=(SyncState.READY, SyncState.RETRY_SCHEDULED, SyncState.UNCERTAIN),
    ).count()
    send_mail(
        subject=f"Crosswalk: {connection.name} cannot reach its ERP",
        message=(
            f"Crosswalk stopped posting to the ERP of {connection.name}: "
            f"{connection.circuit_reason}\n\n{waiting} record(s) are waiting and will post on "
            "their own once the ERP answers again; nothing is lost. Check the connection's "
            "credentials and the ERP's availability."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=list(connection.support_emails),
    )
