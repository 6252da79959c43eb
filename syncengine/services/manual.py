"""What people do to records: retry one or many, cancel, mark resolved outside Crosswalk, re-drive;
webhook secrets.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from syncengine.models import Connection, SyncRecord, SyncRecordQuerySet, SyncState
from syncengine.services.records import _LEASE_CLEARED, _retry, _transition, sync_record_nudge


@transaction.atomic
def sync_record_retry(*, record: SyncRecord, actor: str, now: datetime) -> SyncRecord:
    """Send a blocked or failed record again, re-coded with the rules in force now.

    Raises ValueError for a record that is not blocked or failed.
    """
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state not in {SyncState.BLOCKED, SyncState.FAILED}:
        raise ValueError(
            f"Only blocked or failed records can be retried; this one is "
            f"{record.get_state_display().lower()}."
        )
    _retry(record, actor=actor, now=now, detail="Retry requested.")
    return record


RETRYABLE = (SyncState.BLOCKED, SyncState.FAILED)

CANCELLABLE = (SyncState.RECEIVED, SyncState.READY, SyncState.BLOCKED, SyncState.FAILED,
               SyncState.RETRY_SCHEDULED, SyncState.SKIPPED)  # fmt: skip

# Settled by a person who checked the ERP: these may or may not be there.
RESOLVABLE = (SyncState.BLOCKED, SyncState.FAILED, SyncState.UNCERTAIN, SyncState.RETRY_SCHEDULED)


def sync_records_retry_bulk(
    *,
    records: SyncRecordQuerySet,
    actor: str,
    now: datetime,
    on_progress: Callable[[int, int], None] | None = None,
    batch: str = "",
) -> int:
    """Retry every blocked or failed record of a filter (e.g. one failure cause), in chunks of
    200 so a large set neither locks the table nor holds one long transaction. Returns how many
    were queued; `on_progress(done, total)` after each chunk. Each record remembers `batch`, so
    the console can show how the retried set is getting on (`retry_batch_progress`)."""
    ids = list(records.filter(state__in=RETRYABLE).order_by("pk").values_list("pk", flat=True))
    queued = 0
    for start in range(0, len(ids), 200):
        with transaction.atomic():
            for record in SyncRecord.objects.select_for_update().filter(
                pk__in=ids[start : start + 200], state__in=RETRYABLE
            ):
                _retry(record, actor=actor, now=now, detail="Retry requested (bulk).", batch=batch)
                queued += 1
        if on_progress:
            on_progress(min(start + 200, len(ids)), len(ids))
    return queued


@transaction.atomic
def sync_record_cancel(*, record: SyncRecord, actor: str, now: datetime, reason: str) -> SyncRecord:
    """Stop a record that has not reached the ERP. Raises ValueError without a reason or when
    the record may already be in the ERP (posted, posting or uncertain)."""
    if not reason.strip():
        raise ValueError("Say why: cancelling needs a reason.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state not in CANCELLABLE:
        raise ValueError(
            f"A record that is {record.get_state_display().lower()} cannot be "
            "cancelled: it may already be in the ERP."
        )
    _transition(record, SyncState.CANCELLED, actor=actor, now=now, detail=f"Cancelled: {reason}",
                data={"reason": reason}, message=f"Cancelled by {actor}: {reason}",
                next_attempt_at=None, failure_cause="")  # fmt: skip
    return record


@transaction.atomic
def sync_record_resolve_outside(
    *, record: SyncRecord, actor: str, now: datetime, reason: str, erp_document_number: str = ""
) -> SyncRecord:
    """A person settled this record in the ERP by hand (or checked it is there); Crosswalk stops
    trying. Raises ValueError without a reason or for a record in another state."""
    if not reason.strip():
        raise ValueError("Say why: marking a record resolved needs a reason.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state not in RESOLVABLE:
        raise ValueError(
            f"A record that is {record.get_state_display().lower()} cannot be marked resolved."
        )
    detail = f"Resolved outside Crosswalk: {reason}" + (
        f" (ERP document {erp_document_number})" if erp_document_number else ""
    )
    _transition(record, SyncState.SKIPPED, actor=actor, now=now, detail=detail,
                data={"reason": reason, "erp_document_number": erp_document_number},
                message=detail, next_attempt_at=None, failure_cause="",
                erp_document_number=erp_document_number or record.erp_document_number)  # fmt: skip
    return record


@transaction.atomic
def sync_record_redrive(*, record: SyncRecord, actor: str, now: datetime, reason: str) -> None:
    """Make a record runnable again now, settling by lookup first (used by reconciliation).

    A record that may be in the ERP becomes UNCERTAIN, so no attempt posts blind. Records in
    the middle of an attempt are left to it.
    """
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    if record.state == SyncState.POSTING:
        return
    sent = record.state == SyncState.POSTED or record.attempts > 0
    state = SyncState.UNCERTAIN if sent else SyncState.READY
    _transition(record, state, actor=actor, now=now, detail=reason, next_attempt_at=now,
                message=reason, **_LEASE_CLEARED)  # fmt: skip
    sync_record_nudge(record_id=record.pk)


def connection_webhook_secret_rotate(*, connection: Connection) -> str:
    """A new hook secret for the connection; returned once, only its hash is kept."""
    secret = secrets.token_urlsafe(32)
    connection.webhook_secret_hash = Connection.hash_secret(secret)
    connection.save(update_fields=["webhook_secret_hash"])
    return secret
