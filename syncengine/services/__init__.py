"""Writes of the sync engine: ingest source documents, claim and post sync records, retry.

The rules that keep postings single and nothing lost:
- A sync record is unique per (connection, idempotency key); receiving a document again updates
  the same row and never creates a second one.
- A claim is a short transaction that moves the row to POSTING under a lease; the ERP is called
  with no transaction open; the outcome is written in a second short transaction, and only by the
  worker that still holds the lease.
- Any attempt after the first looks the document up in the ERP by its key before creating it, so
  a crash between "the ERP accepted it" and "we recorded it" ends in POSTED, not a duplicate.
- Every transition writes exactly one `SyncEvent` in the same transaction as the change.

The services live in one module per flow; this package exports their public names.
"""

from __future__ import annotations

from syncengine.services.changes import sync_record_change_ignore, sync_record_change_reissue
from syncengine.services.costs import (
    NOT_POSTED,
    KeptRelease,
    job_costs_from_api,
    job_costs_ingest,
    procurement_ingest,
    procurement_kept_release,
)
from syncengine.services.ingest import IngestResult, invoice_accept, invoices_ingest
from syncengine.services.manual import (
    CANCELLABLE,
    RESOLVABLE,
    RETRYABLE,
    connection_webhook_secret_rotate,
    sync_record_cancel,
    sync_record_redrive,
    sync_record_resolve_outside,
    sync_record_retry,
    sync_records_retry_bulk,
)
from syncengine.services.policies import (
    MISSING_PREREQUISITE,
    PERIOD_CLOSED,
    UNKNOWN_VENDOR,
    period_holds_release,
    prerequisites_release,
)
from syncengine.services.posting import (
    BACKOFF_CAP_SECONDS,
    retry_delay_seconds,
    sync_record_post,
    sync_records_post,
    sync_records_sweep,
    sync_run_until_idle,
)
from syncengine.services.records import (
    COST_KINDS,
    CREDIT_MEMO_PREFIX,
    ERP_KEY_LENGTH,
    SYSTEM,
    VOID_STATUS,
    Claim,
    Outcome,
    credit_memo_key,
    invoice_key,
    job_cost_key,
    procurement_key,
    sync_record_nudge,
    sync_records_nudge_now,
    timecard_key,
    void_key,
)
from syncengine.services.timecards import (
    APPROVED_TIME,
    timecard_accept,
    timecards_catch_up,
    timecards_ingest,
)

__all__ = [
    "APPROVED_TIME",
    "BACKOFF_CAP_SECONDS",
    "CANCELLABLE",
    "COST_KINDS",
    "CREDIT_MEMO_PREFIX",
    "Claim",
    "ERP_KEY_LENGTH",
    "IngestResult",
    "KeptRelease",
    "MISSING_PREREQUISITE",
    "NOT_POSTED",
    "Outcome",
    "PERIOD_CLOSED",
    "RESOLVABLE",
    "RETRYABLE",
    "SYSTEM",
    "UNKNOWN_VENDOR",
    "VOID_STATUS",
    "connection_webhook_secret_rotate",
    "credit_memo_key",
    "invoice_accept",
    "invoice_key",
    "invoices_ingest",
    "job_cost_key",
    "job_costs_from_api",
    "job_costs_ingest",
    "period_holds_release",
    "prerequisites_release",
    "procurement_ingest",
    "procurement_key",
    "procurement_kept_release",
    "retry_delay_seconds",
    "sync_record_cancel",
    "sync_record_change_ignore",
    "sync_record_change_reissue",
    "sync_record_nudge",
    "sync_records_nudge_now",
    "sync_record_post",
    "sync_records_post",
    "sync_record_redrive",
    "sync_record_resolve_outside",
    "sync_record_retry",
    "sync_records_retry_bulk",
    "sync_records_sweep",
    "sync_run_until_idle",
    "timecard_accept",
    "timecard_key",
    "timecards_catch_up",
    "timecards_ingest",
    "void_key",
]
