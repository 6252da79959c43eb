"""The ERP catalog per connection: refreshed from the target connector, and the source values
learned from ingested documents.

A refresh reads the connector's lists with no transaction open, then writes them in one
transaction with its audit row. A value the ERP no longer lists is kept and flagged
(`missing_since`), so a rule pointing at it is reported by validation instead of silently lost.
Every write bumps `Connection.catalog_version`, which invalidates the per-process catalog cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F

from mappings.models import CatalogEntry, RuleAudit, SourceValue
from mappings.resolve import Catalog
from mappings.ruleset import norm
from syncengine.erps.base import CatalogItem
from syncengine.models import Connection


@dataclass(frozen=True)
class RefreshResult:
    added: int
    changed: int
    missing: int
    returned: int


def catalog_refresh(*, connection: Connection, actor: str, now: datetime) -> RefreshResult:
    """Read every list from the connection's ERP and store it. Raises ConnectorError."""
    from syncengine.erps.registry import connector_for

    items = list(connector_for(connection).catalog_lists())
    return catalog_store(
        connection=connection,
        items=items,
        actor=actor,
        now=now,
        action=RuleAudit.Action.CATALOG_REFRESHED,
    )


@transaction.atomic
def catalog_store(
    *,
    connection: Connection,
    items: Iterable[CatalogItem],
    actor: str,
    now: datetime,
    action: str,
    kinds: set[str] | None = None,
    reason: str = "",
) -> RefreshResult:
    """Upsert these catalog values; values of the same kinds that are absent become missing.

    `kinds` limits which lists are being replaced (an import of accounts only must not flag every
    dimension value missing); by default, the kinds present in `items`.
    """
    items = list(items)
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
        if key not in seen and entry.missing_since is None
    ]
    CatalogEntry.objects.filter(pk__in=missing).update(missing_since=now)
    Connection.objects.filter(pk=connection.pk).update(catalog_version=F("catalog_version") + 1)
    result = RefreshResult(added=added, changed=changed, missing=len(missing), returned=len(items))
    RuleAudit.objects.create(
        connection=connection, at=now, actor=actor, action=action,
        subject="catalog." + ",".join(sorted(kinds)), after=result.__dict__, reason=reason,
    )  # fmt: skip
    return result


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


def source_values_record(
    *, connection: Connection, values: Iterable[tuple[str, str]], now: datetime, new_document: bool
) -> None:
    """Remember the (attribute, value) pairs one document carried; count each document once."""
    pairs = {(attribute, norm(value)): value for attribute, value in values if value}
    if not pairs:
        return
    SourceValue.objects.bulk_create(
        [SourceValue(connection=connection, attribute=attribute, key=key, value=value[:200],
                     first_seen_at=now, last_seen_at=now)
         for (attribute, key), value in pairs.items()],
        ignore_conflicts=True,
    )  # fmt: skip
    matching = SourceValue.objects.filter(
        connection=connection, attribute__in={a for a, _ in pairs}, key__in={k for _, k in pairs}
    )
    updates: dict[str, Any] = {"last_seen_at": now}
    if new_document:
        updates["documents"] = F("documents") + 1
    matching.filter(pk__in=[
        pk for pk, attribute, key in matching.values_list("pk", "attribute", "key")
        if (attribute, key) in pairs
    ]).update(**updates)  # fmt: skip
