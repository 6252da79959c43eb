"""The ERP catalog per connection: refreshed from the target connector or imported from CSV, and
the source values learned from ingested documents.

A refresh reads the connector's lists with no transaction open, then writes them in one
transaction with its audit row. On demand a refresh reads every list whole; the hourly schedule
reads only what changed since the last refresh (`changed_since`, for an ERP that can say so),
and whole again once the last whole read is a day old: only a whole read shows what the ERP
no longer lists. An import (for an ERP that cannot be reached) replaces one list
from a CSV file, all or nothing. A value the ERP no longer lists is kept and flagged
(`missing_since`), so a rule pointing at it is reported by validation instead of silently lost.
Every write bumps `Connection.catalog_version`, which invalidates the per-process catalog cache.

After every write the rule version in force today is validated against the new catalog and the
issues come back with the result (`RefreshResult.issues`); they are not stored anywhere. The CSV
format and the commands are described in docs/catalogs.md.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import F

from mappings.models import CatalogEntry, RuleAudit, RuleVersion, SourceValue
from mappings.resolve import Catalog
from mappings.ruleset import CatalogKind, norm, parse_ruleset
from mappings.validation import Issue, validate_ruleset
from syncengine.erps.base import CatalogItem, ConnectorError
from syncengine.models import Connection

logger = logging.getLogger(__name__)


# A scheduled refresh reads the lists whole when the last whole read is older than this.
FULL_READ_EVERY = timedelta(days=1)
# Changes are asked for from a little before the last read began: the ERP's clock is not ours,
# and a value read twice is stored once.
CHANGES_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class RefreshResult:
    added: int
    changed: int  # includes values that were missing and are listed again
    missing: int  # newly flagged missing by this write
    returned: int  # values the ERP (or the file) listed
    # Validation of the rule version in force today against the new catalog; not stored.
    issues: tuple[Issue, ...] = ()
    # Set when only values changed since then were read (nothing was flagged missing).
    changed_since: datetime | None = None

    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "missing": self.missing,
            "returned": self.returned,
        }


def connection_today(connection: Connection, now: datetime) -> date:
    """The calendar day `now` falls on where the connection's documents are dated."""
    return now.astimezone(ZoneInfo(connection.time_zone)).date()


def catalog_refresh(
    *, connection: Connection, actor: str, now: datetime, changes_only: bool = False
) -> RefreshResult:
    """Read the lists of the connection's ERP and store them. Raises ConnectorError.

    Every list is read whole, and values it no longer lists are flagged missing, those of a
    list the last whole read had and this one returns empty too. With `changes_only` (the
    schedule), when a whole read happened within FULL_READ_EVERY, only values changed since the
    last refresh are asked for and nothing is flagged missing.
    """
    from syncengine.erps.registry import connector_for

    connector = connector_for(connection)
    since = _changes_since(connection, now) if changes_only else None
    kinds = None
    if since is None:
        items = list(connector.catalog_lists())
        kinds = {item.kind for item in items} | _kinds_last_read_whole(connection)
    else:
        items = list(connector.catalog_lists(changed_since=since))
    return catalog_store(
        connection=connection,
        items=items,
        actor=actor,
        now=now,
        action=RuleAudit.Action.CATALOG_REFRESHED,
        kinds=kinds,
        changed_since=since,
    )


def _kinds_last_read_whole(connection: Connection) -> set[str]:
    """The lists the last whole refresh returned (its audit subject: "catalog.ACCOUNT,…")."""
    last = (
        RuleAudit.objects.filter(connection=connection, action=RuleAudit.Action.CATALOG_REFRESHED)
        .exclude(after__has_key="changes_since")
        .order_by("-at", "-pk")
        .first()
    )
    if last is None:
        return set()
    return {kind for kind in last.subject.removeprefix("catalog.").split(",") if kind}


def _changes_since(connection: Connection, now: datetime) -> datetime | None:
    """Where a read of changes starts: a little before the last refresh began; None (read it
    all) when there was none, or when no whole read happened within FULL_READ_EVERY."""
    refreshes = RuleAudit.objects.filter(
        connection=connection, action=RuleAudit.Action.CATALOG_REFRESHED, at__lte=now
    )
    last = refreshes.order_by("-at", "-pk").first()
    whole = refreshes.filter(at__gt=now - FULL_READ_EVERY).exclude(after__has_key="changes_since")
    if last is None or not whole.exists():
        return None
    return last.at - CHANGES_OVERLAP


def catalog_store(
    *,
    connection: Connection,
    items: Iterable[CatalogItem],
    actor: str,
    now: datetime,
    action: str,
    kinds: set[str] | None = None,
    reason: str = "",
    changed_since: datetime | None = None,
) -> RefreshResult:
    """Upsert these catalog values; values of the same kinds that are absent become missing.

    `kinds` limits which lists are being replaced (an import of accounts only must not flag every
    dimension value missing); by default, the kinds present in `items`. `changed_since`: the
    items are only what changed since then, so nothing absent is flagged missing (the audit row
    says so). The write and its audit row commit together; the returned issues are those of the
    rules in force against the result.
    """
    items = list(items)
    with transaction.atomic():
        result = _store(connection, items, actor, now, action, kinds, reason, changed_since)
    _prerequisites_found(connection, items, actor=actor, now=now)
    return replace(result, issues=tuple(catalog_issues(connection=connection, now=now)))


# The lists whose values documents can wait for (a customer, project or vendor missing in the ERP).
PREREQUISITE_KINDS = frozenset({"CUSTOMER", "PROJECT", "VENDOR"})


def _prerequisites_found(
    connection: Connection, items: list[CatalogItem], *, actor: str, now: datetime
) -> None:
    """Records blocked because the ERP lacked one of these values go again, now that it has it."""
    from syncengine.services import prerequisites_release

    found = [f"{item.kind}:{item.code}" for item in items
             if item.kind in PREREQUISITE_KINDS and item.active]  # fmt: skip
    if found:
        prerequisites_release(
            connection=connection, actor=actor, now=now, found=found,
            detail="The catalog read found what it waited for in the ERP: sending again.",
        )  # fmt: skip


def _store(
    connection: Connection,
    items: list[CatalogItem],
    actor: str,
    now: datetime,
    action: str,
    kinds: set[str] | None,
    reason: str,
    changed_since: datetime | None = None,
) -> RefreshResult:
    # One catalog write per connection at a time: a scheduled refresh and an import of the same
    # list would otherwise race to insert the same new values.
    Connection.objects.select_for_update().filter(pk=connection.pk).first()
    kinds = kinds if kinds is not None else {item.kind for item in items}
    existing = {
        (entry.kind, entry.parent, entry.code): entry
        for entry in CatalogEntry.objects.select_for_update().filter(
            connection=connection, kind__in=kinds
        )
    }
    added, changed = _upsert(connection, items, existing, now)
    seen = {(item.kind, item.parent, item.code) for item in items}
    missing = [
        entry.pk
        for key, entry in existing.items()
        if key not in seen and entry.missing_since is None and changed_since is None
    ]
    CatalogEntry.objects.filter(pk__in=missing).update(missing_since=now)
    Connection.objects.filter(pk=connection.pk).update(catalog_version=F("catalog_version") + 1)
    result = RefreshResult(added=added, changed=changed, missing=len(missing), returned=len(items),
                           changed_since=changed_since)  # fmt: skip
    after: dict[str, Any] = result.counts()
    if changed_since is not None:
        after["changes_since"] = changed_since.isoformat()
    RuleAudit.objects.create(
        connection=connection, at=now, actor=actor, action=action,
        subject="catalog." + ",".join(sorted(kinds)), after=after, reason=reason,
    )  # fmt: skip
    return result


def catalog_issues(*, connection: Connection, now: datetime) -> list[Issue]:
    """Validate the rule version in force today against the stored catalog (none: no issues)."""
    from mappings.services import catalog_for, seen_values

    version = RuleVersion.objects.in_force_on(connection, connection_today(connection, now))
    if version is None:
        return []
    return validate_ruleset(
        parse_ruleset(version.content),
        catalog_for(connection=connection),
        seen_values(connection=connection, now=now),
    )


@dataclass(frozen=True)
class RefreshOutcome:
    connection: Connection
    result: RefreshResult | None = None
    error: str = ""


def catalogs_refresh(*, actor: str, now: Callable[[], datetime]) -> list[RefreshOutcome]:
    """Refresh every connection's catalog in turn; one failing ERP does not stop the others.

    A ConnectorError (an ERP that cannot be reached, or one that is only ever imported) is logged
    as a warning; anything else with its traceback. Each refresh is stamped with `now()` and
    reads only what changed since the last one, whole once a day (`catalog_refresh`).
    """
    outcomes = []
    for connection in Connection.objects.order_by("pk"):
        try:
            result = catalog_refresh(
                connection=connection, actor=actor, now=now(), changes_only=True
            )
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: stop here, the next run starts again
        except ConnectorError as error:
            logger.warning("Catalog refresh of %s failed: %s", connection.slug, error.message)
            outcomes.append(RefreshOutcome(connection, error=error.message))
            continue
        except Exception as error:  # a bug or an unknown target must not stop the others
            logger.exception("Catalog refresh of %s failed unexpectedly", connection.slug)
            outcomes.append(RefreshOutcome(connection, error=f"{type(error).__name__}: {error}"))
            continue
        read = (f"changes since {result.changed_since:%Y-%m-%d %H:%M} UTC" if result.changed_since
                else "every list")  # fmt: skip
        logger.info(
            "Catalog of %s refreshed (%s): %s added, %s changed, %s now missing, %s rule "
            "issue(s)", connection.slug, read, result.added, result.changed, result.missing,
            len(result.issues),
        )  # fmt: skip
        outcomes.append(RefreshOutcome(connection, result=result))
    return outcomes


# --- CSV import ---------------------------------------------------------------------------------

CSV_COLUMNS = ("code", "name", "parent", "active", "accepts_postings")
_TRUE = {"true", "yes", "1", ""}
_FALSE = {"false", "no", "0"}
_LIMITS = {"code": 100, "name": 200, "parent": 50}  # CatalogEntry field lengths
MAX_ERRORS = 100


class CatalogImportError(ValueError):
    """The file was refused; nothing was stored. `errors` name the row and column of each."""

    def __init__(self, errors: list[str]):
        shown = errors[:5]
        more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
        super().__init__("; ".join(shown) + more)
        self.errors = errors


def catalog_kind_clean(kind: str) -> str:
    """The catalog kind spelled as stored, or CatalogImportError listing the kinds."""
    cleaned = kind.strip().upper()
    if cleaned not in CatalogKind.ALL:
        raise CatalogImportError(
            [f"Unknown catalog kind {kind!r}; kinds are {', '.join(CatalogKind.ALL)}."]
        )
    return cleaned


def catalog_import_csv(
    *, connection: Connection, kind: str, text: str, actor: str, now: datetime, reason: str = ""
) -> RefreshResult:
    """Replace one list of the catalog with the values in a CSV file, all or nothing.

    Values of that kind absent from the file are flagged missing; other kinds are untouched.
    Raises CatalogImportError (nothing stored) naming the row and column of every problem.
    """
    kind = catalog_kind_clean(kind)
    items = catalog_csv_parse(kind, text)
    return catalog_store(
        connection=connection,
        items=items,
        actor=actor,
        now=now,
        action=RuleAudit.Action.CATALOG_IMPORTED,
        kinds={kind},
        reason=reason,
    )


def catalog_csv_parse(kind: str, text: str) -> list[CatalogItem]:
    """CSV text → catalog items of `kind`, or CatalogImportError with every problem.

    Rows are CSV records, the header being row 1 (a quoted value spanning lines is one row).
    """
    errors: list[str] = []
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True))
    except csv.Error as error:
        raise CatalogImportError([f"Row {_reader_row(text)}: not valid CSV: {error}"]) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise CatalogImportError(
            ["Row 1: the file is empty; it must start with a header row naming the columns "
             f"{','.join(CSV_COLUMNS)} (only code is required)."]
        )  # fmt: skip
    header = _header(rows[0], rows[1:], errors)
    items: list[CatalogItem] = []
    first_row: dict[tuple[str, str], int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are allowed anywhere
        item = _item(kind, number, row, header, first_row, errors)
        if item is not None:
            items.append(item)
        if len(errors) >= MAX_ERRORS:
            errors.append(f"Stopped after {MAX_ERRORS} problems.")
            break
    if not items and not errors:
        errors.append(
            f"Row 2: the file has a header but no values. An import replaces the whole {kind} "
            f"list, so an empty file would flag every {kind} value missing."
        )
    if errors:
        raise CatalogImportError(errors)
    return items


def _reader_row(text: str) -> int:
    # csv.Error carries no position; re-read record by record to find the one that failed.
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    count = 0
    try:
        for _ in reader:
            count += 1
    except csv.Error:
        pass
    return count + 1


def _header(cells: list[str], rows: list[list[str]], errors: list[str]) -> dict[int, str]:
    """Column index → column name (standard names lower-cased; others kept as written)."""
    header: dict[int, str] = {}
    seen: set[str] = set()
    for index, cell in enumerate(cells):
        name = cell.strip()
        if name.lower() in CSV_COLUMNS:
            name = name.lower()
        if "\x00" in name:
            errors.append(f"Row 1, column {index + 1}: the name contains a NUL character.")
            continue
        if not name:
            # A trailing comma from a spreadsheet is harmless as long as the column is empty.
            if any(index < len(row) and row[index].strip() for row in rows):
                errors.append(f"Row 1, column {index + 1}: the column has values but no name.")
            continue
        if name in seen:
            errors.append(f"Row 1, column {name}: the column appears twice.")
        seen.add(name)
        header[index] = name
    if "code" not in seen:
        errors.append(
            f"Row 1, column code: no code column. The first row must be the header naming the "
            f"columns {','.join(CSV_COLUMNS)} (only code is required), plus any extra "
            "columns, which are kept as attributes."
        )
    return header


def _item(
    kind: str,
    number: int,
    row: list[str],
    header: dict[int, str],
    first_row: dict[tuple[str, str], int],
    errors: list[str],
) -> CatalogItem | None:
    errors_before = len(errors)
    width = max(header, default=-1) + 1
    for index in range(width, len(row)):
        if row[index].strip():
            errors.append(
                f"Row {number}, column {index + 1}: a value beyond the header's {width} column(s)."
            )
    values = {
        name: row[index].strip() if index < len(row) else "" for index, name in header.items()
    }
    if "code" not in values:
        return None  # reported once, on the header
    code, parent = values.get("code", ""), values.get("parent", "")
    if not code:
        errors.append(f"Row {number}, column code: required.")
    for name, value in values.items():
        if "\x00" in value:
            errors.append(f"Row {number}, column {name}: contains a NUL character.")
    for name, limit in _LIMITS.items():
        if len(values.get(name, "")) > limit:
            errors.append(f"Row {number}, column {name}: longer than {limit} characters.")
    if kind == CatalogKind.DIMENSION_VALUE and not parent:
        errors.append(
            f"Row {number}, column parent: required for a dimension value (the dimension code)."
        )
    elif kind != CatalogKind.DIMENSION_VALUE and parent:
        errors.append(
            f"Row {number}, column parent: only dimension values have a parent; leave it empty "
            f"for {kind}."
        )
    flags = {name: _flag(values.get(name, ""), number, name, errors) for name in CSV_COLUMNS[3:]}
    if code:
        key = (parent, code)
        if key in first_row:
            where = f"{parent}/{code}" if parent else code
            errors.append(
                f"Row {number}, column code: {where} appears twice (first on row {first_row[key]})."
            )
        else:
            first_row[key] = number
    if len(errors) > errors_before:
        return None
    attributes: dict[str, Any] = {
        name: value for name, value in values.items() if name not in CSV_COLUMNS and value
    }
    return CatalogItem(
        kind=kind, code=code, name=values.get("name", ""), parent=parent,
        active=flags["active"], accepts_postings=flags["accepts_postings"],
        attributes=attributes,
    )  # fmt: skip


def _flag(value: str, number: int, column: str, errors: list[str]) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors.append(
        f"Row {number}, column {column}: {value!r} is not a yes/no value; use true/false, "
        "yes/no or 1/0 (empty means true)."
    )
    return True


def _upsert(
    connection: Connection,
    items: list[CatalogItem],
    existing: dict[tuple[str, str, str], CatalogEntry],
    now: datetime,
) -> tuple[int, int]:
    new, updated = [], []
    for item in items:
        entry = existing.get((item.kind, item.parent, item.code))
        values = {
            "name": item.name,
            "active": item.active,
            "accepts_postings": item.accepts_postings,
            "attributes": item.attributes,
        }
        if entry is None:
            new.append(
                CatalogEntry(
                    connection=connection,
                    kind=item.kind,
                    parent=item.parent,
                    code=item.code,
                    refreshed_at=now,
                    **values,
                )
            )
            continue
        differs = any(getattr(entry, name) != value for name, value in values.items())
        if differs or entry.missing_since is not None:
            for name, value in values.items():
                setattr(entry, name, value)
            entry.missing_since = None
            entry.refreshed_at = now
            updated.append(entry)
    CatalogEntry.objects.bulk_create(new, batch_size=1000)
    CatalogEntry.objects.bulk_update(
        updated, ["name", "active", "accepts_postings", "attributes", "missing_since",
                  "refreshed_at"], batch_size=1000,
    )  # fmt: skip
    return len(new), len(updated)


# One catalog per connection per process, rebuilt when `catalog_version` moves.
_CACHE: dict[int, tuple[int, Catalog]] = {}


def catalog_cached(*, connection: Connection) -> Catalog:
    from mappings.services import catalog_for

    cached = _CACHE.get(connection.pk)
    if cached is None or cached[0] != connection.catalog_version:
        cached = (connection.catalog_version, catalog_for(connection=connection))
        _CACHE[connection.pk] = cached
    return cached[1]


class SourceValueBatch:
    """Source values of many documents, written in a few statements when the batch is flushed
    (ingesting a page of 500 invoices costs a handful of queries, not three per invoice)."""

    def __init__(self) -> None:
        self.labels: dict[tuple[str, str], str] = {}
        self.new_documents: dict[tuple[str, str], int] = {}

    def add(self, values: Iterable[tuple[str, str]], *, new_document: bool) -> None:
        pairs = {(attribute, norm(value)): value for attribute, value in values if value}
        for pair, value in pairs.items():
            self.labels.setdefault(pair, value)
            if new_document:
                self.new_documents[pair] = self.new_documents.get(pair, 0) + 1

    def flush(self, *, connection: Connection, now: datetime) -> None:
        if not self.labels:
            return
        SourceValue.objects.bulk_create(
            [SourceValue(connection=connection, attribute=attribute, key=key, value=value[:200],
                         first_seen_at=now, last_seen_at=now)
             for (attribute, key), value in self.labels.items()],
            ignore_conflicts=True, batch_size=500,
        )  # fmt: skip
        ids = {
            (attribute, key): pk
            for pk, attribute, key in SourceValue.objects.filter(
                connection=connection, key__in={key for _, key in self.labels}
            ).values_list("pk", "attribute", "key")
            if (attribute, key) in self.labels
        }
        SourceValue.objects.filter(pk__in=ids.values()).update(last_seen_at=now)
        by_count: dict[int, list[int]] = {}
        for pair, count in self.new_documents.items():
            by_count.setdefault(count, []).append(ids[pair])
        for count, pks in by_count.items():
            SourceValue.objects.filter(pk__in=pks).update(documents=F("documents") + count)
        self.labels.clear()
        self.new_documents.clear()


def source_values_record(
    *, connection: Connection, values: Iterable[tuple[str, str]], now: datetime, new_document: bool
) -> None:
    """Remember the (attribute, value) pairs one document carried; count each document once."""
    batch = SourceValueBatch()
    batch.add(values, new_document=new_document)
    batch.flush(connection=connection, now=now)
