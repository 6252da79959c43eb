"""Reconciliation: source documents, sync records and ERP documents compared by key, to the cent.

Run on a schedule (beat, daily by default) and on demand (`manage.py reconcile`). It finds what
the real-time path missed and says so in numbers finance can tie out:

- NOT_POSTED: an approved source invoice with no ERP document and a record that is not visibly
  waiting or failed (e.g. stuck in READY after a lost message) → re-driven.
- MISSING_IN_ERP: a record says POSTED but the ERP has no document with its key → re-driven:
  the record becomes UNCERTAIN, so the next attempt looks the key up before posting.
- NOT_RECORDED: the ERP has a document with our key but the record is not POSTED (a timeout
  after commit) → re-driven: the next attempt finds it by lookup and records it.
- DUPLICATE_IN_ERP: several ERP documents carry one key → reported, never deleted.
- AMOUNT_DIFFERS: the ERP document's amount differs from the source total → reported.

Amounts are compared signed: a credit memo (a credit issued in ServiceTrade, whose source total
is negative) counts negative. An invoice posted split counts as the sum of its two parts, found
by their part keys.

Each run keeps its findings and the day's totals for the console and the API.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from syncengine.erps.base import ErpDocumentSummary
from syncengine.erps.registry import connector_for
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    ReconciliationFinding,
    ReconciliationRun,
    SyncRecord,
    SyncState,
)
from syncengine.money import ZERO
from syncengine.plans import part_key

# Credit memos for voids; every other credit memo corrects a posting of a source document (a
# credit issued in ServiceTrade, the credit part of a split) and counts against the invoices.
VOID_KEY_PREFIX = "ST-VOID-"

# Records in these states are visibly waiting or failed: the console already shows them.
_VISIBLE = {SyncState.BLOCKED, SyncState.FAILED, SyncState.RETRY_SCHEDULED, SyncState.POSTING,
            SyncState.UNCERTAIN, SyncState.SKIPPED, SyncState.CANCELLED}  # fmt: skip

Kind = ReconciliationFinding.Kind


def reconciliation_run(*, connection: Connection, actor: str, now: datetime) -> ReconciliationRun:
    """Compare and record; re-drive what can be re-driven. The ERP is read before any
    transaction opens. Raises ConnectorError when the ERP cannot be read."""
    erp_documents = list(connector_for(connection).list_documents())
    by_key: dict[str, list[ErpDocumentSummary]] = defaultdict(list)
    for document in erp_documents:
        by_key[document.key].append(document)
    with transaction.atomic():
        run = ReconciliationRun.objects.create(connection=connection, started_at=now, actor=actor)
        findings = _compare(run, connection, by_key, now=now, actor=actor)
        ReconciliationFinding.objects.bulk_create(findings, batch_size=500)
        _totals(run, connection, erp_documents)
        run.finished_at = now
        run.counts = _count(findings)
        run.save()
    return run


def _compare(
    run: ReconciliationRun,
    connection: Connection,
    by_key: dict[str, list[ErpDocumentSummary]],
    *,
    now: datetime,
    actor: str,
) -> list[ReconciliationFinding]:
    findings: list[ReconciliationFinding] = []
    # Documents the ERP lists by key: invoices and their credit memos (time entries are keyed per
    # entry and re-sent safely by the weekly catch-up instead).
    records = (
        SyncRecord.objects.filter(connection=connection, document__kind=DocumentKind.INVOICE)
        .select_related("document")
        .only("pk", "state", "operation", "idempotency_key", "erp_document_number", "document_id",
              "document__number", "document__total", "document__status")
    )  # fmt: skip
    claimed: set[str] = set()
    # A reissued invoice's first posting carries the old version, offset by its credit memo:
    # its amount is not compared with the edited source total (the reissue carries that).
    reissued = set(
        SyncRecord.objects.filter(connection=connection, operation=Operation.REISSUE).values_list(
            "document_id", flat=True
        )
    )
    for record in records.iterator(chunk_size=2000):
        key = record.idempotency_key
        claimed.update((key, part_key(key, "P"), part_key(key, "N")))
        found = _documents_for(key, by_key)
        finding = _check_record(run, record, found, connection, record.document_id in reissued)
        if finding is not None:
            findings.append(finding)
            _redrive(record, finding, now=now, actor=actor)
    for key, documents in by_key.items():
        if len(documents) > 1 and key not in claimed:
            findings.append(_duplicate(run, key, documents, None))
    return findings


def _signed(document: ErpDocumentSummary) -> Decimal:
    return -document.amount if document.kind == "CREDIT_MEMO" else document.amount


def _documents_for(
    key: str, by_key: dict[str, list[ErpDocumentSummary]]
) -> list[ErpDocumentSummary]:
    """The documents of a record: under its key, else its split parts taken as one document."""
    found = by_key.get(key, [])
    parts = [by_key.get(part_key(key, suffix), []) for suffix in ("P", "N")]
    if found or not any(parts):
        return found
    if any(len(part) > 1 for part in parts):
        return [document for part in parts for document in part]  # reported as duplicates
    documents = [part[0] for part in parts if part]
    return [ErpDocumentSummary(
        key=key, id=documents[0].id, number=" + ".join(doc.number for doc in documents),
        kind="INVOICE", amount=sum((_signed(doc) for doc in documents), ZERO),
        posting_date=documents[0].posting_date,
    )]  # fmt: skip


def _check_record(
    run: ReconciliationRun,
    record: SyncRecord,
    found: list[ErpDocumentSummary],
    connection: Connection,
    reissued: bool = False,
) -> ReconciliationFinding | None:
    compared = record.operation == Operation.CREATE and not reissued
    source_amount = record.document.total if compared else None
    if len(found) > 1:
        return _duplicate(run, record.idempotency_key, found, record)
    if not found:
        if record.state == SyncState.POSTED:
            return _finding(
                run,
                Kind.MISSING_IN_ERP,
                record,
                source_amount,
                None,
                "Marked posted here, but the ERP has no document with this key.",
            )
        approved = {status.lower() for status in connection.approved_statuses}
        if record.state not in _VISIBLE and record.document.status in approved:
            return _finding(
                run,
                Kind.NOT_POSTED,
                record,
                source_amount,
                None,
                f"Approved but not posted ({record.get_state_display().lower()}).",
            )
        return None
    document = found[0]
    if record.state != SyncState.POSTED:
        return _finding(
            run,
            Kind.NOT_RECORDED,
            record,
            source_amount,
            document.amount,
            f"The ERP has {document.number} with this key, but the record is "
            f"{record.get_state_display().lower()}.",
        )
    amount = _signed(document)
    if source_amount is not None and amount != source_amount:
        return _finding(
            run,
            Kind.AMOUNT_DIFFERS,
            record,
            source_amount,
            amount,
            f"ServiceTrade says {source_amount}, the ERP's {document.number} says "
            f"{amount}: {amount - source_amount:+} difference.",
        )
    return None


def _finding(
    run: ReconciliationRun,
    kind: str,
    record: SyncRecord | None,
    source_amount: Decimal | None,
    erp_amount: Decimal | None,
    detail: str,
    key: str = "",
) -> ReconciliationFinding:
    return ReconciliationFinding(
        run=run, kind=kind, record=record, key=key or (record.idempotency_key if record else ""),
        document_number=record.document.number if record else "",
        source_amount=source_amount, erp_amount=erp_amount, detail=detail,
    )  # fmt: skip


def _duplicate(
    run: ReconciliationRun, key: str, documents: list[ErpDocumentSummary], record: SyncRecord | None
) -> ReconciliationFinding:
    numbers = ", ".join(sorted(document.number for document in documents))
    amount = sum((document.amount for document in documents), ZERO)
    return _finding(run, Kind.DUPLICATE_IN_ERP, record, None, amount,
                    f"{len(documents)} ERP documents carry key {key}: {numbers}. Reported only; "
                    "reverse the extra one in the ERP.", key=key)  # fmt: skip


def _redrive(
    record: SyncRecord, finding: ReconciliationFinding, *, now: datetime, actor: str
) -> None:
    from syncengine.services import sync_record_redrive

    settled_by_person = record.state in (SyncState.SKIPPED, SyncState.CANCELLED)
    if finding.kind in (Kind.NOT_POSTED, Kind.MISSING_IN_ERP, Kind.NOT_RECORDED) and not (
        settled_by_person
    ):
        sync_record_redrive(record=record, actor=actor, now=now,
                            reason=f"Reconciliation: {finding.detail}")  # fmt: skip
        finding.action = "re-driven"


def _totals(
    run: ReconciliationRun, connection: Connection, documents: list[ErpDocumentSummary]
) -> None:
    run.erp_credit_total = run.erp_invoice_total = ZERO
    for document in documents:
        if document.key.startswith(VOID_KEY_PREFIX):
            # The credit a void made; for a split posting, less the invoice that reversed its
            # credit memo part.
            run.erp_credit_total -= _signed(document)
        else:
            run.erp_invoice_total += _signed(document)
    posted = SyncRecord.objects.filter(
        connection=connection, operation=Operation.CREATE, state=SyncState.POSTED
    )
    run.posted_source_total = sum(
        (total for total in posted.values_list("document__total", flat=True) if total is not None),
        ZERO,
    )


def _count(findings: list[ReconciliationFinding]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for finding in findings:
        counts[finding.kind] += 1
    return dict(counts)


def reconciliation_run_all(*, now: datetime) -> list[ReconciliationRun]:
    """Every connection; an unreachable ERP is logged and the others still run."""
    import logging

    from syncengine.erps.base import ConnectorError

    runs = []
    for connection in Connection.objects.order_by("pk"):
        try:
            runs.append(reconciliation_run(connection=connection, actor="schedule", now=now))
        except ConnectorError as error:
            logging.getLogger(__name__).warning(
                "Reconciliation of %s skipped: %s", connection.slug, error.message
            )
    return runs
