"""Preview and impact of a rule draft, before and after it is published.

- Preview: code documents under the connection's draft and under the published version in force on
  each document's date, and say side by side what changes (`preview_documents`, `preview_recent`).
- Impact: which blocked (and coding-failed) sync records the draft would fix, and which stay
  blocked with their remaining problems (`draft_impact`).
- After publishing: which blocked records the new version fixes (`records_fixed_by`), and retry
  exactly those (`impact_retry`).

The comparison itself is pure (`code_invoice`, `compare_invoice`, `diff_plans`): data in, data out,
no database. The functions that read the database load each rule version's content at most once,
compile it once (`compiled_version` caches it per process) and use the cached catalog.

The preview assumes the draft governs every document it codes, i.e. that it would be published
effective on or before the document's date. A document's "before" is what the engine does today:
the version in force on the document's date, or the NO_RULES problem when none is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import zip_longest
from typing import Any

from mappings.catalog import catalog_cached
from mappings.models import RuleVersion
from mappings.resolve import (
    Catalog,
    CompiledRules,
    InvoicePlan,
    PlanLine,
    Problem,
    resolve_invoice,
)
from mappings.ruleset import CatalogKind
from mappings.services import RulesError, compiled_draft, compiled_version
from syncengine.canonical import Invoice, invoice_from_dict, to_jsonable
from syncengine.models import Connection, DocumentKind, SourceDocument, SyncRecord, SyncState

Result = InvoicePlan | list[Problem]

# --- coding problems ----------------------------------------------------------------------------

# The codes `resolve_invoice` (and the engine around it) reports. A record whose
# `failure_category` is one of these stopped because of its coding, which a rule change can fix;
# any other category (CONNECTION, RATE_LIMIT, VALUE, DUPLICATE, INTERNAL …) is the ERP's or the
# connector's, and no rule change fixes it.
_CATALOG_PROBLEM_PREFIXES = ("UNKNOWN", "GONE", "INACTIVE", "NO_POSTING")
CODING_PROBLEM_CODES = frozenset(
    {
        "NO_RULES",
        "NO_CATALOG",
        "NO_ACCOUNT",
        "UNMAPPED_SERVICE_LINE",
        "UNMAPPED_DIMENSION",
        "UNKNOWN_DIMENSION",
        "UNMAPPED_STATE_TAX",
        "UNMAPPED_TAX_RATE",
        "NO_TAX_ACCOUNT",
        "AMBIGUOUS_ROUTING",
        "UNBALANCED",
    }
    | {f"{prefix}_{kind}" for prefix in _CATALOG_PROBLEM_PREFIXES for kind in CatalogKind.ALL}
)

# Records a rule change may unblock: BLOCKED always, FAILED only for a coding problem.
_STUCK_STATES = (SyncState.BLOCKED, SyncState.FAILED)


def is_coding_problem(category: str) -> bool:
    """Is this failure category a coding problem (one a rule change can fix)?"""
    return category in CODING_PROBLEM_CODES


def _stuck_on_coding(record: SyncRecord) -> bool:
    if record.state == SyncState.BLOCKED:
        return True
    return record.state == SyncState.FAILED and is_coding_problem(record.failure_category)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One coded value, before (version in force) and after (draft); None where not coded."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "changed": self.changed}


@dataclass(frozen=True)
class LineDiff:
    """One plan line under both rule sets. A side that resolves to problems has no lines: its
    values are None."""

    index: int
    source_line_id: str
    line_kind: str
    description: str
    amount: Decimal
    account: Change
    tax_code: Change
    codings: dict[str, Change]
    reason_before: str | None
    reason_after: str | None

    @property
    def changed(self) -> bool:
        """A coded value differs. A different reason for the same values is not a change."""
        return (
            self.account.changed
            or self.tax_code.changed
            or any(change.changed for change in self.codings.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source_line_id": self.source_line_id,
            "line_kind": self.line_kind,
            "description": self.description,
            "amount": str(self.amount),
            "account": self.account.to_dict(),
            "tax_code": self.tax_code.to_dict(),
            "codings": {name: change.to_dict() for name, change in self.codings.items()},
            "reason_before": self.reason_before,
            "reason_after": self.reason_after,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class HeaderChange:
    """A header value that differs: "receivable_account" or a header coding ("department" …)."""

    field: str
    before: str | None
    after: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


class PreviewOutcome:
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    NEWLY_FIXED = "newly_fixed"  # problems → plan
    NEWLY_BROKEN = "newly_broken"  # plan → problems
    STILL_BLOCKED = "still_blocked"  # problems → problems (the problems may differ)


@dataclass(frozen=True)
class DocumentPreview:
    document_id: int | None
    number: str
    transaction_date: date
    customer_name: str
    total: Decimal
    version_before: int | None  # the version in force on the document's date
    before: Result
    after: Result
    lines: tuple[LineDiff, ...]
    header: tuple[HeaderChange, ...]

    @property
    def outcome(self) -> str:
        before_ok = isinstance(self.before, InvoicePlan)
        after_ok = isinstance(self.after, InvoicePlan)
        if before_ok and after_ok:
            if self.header or any(line.changed for line in self.lines):
                return PreviewOutcome.CHANGED
            return PreviewOutcome.UNCHANGED
        if after_ok:
            return PreviewOutcome.NEWLY_FIXED
        if before_ok:
            return PreviewOutcome.NEWLY_BROKEN
        return PreviewOutcome.STILL_BLOCKED

    @property
    def changed(self) -> bool:
        """Anything differs: a coded value, or plan ↔ problems, or the list of problems."""
        outcome = self.outcome
        if outcome == PreviewOutcome.STILL_BLOCKED:
            return self.before != self.after
        return outcome != PreviewOutcome.UNCHANGED

    @property
    def newly_fixed(self) -> bool:
        return self.outcome == PreviewOutcome.NEWLY_FIXED

    @property
    def newly_broken(self) -> bool:
        return self.outcome == PreviewOutcome.NEWLY_BROKEN

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "number": self.number,
            "transaction_date": self.transaction_date.isoformat(),
            "customer_name": self.customer_name,
            "total": str(self.total),
            "version_before": self.version_before,
            "outcome": self.outcome,
            "changed": self.changed,
            "newly_fixed": self.newly_fixed,
            "newly_broken": self.newly_broken,
            "before": _result_dict(self.before),
            "after": _result_dict(self.after),
            "lines": [line.to_dict() for line in self.lines],
            "header": [change.to_dict() for change in self.header],
        }


def _result_dict(result: Result) -> dict[str, Any]:
    if isinstance(result, InvoicePlan):
        return {"plan": to_jsonable(result), "problems": []}
    return {"plan": None, "problems": [to_jsonable(problem) for problem in result]}


def preview_summary(previews: Iterable[DocumentPreview]) -> dict[str, int]:
    """How many documents per outcome, and how many changed at all."""
    counts = {
        "documents": 0,
        "changed": 0,
        PreviewOutcome.UNCHANGED: 0,
        PreviewOutcome.CHANGED: 0,
        PreviewOutcome.NEWLY_FIXED: 0,
        PreviewOutcome.NEWLY_BROKEN: 0,
        PreviewOutcome.STILL_BLOCKED: 0,
    }
    for preview in previews:
        counts["documents"] += 1
        counts["changed"] += preview.changed
        counts[preview.outcome] += 1
    return counts


# --- pure comparison ----------------------------------------------------------------------------


def code_invoice(invoice: Invoice, rules: CompiledRules | None, catalog: Catalog) -> Result:
    """Code one invoice as the engine does (`services.posting.invoice_posting_plan`), from data
    only."""
    if rules is None:
        return [Problem(
            "NO_RULES",
            f"No posting rules are in force on {invoice.transaction_date}: finance must publish "
            "a rule set effective on or before that date.",
        )]  # fmt: skip
    if not catalog.lists:
        return [Problem(
            "NO_CATALOG",
            "The ERP's catalog (accounts, tax codes …) has not been read yet: refresh it on the "
            "connection's catalog page, then retry.",
        )]  # fmt: skip
    return resolve_invoice(invoice, rules, catalog)


def diff_plans(
    before: InvoicePlan | None, after: InvoicePlan | None
) -> tuple[tuple[LineDiff, ...], tuple[HeaderChange, ...]]:
    """Line by line and header differences; a missing plan (problems) is all None.

    Both plans code the same invoice, so their lines correspond by position (one per invoice line
    in order, then the tax line).
    """
    lines = []
    pairs = zip_longest(before.lines if before else (), after.lines if after else ())
    for index, (old, new) in enumerate(pairs):
        either: PlanLine = new or old
        names = list(dict.fromkeys([*(old.codings if old else {}), *(new.codings if new else {})]))
        lines.append(
            LineDiff(
                index=index,
                source_line_id=either.source_line_id,
                line_kind=either.line_kind,
                description=either.description,
                amount=either.amount,
                account=Change(_value(old, "account"), _value(new, "account")),
                tax_code=Change(_value(old, "tax_code"), _value(new, "tax_code")),
                codings={name: Change(_coding(old, name), _coding(new, name)) for name in names},
                reason_before=old.reason if old else None,
                reason_after=new.reason if new else None,
            )
        )
    return tuple(lines), _header_changes(before, after)


def _value(line: PlanLine | None, name: str) -> str | None:
    if line is None:
        return None
    value: str = getattr(line, name)
    return value or None


def _coding(line: PlanLine | None, name: str) -> str | None:
    if line is None or name not in line.codings:
        return None
    return line.codings[name].value


def _header_values(plan: InvoicePlan | None) -> dict[str, str | None]:
    if plan is None:
        return {}
    values: dict[str, str | None] = {"receivable_account": plan.receivable_account or None}
    values.update({name: coding.value for name, coding in plan.codings.items()})
    return values


def _header_changes(
    before: InvoicePlan | None, after: InvoicePlan | None
) -> tuple[HeaderChange, ...]:
    old, new = _header_values(before), _header_values(after)
    return tuple(
        HeaderChange(name, old.get(name), new.get(name))
        for name in dict.fromkeys([*old, *new])
        if old.get(name) != new.get(name)
    )


def compare_invoice(
    invoice: Invoice,
    *,
    before: CompiledRules | None,
    after: CompiledRules,
    catalog: Catalog,
    document_id: int | None = None,
) -> DocumentPreview:
    """Code the invoice under both rule sets and compare. Pure."""
    old = code_invoice(invoice, before, catalog)
    new = code_invoice(invoice, after, catalog)
    lines, header = diff_plans(
        old if isinstance(old, InvoicePlan) else None,
        new if isinstance(new, InvoicePlan) else None,
    )
    return DocumentPreview(
        document_id=document_id,
        number=invoice.number,
        transaction_date=invoice.transaction_date,
        customer_name=invoice.customer.name,
        total=invoice.total,
        version_before=before.version if before else None,
        before=old,
        after=new,
        lines=lines,
        header=header,
    )


# --- reading rules ------------------------------------------------------------------------------


class _VersionsInForce:
    """The connection's published versions, read once (content only when first needed), each
    compiled once; answers "which version governs this date" without a query per document."""

    def __init__(self, connection: Connection):
        self._versions = list(
            RuleVersion.objects.filter(connection=connection)
            .defer("content")
            .order_by("-effective_from", "-number")
        )
        self._by_date: dict[date, RuleVersion | None] = {}
        self._compiled: dict[int, CompiledRules] = {}

    def version_on(self, on: date) -> RuleVersion | None:
        if on not in self._by_date:
            self._by_date[on] = next((v for v in self._versions if v.effective_from <= on), None)
        return self._by_date[on]

    def compiled(self, version: RuleVersion) -> CompiledRules:
        if version.pk not in self._compiled:
            self._compiled[version.pk] = compiled_version(version)
        return self._compiled[version.pk]

    def compiled_on(self, on: date) -> CompiledRules | None:
        version = self.version_on(on)
        return self.compiled(version) if version else None


def _draft_rules(connection: Connection) -> CompiledRules:
    rules = compiled_draft(connection=connection)
    if rules is None:
        raise RulesError(
            "There is no draft to preview. Start a draft first: edit a map, a routing rule or a "
            "setting."
        )
    return rules


def _catalog(connection: Connection) -> Catalog:
    # The caller's connection object may predate a catalog refresh: key the cache on the
    # current catalog version, not on a stale copy.
    fresh = Connection.objects.only("pk", "catalog_version").get(pk=connection.pk)
    return catalog_cached(connection=fresh)


def _invoices(
    records: Iterable[SyncRecord],
) -> Iterator[tuple[SyncRecord, Invoice]]:
    for record in records:
        yield record, invoice_from_dict(record.document.canonical)


# --- preview ------------------------------------------------------------------------------------


def preview_documents(
    *, connection: Connection, documents: list[SourceDocument]
) -> list[DocumentPreview]:
    """Each invoice coded under the draft and under the version in force on its date, in the
    order given. Raises RulesError without a draft, or for a document that is not an invoice of
    this connection."""
    after = _draft_rules(connection)
    for document in documents:
        if document.connection_id != connection.pk or document.kind != DocumentKind.INVOICE:
            raise RulesError(f"{document} is not an invoice of {connection}: it cannot be coded.")
    return _preview(connection, documents, after)


def preview_recent(*, connection: Connection, limit: int = 50) -> list[DocumentPreview]:
    """The connection's last `limit` invoices received (latest delivery first), previewed."""
    after = _draft_rules(connection)
    documents = (
        SourceDocument.objects.filter(connection=connection, kind=DocumentKind.INVOICE)
        .defer("payload")
        .order_by("-last_received_at", "-id")[: max(limit, 0)]
    )
    return _preview(connection, list(documents), after)


def _preview(
    connection: Connection, documents: list[SourceDocument], after: CompiledRules
) -> list[DocumentPreview]:
    versions = _VersionsInForce(connection)
    catalog = _catalog(connection)
    previews = []
    for document in documents:
        invoice = invoice_from_dict(document.canonical)
        previews.append(
            compare_invoice(
                invoice,
                before=versions.compiled_on(invoice.transaction_date),
                after=after,
                catalog=catalog,
                document_id=document.pk,
            )
        )
    return previews


# --- impact -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactRecord:
    record_id: int
    document_id: int
    number: str
    state: str
    failure_category: str
    problems: tuple[Problem, ...]  # under the draft: empty for a record the draft fixes

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "document_id": self.document_id,
            "number": self.number,
            "state": self.state,
            "failure_category": self.failure_category,
            "problems": [to_jsonable(problem) for problem in self.problems],
        }


@dataclass(frozen=True)
class Impact:
    """What publishing the draft would do to the records stuck on their coding.

    - `fixed`: resolve under the draft, not under the version in force on their date;
    - `still_blocked`: do not resolve under the draft either, with the draft's problems;
    - `fixable_now`: already resolve under the version in force (published since they were
      blocked): a retry posts them with or without the draft.
    FAILED records with a connector category (CONNECTION, VALUE …) are left out: rules cannot fix
    them; `failures_ignored` counts them.
    """

    fixed: tuple[ImpactRecord, ...] = ()
    still_blocked: tuple[ImpactRecord, ...] = ()
    fixable_now: tuple[ImpactRecord, ...] = ()
    failures_ignored: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "fixed": [record.to_dict() for record in self.fixed],
            "still_blocked": [record.to_dict() for record in self.still_blocked],
            "fixable_now": [record.to_dict() for record in self.fixable_now],
            "failures_ignored": self.failures_ignored,
        }


def _stuck_records(connection: Connection) -> Iterator[SyncRecord]:
    return (
        SyncRecord.objects.filter(
            connection=connection, state__in=_STUCK_STATES, document__kind=DocumentKind.INVOICE
        )
        .select_related("document")
        .defer("document__payload", "plan")
        .order_by("id")
        .iterator(chunk_size=500)
    )


def draft_impact(*, connection: Connection) -> Impact:
    """Which BLOCKED (and coding-FAILED) records publishing the draft would fix. Raises RulesError
    without a draft."""
    draft = _draft_rules(connection)
    versions = _VersionsInForce(connection)
    catalog = _catalog(connection)
    fixed, still, now_ok = [], [], []
    ignored = 0
    for record, invoice in _invoices(_stuck_records(connection)):
        if not _stuck_on_coding(record):
            ignored += 1
            continue
        after = code_invoice(invoice, draft, catalog)
        problems = () if isinstance(after, InvoicePlan) else tuple(after)
        entry = ImpactRecord(
            record_id=record.pk,
            document_id=record.document_id,
            number=record.document.number,
            state=record.state,
            failure_category=record.failure_category,
            problems=problems,
        )
        if problems:
            still.append(entry)
        elif isinstance(
            code_invoice(invoice, versions.compiled_on(invoice.transaction_date), catalog),
            InvoicePlan,
        ):
            now_ok.append(entry)
        else:
            fixed.append(entry)
    return Impact(
        fixed=tuple(fixed),
        still_blocked=tuple(still),
        fixable_now=tuple(now_ok),
        failures_ignored=ignored,
        counts={
            "considered": len(fixed) + len(still) + len(now_ok),
            "fixed": len(fixed),
            "still_blocked": len(still),
            "fixable_now": len(now_ok),
            "failures_ignored": ignored,
        },
    )


# --- after publishing ---------------------------------------------------------------------------


def records_fixed_by(*, connection: Connection, version: RuleVersion | int) -> list[int]:
    """Ids of the BLOCKED (and coding-FAILED) records that resolve under this published version,
    now that it is the version in force on their document's date. A record dated before the
    version's effective date (or governed by a later version) is not fixed by it: a retry would
    code it with another version."""
    if isinstance(version, int):
        found = RuleVersion.objects.filter(connection=connection, number=version).first()
        if found is None:
            raise RulesError(f"There is no version {version}.")
        version = found
    if version.connection_id != connection.pk:
        raise RulesError(f"Version {version.number} belongs to another connection.")
    versions = _VersionsInForce(connection)
    catalog = _catalog(connection)
    fixed = []
    for record, invoice in _invoices(_stuck_records(connection)):
        if not _stuck_on_coding(record):
            continue
        in_force = versions.version_on(invoice.transaction_date)
        if in_force is None or in_force.pk != version.pk:
            continue
        if isinstance(code_invoice(invoice, versions.compiled(in_force), catalog), InvoicePlan):
            fixed.append(record.pk)
    return fixed


def impact_retry(
    *, connection: Connection, record_ids: Iterable[int], actor: str, now: datetime
) -> int:
    """Retry exactly these records of the connection (see `sync_record_retry`); records that are
    no longer BLOCKED or FAILED, or belong to another connection, are skipped. Returns how many
    were queued. Each retry is its own transaction: one that fails leaves the others queued."""
    from syncengine.services import sync_record_retry

    queued = 0
    records = (
        SyncRecord.objects.filter(
            connection=connection, pk__in=list(record_ids), state__in=_STUCK_STATES
        )
        .only("pk", "state")
        .order_by("id")
        .iterator(chunk_size=500)
    )
    for record in records:
        try:
            sync_record_retry(record=record, actor=actor, now=now)
        except ValueError:
            continue  # its state moved on since it was read (e.g. another retry)
        queued += 1
    return queued
