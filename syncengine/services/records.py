"""What every flow shares: keys, the one-event-per-transition write, worker nudges, the attempt's
claim and outcome, retry by hand.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from mappings.resolve import InvoicePlan, Problem
from mappings.resolve_cost import JournalPlan, PurchasePlan
from mappings.resolve_time import TimePlan
from syncengine.bulk import rows_update
from syncengine.canonical import ProcurementKind
from syncengine.erps.base import ConnectorError, ErpDocument
from syncengine.models import DocumentKind, EncodedJSON, SyncEvent, SyncRecord, SyncState

SYSTEM = "system"

VOID_STATUS = "void"


def timecard_key(source_id: str) -> str:
    return _erp_key("ST-TC-", source_id)


ERP_KEY_LENGTH = 35  # Business Central's externalDocumentNumber, the shortest target field


def _erp_key(prefix: str, source_id: str) -> str:
    """prefix + source id, or prefix + a hash of it when that would not fit the ERP's field."""
    key = f"{prefix}{source_id}"
    if len(key) <= ERP_KEY_LENGTH:
        return key
    return prefix + hashlib.sha256(source_id.encode()).hexdigest()[: ERP_KEY_LENGTH - len(prefix)]


def invoice_key(source_id: str) -> str:
    """The idempotency key written into the ERP document; at most 35 characters (BC's limit)."""
    return _erp_key("ST-INV-", source_id)


CREDIT_MEMO_PREFIX = "ST-CM-"


def credit_memo_key(source_id: str) -> str:
    """The key of a credit issued in ServiceTrade (an invoice whose total is negative)."""
    return _erp_key(CREDIT_MEMO_PREFIX, source_id)


def void_key(source_id: str) -> str:
    return _erp_key("ST-VOID-", source_id)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(before) | set(after))
    return [
        {"field": key, "before": before.get(key), "after": after.get(key)}
        for key in keys
        if before.get(key) != after.get(key)
    ]


# Set inside `events_written_together`: the events of its transitions, not yet inserted.
_pending_events: ContextVar[list[SyncEvent] | None] = ContextVar("pending_events", default=None)


@contextmanager
def events_written_together() -> Iterator[None]:
    """Write the events of every transition made inside in one INSERT when the block ends.

    Use it inside the transaction that makes the transitions, and only where nothing inside
    rolls back to a savepoint on its own (its events would still be written): claiming and
    finishing a batch of records. If the block raises, nothing is written and the transaction
    rolls back with its transitions.
    """
    pending: list[SyncEvent] = []
    token = _pending_events.set(pending)
    try:
        yield
    finally:
        _pending_events.reset(token)
    events_insert(pending)


def events_insert(events: list[SyncEvent]) -> None:
    """Insert events in one statement, in their order.

    On PostgreSQL the rows go as one JSON parameter, each event's data in the text `_event`
    encoded: a bulk INSERT with seven parameters a row is parsed and quoted parameter by
    parameter in Python by the driver (it caches the parse only for statements of at most 50
    parameters), which cost more than the rows themselves. SQLite takes Django's bulk insert."""
    if not events:
        return
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        SyncEvent.objects.bulk_create(events)
        return
    rows = ",".join(
        json.dumps([event.record_id, event.at.isoformat(), event.actor, event.from_state,
                    event.to_state, event.detail])[:-1]
        + f",{_encoded(event.data)}]"
        for event in events
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_EVENTS_INSERT, [f"[{rows}]"])


def _encoded(data: Any) -> str:
    return data if isinstance(data, EncodedJSON) else json.dumps(data, cls=DjangoJSONEncoder)


_EVENTS_INSERT = """
INSERT INTO syncengine_syncevent (record_id, at, actor, from_state, to_state, detail, data)
SELECT (row->>0)::bigint, (row->>1)::timestamptz, row->>2, row->>3, row->>4, row->>5, row->6
FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS given(row, position)
ORDER BY position
"""


def _event(
    record: SyncRecord,
    from_state: str,
    to_state: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> SyncEvent:
    event = SyncEvent(
        record=record,
        at=now,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        detail=detail,
        # Encoded here, once: what cannot be written as JSON fails in the caller's transition,
        # and the row takes the text as it is (read back, `data` is the decoded object).
        data=EncodedJSON(json.dumps(data or {}, cls=DjangoJSONEncoder)),
    )
    pending = _pending_events.get()
    if pending is None:
        event.save()
    else:
        pending.append(event)
    return event


def _transition(
    record: SyncRecord,
    to_state: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    from_state = record.state
    changed = _transition_fields(record, to_state, now=now, **fields)
    # Only what changed: rewriting every column would re-send the plan and problems (JSON) on
    # each of a record's several transitions.
    record.save(update_fields=None if record.pk is None else changed)
    _event(record, from_state, to_state, actor=actor, now=now, detail=detail, data=data)


def _transition_unsaved(
    record: SyncRecord,
    to_state: str,
    *,
    actor: str,
    now: datetime,
    detail: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> list[str]:
    """`_transition` of a saved record whose row the caller writes, with others', by
    `records_save` (in the same transaction). Returns the fields to save."""
    from_state = record.state
    changed = _transition_fields(record, to_state, now=now, **fields)
    _event(record, from_state, to_state, actor=actor, now=now, detail=detail, data=data)
    return changed


def _transition_fields(
    record: SyncRecord, to_state: str, *, now: datetime, **fields: Any
) -> list[str]:
    record.state = to_state
    record.state_changed_at = now
    for name, value in fields.items():
        setattr(record, name, value)
    return ["state", "state_changed_at", *fields]


def records_save(*, records: list[SyncRecord], fields: list[str]) -> None:
    """Write `fields` of every record in one statement (`bulk.rows_update`): the rows a batch
    settles the same way, instead of one UPDATE and its reply each."""
    rows_update(records, fields=fields)


def _nudge_if_ready(record: SyncRecord) -> None:
    if record.state == SyncState.READY:
        sync_record_nudge(record_id=record.pk)


def sync_record_nudge(*, record_id: int) -> None:
    """After commit, wake a worker for this record. A lost message only delays it: the sweeper
    finds every due record in the database.

    The records of one transaction (a page of 500 invoices) share their messages: one for each
    `CROSSWALK_POST_BATCH` of them, so a worker posts them together instead of taking 500
    messages, each for one record."""
    if not settings.CROSSWALK_NUDGE_WORKERS:
        return
    pending = getattr(_nudges, "pending", None)
    if pending is not None and pending.waiting_for_commit():
        pending.record_ids.append(record_id)
        return
    pending = _NudgesAfterCommit(record_ids=[record_id])
    _nudges.pending = pending
    transaction.on_commit(pending.send, robust=True)


_nudges = threading.local()


@dataclass
class _NudgesAfterCommit:
    """Record ids to nudge once the transaction that made them due commits."""

    record_ids: list[int]

    def waiting_for_commit(self) -> bool:
        # Still registered with the open transaction: not yet sent, and not dropped by the
        # rollback of a savepoint or of the transaction itself (Django then forgets it).
        connection = transaction.get_connection()
        return connection.in_atomic_block and any(
            callback == self.send for _, callback, _ in connection.run_on_commit
        )

    def send(self) -> None:
        sync_records_nudge_now(record_ids=self.record_ids)


def sync_records_nudge_now(*, record_ids: list[int]) -> None:
    """One worker message per batch of records (they need not be due yet: a worker leaves what
    is not)."""
    from syncengine.tasks import sync_records_post as sync_records_post_task

    size = settings.CROSSWALK_POST_BATCH
    for start in range(0, len(record_ids), size):
        sync_records_post_task.apply_async(kwargs={"record_ids": record_ids[start : start + size]})


@dataclass(frozen=True)
class Claim:
    record_id: int
    token: str
    lookup_first: bool
    at: datetime
    # The record as leased, with its connection and document: what the attempt posts and, if
    # the lease still holds when it ends, what is settled (None: read when needed).
    record: SyncRecord | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Outcome:
    state: str
    erp_document: ErpDocument | None = None
    found_by_lookup: bool = False
    plan: InvoicePlan | TimePlan | JournalPlan | PurchasePlan | None = None
    problems: tuple[Problem, ...] = ()
    error: ConnectorError | None = None
    detail: str = ""
    duplicate_refused: bool = False
    # Added to the stored plan and the POSTED event: the parts of a split, a re-dated posting.
    notes: dict[str, Any] = field(default_factory=dict)
    # The attempt's requests and responses (redacted, bounded), for the event that ends it.
    exchanges: dict[str, Any] = field(default_factory=dict)
    # The worker is out of time: the rest of its batch goes back untried.
    stop_batch: bool = False


def _posted_parts(record: SyncRecord) -> list[dict[str, Any]]:
    """The documents a split posting made (empty for a posting in one document)."""
    return list((record.plan or {}).get("parts") or [])


_LEASE_CLEARED: dict[str, Any] = {"lease_until": None, "lease_token": ""}


def _cause(code: str, source_value: str = "") -> str:
    return f"{code}:{source_value}"[:200] if source_value else code


def _retry(record: SyncRecord, *, actor: str, now: datetime, detail: str, batch: str = "") -> None:
    _transition(record, SyncState.READY, actor=actor, now=now, detail=detail,
                next_attempt_at=now, failure_category="", failure_cause="", message="",
                problems=[], attempts_before_retry=record.attempts,
                retry_batch=batch)  # fmt: skip
    _nudge_if_ready(record)


#
# The same path as invoices and timecards: the body is kept (SourceReceipt), each record is
# accepted on its own into a SourceDocument and one SyncRecord under a deterministic key, and
# posting claims, calls the connector with no transaction open and settles by lookup. A job item
# cost and an inventory adjustment post as a balanced G/L journal, a purchase invoice as an AP
# document; vendors, purchase orders and receipts are kept and recorded as not posted, with the
# reason (docs/source-formats.md says why for each).

COST_KINDS = frozenset({
    DocumentKind.JOB_COST, DocumentKind.VENDOR, DocumentKind.PURCHASE_ORDER,
    DocumentKind.RECEIPT, DocumentKind.PURCHASE_INVOICE, DocumentKind.INVENTORY_ADJUSTMENT,
})  # fmt: skip

PROCUREMENT_KINDS = {
    ProcurementKind.VENDOR: (DocumentKind.VENDOR, "ST-VN-"),
    ProcurementKind.PURCHASE_ORDER: (DocumentKind.PURCHASE_ORDER, "ST-PO-"),
    ProcurementKind.RECEIPT: (DocumentKind.RECEIPT, "ST-RC-"),
    ProcurementKind.PURCHASE_INVOICE: (DocumentKind.PURCHASE_INVOICE, "ST-PI-"),
    ProcurementKind.INVENTORY_ADJUSTMENT: (DocumentKind.INVENTORY_ADJUSTMENT, "ST-IA-"),
}


def job_cost_key(source_id: str) -> str:
    return _erp_key("ST-JC-", source_id)


def procurement_key(kind: str, source_id: str) -> str:
    return _erp_key(PROCUREMENT_KINDS[kind][1], source_id)
