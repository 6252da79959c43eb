"""Claim, attempt, finish: posting one due record at a time with a lease, never twice, never
holding a transaction across an ERP call.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mappings.catalog import catalog_cached
from mappings.resolve import InvoicePlan, Problem, invoice_plan_from_dict, resolve_invoice
from mappings.services import rules_in_force
from syncengine.canonical import Invoice, invoice_from_dict, to_jsonable
from syncengine.circuit import CIRCUIT_CATEGORIES, circuit_failure, circuit_success
from syncengine.erps.base import Connector, ConnectorError, ErpDocument, FailureCategory
from syncengine.erps.exchanges import exchanges_captured, exchanges_made
from syncengine.erps.registry import connector_for
from syncengine.models import (
    Connection,
    DocumentKind,
    Operation,
    PostedChange,
    SyncRecord,
    SyncRecordQuerySet,
    SyncState,
)
from syncengine.plans import is_credit, is_mixed, part_key, split
from syncengine.ratelimit import rate_budget_charge, rate_budget_take
from syncengine.services.costs import _post_cost_document
from syncengine.services.ingest import _current_posting
from syncengine.services.policies import (
    MISSING_PREREQUISITE,
    _open_day_for,
    plan_in_open_period,
    posting_policy,
)
from syncengine.services.records import (
    _LEASE_CLEARED,
    COST_KINDS,
    VOID_STATUS,
    Claim,
    Outcome,
    _cause,
    _event,
    _nudge_if_ready,
    _posted_parts,
    _transition,
    _transition_unsaved,
    events_written_together,
    records_save,
    sync_records_nudge_now,
)
from syncengine.services.timecards import _post_timecard

logger = logging.getLogger(__name__)

BACKOFF_CAP_SECONDS = 3600


def sync_record_post(
    *, record_id: int | None = None, now: Callable[[], datetime], actor: str = "worker"
) -> SyncRecord | None:
    """Claim one due record (this one, or the most overdue) and post it. None if nothing was due.

    Never raises for an ERP or data problem: the outcome is written on the record.
    """
    ids = None if record_id is None else [record_id]
    records = sync_records_post(record_ids=ids, now=now, actor=actor, limit=1)
    return records[0] if records else None


def sync_records_post(
    *,
    record_ids: Sequence[int] | None = None,
    now: Callable[[], datetime],
    actor: str = "worker",
    limit: int | None = None,
) -> list[SyncRecord]:
    """Claim up to `limit` due records (among these, or the most overdue) in one statement, post
    each on its own, then settle them all in one transaction. Returns the records settled.

    Each record goes to the ERP separately, with no transaction open, exactly as one claimed
    alone would; batching only shares the claim and the commit of the outcomes. A batch that
    runs long puts its unattempted records back rather than let their leases run out.
    """
    claims = _claim_batch(record_ids=record_ids, now=now(), actor=actor,
                          limit=limit or settings.CROSSWALK_POST_BATCH)  # fmt: skip
    if not claims:
        return []
    started = time.monotonic()
    context = _AttemptContext.of_batch(claims)
    attempted: list[tuple[Claim, Outcome]] = []
    why_stopped = ""
    for claim in claims:
        if time.monotonic() - started > settings.CROSSWALK_LEASE_SECONDS / 2:
            why_stopped = "the worker's batch ran long"
            break
        outcome = _attempt(claim, context=context)
        attempted.append((claim, outcome))
        why_stopped = _why_stop_after(outcome)
        if why_stopped:
            break
    unattempted = claims[len(attempted) :]
    return _finish_batch(attempted, unattempted, now=now(), actor=actor, why=why_stopped)


def _why_stop_after(outcome: Outcome) -> str:
    """Why the rest of a batch must not be tried after this outcome ("" to go on)."""
    if outcome.stop_batch:
        return "the worker ran out of time"
    error = outcome.error
    if error is not None and error.category in CIRCUIT_CATEGORIES and not error.throttled_locally:
        # The ERP may be down: the circuit breaker decides before anything else is sent.
        return "the ERP failed to answer another record of its batch"
    return ""


def _claim(*, record_id: int | None, now: datetime, actor: str) -> Claim | None:
    """Take the lease on one due record (this one, or the most overdue)."""
    ids = None if record_id is None else [record_id]
    claims = _claim_batch(record_ids=ids, now=now, actor=actor, limit=1)
    return claims[0] if claims else None


def _claim_batch(
    *, record_ids: Sequence[int] | None, now: datetime, actor: str, limit: int
) -> list[Claim]:
    """Lease up to `limit` due records under one token, in one transaction.

    Records whose workers keep dying are failed on the way, so they neither loop forever nor hide
    the records behind them. At most one record per source document is taken, so a void never
    waits in the same batch for the invoice it offsets."""
    with transaction.atomic(), events_written_together():
        # Lock only the record rows: `runnable` joins the connection (circuit breaker), and
        # locking that shared row too would make concurrent claims skip each other's work.
        due = SyncRecord.objects.runnable(now).select_for_update(skip_locked=True, of=("self",))
        if record_ids is not None:
            due = due.filter(pk__in=record_ids)
        leasing: list[SyncRecord] = []
        documents: set[int] = set()
        # Read with what the attempt needs (`_for_posting`): the claim's record is the one posted.
        for record in _for_posting(due).order_by("next_attempt_at", "id")[:limit]:
            if record.state == SyncState.POSTING and _attempts_left(record) <= 0:
                _fail_abandoned(record, now=now, actor=actor)
            elif record.document_id in documents:
                continue
            elif record.connection.circuit_failures and leasing:
                continue  # a connection that has just failed is tried one record at a time
            else:
                documents.add(record.document_id)
                leasing.append(record)
                if record.connection.circuit_failures:
                    break
        return _lease(leasing, now=now, actor=actor)


def _fail_abandoned(record: SyncRecord, *, now: datetime, actor: str) -> None:
    _transition(
        record,
        SyncState.FAILED,
        actor=actor,
        now=now,
        detail=f"The worker stopped during each of the last {record.attempts} attempts. "
        "Check the worker logs, then retry; the retry looks the invoice up first.",
        failure_category=FailureCategory.INTERNAL,
        next_attempt_at=None,
        message="Workers stopped while posting this record.",
        **_LEASE_CLEARED,
    )


def _lease(records: list[SyncRecord], *, now: datetime, actor: str) -> list[Claim]:
    """One UPDATE for the batch; an event each, inserted together."""
    if not records:
        return []
    token = uuid.uuid4().hex
    lease_until = now + timedelta(seconds=settings.CROSSWALK_LEASE_SECONDS)
    SyncRecord.objects.filter(pk__in=[record.pk for record in records]).update(
        state=SyncState.POSTING, state_changed_at=now, attempts=F("attempts") + 1,
        lease_token=token, lease_until=lease_until,
    )  # fmt: skip
    claims = []
    for record in records:
        abandoned = record.state == SyncState.POSTING
        lookup_first = record.attempts > 0
        detail = f"Attempt {record.attempts + 1}" + (
            " after the previous worker stopped: checking the ERP first."
            if abandoned
            else (": checking the ERP first." if lookup_first else ".")
        )
        _event(record, record.state, SyncState.POSTING, actor=actor, now=now, detail=detail)
        # The row as the UPDATE above left it, without reading it again.
        record.state, record.state_changed_at = SyncState.POSTING, now
        record.attempts += 1
        record.lease_token, record.lease_until = token, lease_until
        claims.append(Claim(record_id=record.pk, token=token, lookup_first=lookup_first, at=now,
                            record=record))  # fmt: skip
    return claims


def _for_posting(records: SyncRecordQuerySet) -> SyncRecordQuerySet:
    """The records with what posting reads of their connection and document (not the document's
    payload as received: posting works from its canonical form)."""
    return records.select_related("connection", "document").defer("document__payload")


@dataclass
class _AttemptContext:
    """What the attempts of one batch share: its records, as the claim read them, and each
    connection's connector, made once (the sandbox keeps its account and customer look-ups;
    Business Central its token). A record it lacks is read when its attempt starts."""

    records: dict[int, SyncRecord] = dataclasses.field(default_factory=dict)
    connectors: dict[int, Connector] = dataclasses.field(default_factory=dict)

    @classmethod
    def of_batch(cls, claims: list[Claim]) -> _AttemptContext:
        return cls(records={claim.record_id: claim.record for claim in claims if claim.record})

    def record(self, claim: Claim) -> SyncRecord:
        record = self.records.pop(claim.record_id, None)
        return record or _for_posting(SyncRecord.objects.filter(pk=claim.record_id)).get()

    def connector(self, connection: Connection) -> Connector:
        if connection.pk not in self.connectors:
            self.connectors[connection.pk] = connector_for(connection)
        return self.connectors[connection.pk]


def _attempt(claim: Claim, *, context: _AttemptContext | None = None) -> Outcome:
    """Talk to the ERP. Runs with no transaction open and no row locked. What was sent and what
    came back goes with the outcome, to be kept on the event that ends the attempt."""
    with exchanges_captured() as capture:
        outcome = _outcome_of_attempt(claim, context or _AttemptContext())
    return dataclasses.replace(outcome, exchanges=capture.as_data())


def _outcome_of_attempt(claim: Claim, context: _AttemptContext) -> Outcome:
    try:
        return _post_or_find(claim, context)
    except SoftTimeLimitExceeded:
        # The ERP call may have gone through: settle it by lookup on a later attempt. The rest
        # of the batch is put back untried: the task is about to be stopped.
        return Outcome(
            SyncState.FAILED,
            error=ConnectorError(
                "The ERP took too long to answer; whether it took the document is unknown.",
                category=FailureCategory.CONNECTION,
                transient=True,
                outcome_unknown=True,
            ),
            stop_batch=True,
        )
    except Exception as error:  # a bug must stop this record, not the worker or the others
        logger.exception("Unexpected error posting sync record %s", claim.record_id)
        return Outcome(
            SyncState.FAILED,
            error=ConnectorError(
                f"Unexpected error: {type(error).__name__}: {error}",
                category=FailureCategory.INTERNAL,
                transient=False,
            ),
        )


def _post_or_find(claim: Claim, context: _AttemptContext) -> Outcome:
    record = context.record(claim)
    connector = context.connector(record.connection)
    wait = rate_budget_take(connection=record.connection, requests=1 + claim.lookup_first,
                            now=claim.at)  # fmt: skip
    if wait:
        return Outcome(SyncState.FAILED, error=ConnectorError(
            f"Holding back to stay within {record.connection.rate_limit_per_minute} ERP requests "
            "a minute.",
            category=FailureCategory.RATE_LIMIT, transient=True, retry_after_seconds=wait,
            throttled_locally=True,
        ))  # fmt: skip
    try:
        return _post_or_find_record(record, connector, claim)
    finally:
        # The budget was taken for one request (two with a lookup); an ERP whose posting takes
        # several (Business Central: lookups, a $batch, the post) is charged what it really made.
        extra = exchanges_made() - (1 + claim.lookup_first)
        if extra > 0:
            rate_budget_charge(connection=record.connection, requests=extra, now=claim.at)


def _post_or_find_record(record: SyncRecord, connector: Connector, claim: Claim) -> Outcome:
    try:
        if record.document.kind in COST_KINDS:
            return _post_cost_document(record, connector, lookup_first=claim.lookup_first)
        if claim.lookup_first:
            existing = connector.find_invoice(key=record.idempotency_key)
            if existing is not None:
                return Outcome(SyncState.POSTED, erp_document=existing, found_by_lookup=True)
        if record.operation == Operation.VOID_CREDIT_MEMO:
            return _credit_void(record, connector, now=claim.at)
        if record.operation == Operation.REVERSAL_CREDIT_MEMO:
            return _credit_reissued(record, connector)
        if record.document.kind == DocumentKind.TIMECARD:
            return _post_timecard(record, connector)
        if record.document.status == VOID_STATUS:
            # Voided while it waited (e.g. failed, then retried): never post a voided invoice.
            return Outcome(SyncState.SKIPPED, detail="Voided in ServiceTrade: not posted.")
        if record.operation == Operation.REISSUE:
            return _reissue(record, connector, lookup_first=claim.lookup_first)
        invoice = invoice_from_dict(record.document.canonical)
        return _post_invoice(record, connector, invoice, lookup_first=claim.lookup_first)
    except ConnectorError as error:
        if error.category == FailureCategory.PREREQUISITE and not error.transient:
            # Something the document needs is missing in the ERP: it waits, blocked, and is sent
            # again when the thing appears (`prerequisites_release`), not failed by the hundred.
            return Outcome(SyncState.BLOCKED, problems=(
                Problem(MISSING_PREREQUISITE, error.message, error.missing),
            ))  # fmt: skip
        if error.category == FailureCategory.DUPLICATE and record.document.kind not in COST_KINDS:
            # The ERP itself refused a second copy: our lookup should have found it first, so
            # this is recorded (`duplicate_refused`) and the reliability tests count it. (A cost
            # document is not an invoice: its own retry looks it up where it was posted.)
            existing = connector.find_invoice(key=record.idempotency_key)
            if existing is not None:
                return Outcome(SyncState.POSTED, erp_document=existing, found_by_lookup=True,
                               duplicate_refused=True)  # fmt: skip
        return Outcome(SyncState.FAILED, error=error)


def _post_invoice(
    record: SyncRecord, connector: Connector, invoice: Invoice, *, lookup_first: bool
) -> Outcome:
    """Code the invoice, apply the connection's posting policies, post one or two documents."""
    plan = invoice_posting_plan(record.connection, invoice)
    if isinstance(plan, list):
        return Outcome(SyncState.BLOCKED, problems=tuple(plan))
    policy = posting_policy(record.connection)
    if isinstance(policy, Outcome):
        return policy
    plan_or_hold = plan_in_open_period(plan, policy)
    if isinstance(plan_or_hold, Outcome):
        return plan_or_hold
    plan, notes = plan_or_hold
    if policy.mixed_sign == "split" and is_mixed(plan):
        outcome = _post_split(record, connector, plan, invoice, lookup_first=lookup_first)
        return dataclasses.replace(outcome, notes={**outcome.notes, **notes})
    document = _post_plan(connector, plan, record.idempotency_key)
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan, notes=notes)


def _credit_reissued(record: SyncRecord, connector: Connector) -> Outcome:
    """The credit memo that takes the previous version out of the ERP before its reissue."""
    previous = SyncRecord.objects.get(
        document=record.document, revision=record.revision - 1,
        operation=Operation.CREATE if record.revision == 1 else Operation.REISSUE,
    )  # fmt: skip
    posting_date = timezone.localdate(timezone=ZoneInfo(record.connection.time_zone))
    document = connector.post_credit_memo(
        original_id=previous.erp_document_id, key=record.idempotency_key, posting_date=posting_date
    )
    return Outcome(SyncState.POSTED, erp_document=document)


def _reissue(record: SyncRecord, connector: Connector, *, lookup_first: bool) -> Outcome:
    """The edited version, coded and posted like an invoice, once its credit memo is in."""
    credit = SyncRecord.objects.get(document=record.document, revision=record.revision,
                                    operation=Operation.REVERSAL_CREDIT_MEMO)  # fmt: skip
    if credit.state != SyncState.POSTED:
        raise ConnectorError(
            f"Waiting for credit memo record {credit.pk} to post before reissuing.",
            category=FailureCategory.PREREQUISITE, transient=True,
        )  # fmt: skip
    change = PostedChange.objects.get(reissue_record=record)
    invoice = invoice_from_dict(change.after)
    return _post_invoice(record, connector, invoice, lookup_first=lookup_first)


def _post_plan(connector: Connector, plan: InvoicePlan, key: str) -> ErpDocument:
    """A credit (negative total) as a credit memo, anything else as an invoice."""
    if is_credit(plan):
        return connector.post_source_credit_memo(plan=plan, key=key)
    return connector.post_invoice(plan=plan, key=key)


def _post_split(
    record: SyncRecord,
    connector: Connector,
    plan: InvoicePlan,
    invoice: Invoice,
    *,
    lookup_first: bool,
) -> Outcome:
    """The positive lines as an invoice, the negative ones as a credit memo, each under its own
    key. A retry looks each part up first, so a part that landed is never created again."""
    posted: list[dict[str, Any]] = []
    for part in split(plan, invoice, record.idempotency_key):
        found = connector.find_invoice(key=part.key) if lookup_first else None
        document = found or _post_plan(connector, part.plan, part.key)
        posted.append({"suffix": part.suffix, "key": part.key, "total": part.plan.total,
                       "found_by_lookup": found is not None,
                       "erp_document": to_jsonable(document)})  # fmt: skip
    first, second = posted[0]["erp_document"], posted[1]["erp_document"]
    document = ErpDocument(id=first["id"], number=f"{first['number']} + {second['number']}",
                           url=first["url"])  # fmt: skip
    return Outcome(SyncState.POSTED, erp_document=document, plan=plan, notes={"parts": posted})


# Original invoice states in which its void must wait: it may still reach the ERP.
_ORIGINAL_IN_FLIGHT = {SyncState.READY, SyncState.POSTING, SyncState.RETRY_SCHEDULED,
                       SyncState.UNCERTAIN, SyncState.RECEIVED}  # fmt: skip


def _credit_void(record: SyncRecord, connector: Connector, *, now: datetime) -> Outcome:
    original = _current_posting(record.document)
    if original.state in _ORIGINAL_IN_FLIGHT:
        raise ConnectorError(
            "Waiting for the voided invoice to settle before crediting it.",
            category=FailureCategory.PREREQUISITE, transient=True,
        )  # fmt: skip
    parts = _posted_parts(original)
    original_id = original.erp_document_id
    if original.state != SyncState.POSTED and original.attempts > 0:
        # An attempt may have landed without being recorded: the ERP decides.
        found = connector.find_invoice(key=original.idempotency_key)
        original_id = found.id if found else ""
    if not original_id:
        return Outcome(SyncState.SKIPPED, detail=(
            f"The voided invoice never posted ({original.get_state_display().lower()}): "
            "nothing to offset."
        ))  # fmt: skip
    # Credited on the day the engine posts it, in the connection's time zone.
    today = timezone.localdate(now, timezone=ZoneInfo(record.connection.time_zone))
    day = _open_day_for(record.connection, today)
    if isinstance(day, Outcome):
        return day
    posting_date, notes = day
    if parts:
        outcome = _void_split(record, connector, original, parts, posting_date)
        return dataclasses.replace(outcome, notes={**outcome.notes, **notes})
    document = connector.post_credit_memo(
        original_id=original_id, key=record.idempotency_key, posting_date=posting_date
    )
    return Outcome(SyncState.POSTED, erp_document=document, notes=notes)


def _void_split(
    record: SyncRecord,
    connector: Connector,
    original: SyncRecord,
    parts: list[dict[str, Any]],
    posting_date: date,
) -> Outcome:
    """Offset both documents of a split posting exactly: a credit memo applied to its invoice
    part, and an invoice reversing its credit memo part (the same lines, signs turned), each
    under its own key (`<void key>-P`, `-N`) and looked up before it is created. The two parts
    are worked out again from the stored plan and must come to the amounts that posted."""
    plan = invoice_plan_from_dict(original.plan or {})  # parts are only ever kept with a plan
    invoice_part, credit_part = split(plan, invoice_from_dict(original.document.canonical),
                                      original.idempotency_key)  # fmt: skip
    if [str(invoice_part.plan.total), str(credit_part.plan.total)] != [
        str(part["total"]) for part in parts
    ]:
        numbers = " and ".join(part["erp_document"]["number"] for part in parts)
        raise ConnectorError(
            f"The invoice was posted split into {numbers}, and its parts cannot be worked out "
            "again to the cent: reverse both documents in the ERP, then mark this record "
            "resolved.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip
    credit_key = part_key(record.idempotency_key, "P")
    credit = connector.find_invoice(key=credit_key) or connector.post_credit_memo(
        original_id=parts[0]["erp_document"]["id"], key=credit_key, posting_date=posting_date
    )
    reversal = dataclasses.replace(
        credit_part.plan, posting_date=posting_date, total=-credit_part.plan.total,
        lines=tuple(line._replace(amount=-line.amount) for line in credit_part.plan.lines),
    )  # fmt: skip
    reversal_key = part_key(record.idempotency_key, "N")
    reversed_credit = connector.find_invoice(key=reversal_key) or connector.post_invoice(
        plan=reversal, key=reversal_key
    )
    posted = [
        {"suffix": "P", "key": credit_key, "total": -invoice_part.plan.total,
         "erp_document": to_jsonable(credit)},
        {"suffix": "N", "key": reversal_key, "total": reversal.total,
         "erp_document": to_jsonable(reversed_credit)},
    ]  # fmt: skip
    document = ErpDocument(id=credit.id, number=f"{credit.number} + {reversed_credit.number}",
                           url=credit.url)  # fmt: skip
    return Outcome(SyncState.POSTED, erp_document=document, notes={"parts": posted})


def invoice_posting_plan(connection: Connection, invoice: Invoice) -> InvoicePlan | list[Problem]:
    """Code the invoice with the rule version in force on its date and the cached catalog."""
    rules = rules_in_force(connection=connection, on=invoice.transaction_date)
    if rules is None:
        return [Problem(
            "NO_RULES",
            f"No posting rules are in force on {invoice.transaction_date}: finance must publish "
            "a rule set effective on or before that date.",
        )]  # fmt: skip
    catalog = catalog_cached(connection=connection)
    if not catalog.lists:
        return [Problem(
            "NO_CATALOG",
            "The ERP's catalog (accounts, tax codes …) has not been read yet: refresh it on the "
            "connection's catalog page, then retry.",
        )]  # fmt: skip
    return resolve_invoice(invoice, rules.compiled, catalog)


def _finish(claim: Claim, outcome: Outcome, *, now: datetime, actor: str) -> SyncRecord | None:
    records = _finish_batch([(claim, outcome)], [], now=now, actor=actor)
    return records[0] if records else None


def _finish_batch(
    attempted: list[tuple[Claim, Outcome]],
    unattempted: list[Claim],
    *,
    now: datetime,
    actor: str,
    why: str = "",
) -> list[SyncRecord]:
    """Write every outcome of a batch, and put back what it did not try, in one transaction."""
    settled: list[SyncRecord] = []
    circuit_closed: set[int] = set()
    # Records posted: their rows are written together, once all are settled.
    posted: dict[tuple[str, ...], list[SyncRecord]] = {}
    with transaction.atomic(), events_written_together():
        records, ours = _records_to_settle([claim for claim, _ in attempted] + unattempted)
        for claim, outcome in attempted:
            record = records[claim.record_id]
            if claim.record_id in ours:
                _settle(record, outcome, now=now, actor=actor, circuit_closed=circuit_closed,
                        posted=posted)  # fmt: skip
            settled.append(record)
        for fields, rows in posted.items():
            records_save(records=rows, fields=list(fields))
        for claim in unattempted:
            if claim.record_id in ours:
                _put_back(record := records[claim.record_id], now=now, actor=actor, why=why)
                _nudge_if_ready(record)
    return settled


def _records_to_settle(claims: list[Claim]) -> tuple[dict[int, SyncRecord], set[int]]:
    """Lock the claims' rows; returns the records by id and the ids still ours.

    Only a transition changes a record's row, and every transition either takes it out of
    POSTING or leases it again under another token: a row still POSTING under the claim's token
    is exactly the record the claim read, so that one is settled without being read again."""
    tokens = {claim.record_id: claim.token for claim in claims}
    locked = SyncRecord.objects.select_for_update().filter(pk__in=tokens)
    ours = {
        pk for pk, state, token in locked.values_list("pk", "state", "lease_token")
        if state == SyncState.POSTING and token == tokens[pk]
    }  # fmt: skip
    for pk in sorted(set(tokens) - ours):
        # Our lease expired and another worker took over; it settles the record by lookup.
        logger.warning("Lost the lease on sync record %s; leaving it to its new owner", pk)
    records = {
        claim.record_id: claim.record for claim in claims
        if claim.record_id in ours and claim.record is not None
    }  # fmt: skip
    unread = [claim.record_id for claim in claims if claim.record_id not in records]
    return {**records, **SyncRecord.objects.in_bulk(unread)}, ours


def _settle(
    record: SyncRecord,
    outcome: Outcome,
    *,
    now: datetime,
    actor: str,
    circuit_closed: set[int],
    posted: dict[tuple[str, ...], list[SyncRecord]],
) -> None:
    if outcome.state == SyncState.POSTED:
        if record.connection_id not in circuit_closed:  # once a batch, not once a record
            circuit_success(connection_id=record.connection_id)
            circuit_closed.add(record.connection_id)
        fields = _finish_posted(record, outcome, now=now, actor=actor)
        posted.setdefault(tuple(fields), []).append(record)
    elif outcome.state == SyncState.BLOCKED:
        _finish_blocked(record, outcome, now=now, actor=actor)
    elif outcome.state == SyncState.SKIPPED:
        _transition(
            record,
            SyncState.SKIPPED,
            actor=actor,
            now=now,
            detail=outcome.detail,
            data=outcome.exchanges,
            message=outcome.detail,
            next_attempt_at=None,
            **_LEASE_CLEARED,
        )
    else:
        assert outcome.error is not None
        circuit_closed.discard(record.connection_id)
        _finish_failed(record, outcome.error, now=now, actor=actor, exchanges=outcome.exchanges)


def _put_back(record: SyncRecord, *, now: datetime, actor: str, why: str) -> None:
    """A record its batch did not try: due again at once, its attempt not counted."""
    _transition(
        record, SyncState.READY, actor=actor, now=now,
        detail=f"Not tried, back in the queue: {why}.",
        attempts=record.attempts - 1, next_attempt_at=now, **_LEASE_CLEARED,
    )  # fmt: skip


def _finish_posted(record: SyncRecord, outcome: Outcome, *, now: datetime, actor: str) -> list[str]:
    """The record posted, its row not yet written: returns the fields to save."""
    document = outcome.erp_document
    assert document is not None
    how = "Found in the ERP by its key" if outcome.found_by_lookup else "Posted"
    redated = f" {outcome.notes['redated_note']}" if "redated_note" in outcome.notes else ""
    plan = {**to_jsonable(outcome.plan), **outcome.notes} if outcome.plan else None
    return _transition_unsaved(
        record,
        SyncState.POSTED,
        actor=actor,
        now=now,
        detail=f"{how}: ERP document {document.number}.{redated}",
        data={
            "erp_document": to_jsonable(document),
            "found_by_lookup": outcome.found_by_lookup,
            "duplicate_refused": outcome.duplicate_refused,
            "plan": plan,
            **outcome.notes,
            **outcome.exchanges,
        },
        erp_document_id=document.id,
        erp_document_number=document.number,
        erp_document_url=document.url,
        posted_at=now,
        rule_version=outcome.plan.rule_version if outcome.plan else record.rule_version,
        next_attempt_at=None,
        failure_category="",
        failure_cause="",
        message="",
        problems=[],
        plan=plan or record.plan,
        **_LEASE_CLEARED,
    )


def _finish_blocked(record: SyncRecord, outcome: Outcome, *, now: datetime, actor: str) -> None:
    problems = [to_jsonable(problem) for problem in outcome.problems]
    summary = " ".join(problem.message for problem in outcome.problems)
    _transition(
        record,
        SyncState.BLOCKED,
        actor=actor,
        now=now,
        detail=summary,
        data={"problems": problems, **outcome.exchanges},
        problems=problems,
        message=summary,
        failure_category=outcome.problems[0].code,
        failure_cause=_cause(outcome.problems[0].code, outcome.problems[0].source_value),
        next_attempt_at=None,
        **_LEASE_CLEARED,
    )


def _attempts_left(record: SyncRecord) -> int:
    """Automatic attempts left since the record was last retried by hand."""
    return settings.CROSSWALK_MAX_ATTEMPTS - (record.attempts - record.attempts_before_retry)


def _finish_failed(
    record: SyncRecord,
    error: ConnectorError,
    *,
    now: datetime,
    actor: str,
    exchanges: dict[str, Any] | None = None,
) -> None:
    common = {
        "failure_category": error.category,
        "failure_cause": _cause(error.category),
        "message": error.message,
        **_LEASE_CLEARED,
    }
    data = {
        "category": error.category,
        "transient": error.transient,
        "outcome_unknown": error.outcome_unknown,
        **(exchanges or {}),
    }
    if error.throttled_locally:
        _transition(record, SyncState.RETRY_SCHEDULED, actor=actor, now=now, data=data,
                    detail=error.message, attempts_before_retry=record.attempts_before_retry + 1,
                    next_attempt_at=now + timedelta(seconds=error.retry_after_seconds or 1),
                    **common)  # fmt: skip
        return
    connection = circuit_failure(connection_id=record.connection_id, error=error, now=now)
    if connection.circuit_retry_at is not None and connection.circuit_retry_at > now:
        # The ERP is unusable for everyone: wait with the others, without using up attempts.
        state = SyncState.UNCERTAIN if error.outcome_unknown else SyncState.RETRY_SCHEDULED
        _transition(record, state, actor=actor, now=now, data=data,
                    detail=f"Waiting: {connection.name} cannot reach its ERP ({error.message}).",
                    next_attempt_at=connection.circuit_retry_at,
                    attempts_before_retry=record.attempts_before_retry + 1, **common)  # fmt: skip
        return
    if error.transient and _attempts_left(record) > 0:
        delay = retry_delay_seconds(attempts=record.attempts, retry_after=error.retry_after_seconds)
        state = SyncState.UNCERTAIN if error.outcome_unknown else SyncState.RETRY_SCHEDULED
        _transition(
            record,
            state,
            actor=actor,
            now=now,
            detail=f"{error.message} Next attempt in {delay} s.",
            data=data,
            next_attempt_at=now + timedelta(seconds=delay),
            **common,
        )
        return
    if error.transient:
        data["gave_up_after_attempts"] = record.attempts - record.attempts_before_retry
    _transition(
        record,
        SyncState.FAILED,
        actor=actor,
        now=now,
        detail=error.message,
        data=data,
        next_attempt_at=None,
        **common,
    )


def retry_delay_seconds(*, attempts: int, retry_after: int | None) -> int:
    """Exponential backoff with ±20 % jitter, never sooner than the ERP's Retry-After."""
    base = settings.CROSSWALK_RETRY_BASE_SECONDS
    backoff = min(base * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)
    jittered = int(backoff * random.uniform(0.8, 1.2))
    return max(jittered, retry_after or 0, 1)


def sync_run_until_idle(
    *, now: Callable[[], datetime], on_record: Callable[[SyncRecord], None] | None = None
) -> int:
    """Post every due record in this process; return how many attempts were made."""
    attempts = 0
    while records := sync_records_post(now=now, actor="sync --until-idle"):
        attempts += len(records)
        for record in records:
            if on_record:
                on_record(record)
    return attempts


def sync_records_sweep(*, now: datetime, limit: int = 500) -> int:
    """Nudge workers for every due record: the recovery path for lost messages and dead workers."""
    due_ids = list(
        SyncRecord.objects.runnable(now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    sync_records_nudge_now(record_ids=due_ids)
    return len(due_ids)
