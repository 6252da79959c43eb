"""An invoice edited in ServiceTrade after it posted: a person ignores the change or voids and
reissues it.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from syncengine.models import Operation, PostedChange, SyncRecord, SyncState
from syncengine.services.ingest import _current_posting
from syncengine.services.records import (
    CREDIT_MEMO_PREFIX,
    _erp_key,
    _event,
    _nudge_if_ready,
    _posted_parts,
)


def _pending_change(record: SyncRecord) -> PostedChange:
    change = (
        PostedChange.objects.select_for_update()
        .filter(record=record, decision=PostedChange.Decision.PENDING)
        .first()
    )
    if change is None:
        raise ValueError("This record has no change waiting for a decision.")
    return change


@transaction.atomic
def sync_record_change_ignore(
    *, record: SyncRecord, actor: str, now: datetime, reason: str
) -> PostedChange:
    """Keep the posted document as it is; the change is recorded as ignored, by whom and why.

    Raises ValueError without a reason or when no change waits for a decision."""
    if not reason.strip():
        raise ValueError("Say why: ignoring a change needs a reason.")
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    change = _pending_change(record)
    change.decision, change.decided_by, change.decided_at = (
        PostedChange.Decision.IGNORED, actor, now,
    )  # fmt: skip
    change.reason = reason.strip()[:500]
    change.save()
    _event(record, record.state, record.state, actor=actor, now=now,
           detail=f"Change ignored: {change.reason}. The posted document stays as it is.",
           data={"change": change.pk, "decision": change.decision})  # fmt: skip
    return change


@transaction.atomic
def sync_record_change_reissue(
    *, record: SyncRecord, actor: str, now: datetime, reason: str = ""
) -> PostedChange:
    """Void and reissue: a credit memo for the posted version, then the new version posted
    under a new key once the credit memo is in. Raises ValueError when no change waits, or the
    posted document cannot be reversed this way (not posted yet, a credit, split, voided)."""
    record = SyncRecord.objects.select_for_update().get(pk=record.pk)
    change = _pending_change(record)
    current = _current_posting(record.document)
    _check_reversible(record, current)
    revision = current.revision + 1
    source_id = record.document.source_id
    credit, reissue = (
        SyncRecord.objects.create(
            connection=record.connection, document=record.document, operation=operation,
            revision=revision, idempotency_key=_erp_key(f"ST-{prefix}{revision}-", source_id),
            state=SyncState.READY, next_attempt_at=now, received_at=now, state_changed_at=now,
        )
        for operation, prefix in ((Operation.REVERSAL_CREDIT_MEMO, "RV"),
                                  (Operation.REISSUE, "RI"))
    )  # fmt: skip
    change.decision, change.decided_by, change.decided_at = (
        PostedChange.Decision.VOID_AND_REISSUE, actor, now,
    )  # fmt: skip
    change.reason, change.credit_record, change.reissue_record = (
        reason.strip()[:500],
        credit,
        reissue,
    )
    change.save()
    data = {"change": change.pk, "decision": change.decision}
    _event(
        credit,
        "",
        SyncState.READY,
        actor=actor,
        now=now,
        data=data,
        detail=f"Void and reissue: a credit memo will offset {current.erp_document_number}.",
    )
    _event(
        reissue,
        "",
        SyncState.READY,
        actor=actor,
        now=now,
        data=data,
        detail=f"Void and reissue: the edited version ({change.total_after}) posts once "
        f"credit memo record {credit.pk} is in.",
    )
    _event(record, record.state, record.state, actor=actor, now=now, data=data,
           detail=f"Void and reissue requested{': ' + change.reason if change.reason else ''}. "
           f"Credit record {credit.pk}, reissue record {reissue.pk}.")  # fmt: skip
    _nudge_if_ready(credit)
    _nudge_if_ready(reissue)
    return change


def _check_reversible(record: SyncRecord, current: SyncRecord) -> None:
    if current.state != SyncState.POSTED:
        raise ValueError(
            f"The document in the ERP is not settled yet ({current.get_state_display().lower()}):"
            " wait until it is posted, then decide."
        )
    if current.idempotency_key.startswith(CREDIT_MEMO_PREFIX) or _posted_parts(current):
        raise ValueError(
            "The posted document is a credit memo or was split in two: reverse it in the ERP "
            "by hand, then ignore this change with the reason."
        )
    if SyncRecord.objects.filter(document=record.document,
                                 operation=Operation.VOID_CREDIT_MEMO).exists():  # fmt: skip
        raise ValueError("The invoice was voided: there is nothing to reissue.")
