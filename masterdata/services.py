"""Two-way master data: receive a side's changes, decide field by field, tell the other side.

`master_changes_receive` takes one entity's changed fields from one side and decides each by the
crosswalk's ownership rules (`ownership` in the rules in force: `ERP`, `SOURCE` or `LATEST`;
`LATEST` when a field has no rule):
- the owner's change is applied (unless it is older than the owner's own standing change, a
  late delivery); the other side's change is lost, and the owner's value is queued back to it so
  both sides agree again;
- with `LATEST`, the newer change wins by the time each side says it changed; the older one is
  lost.
Every decision is a `MasterChange` row (append-only) with both times; lost values are logged.
Applied values are queued for the other side in the record's outbox, in the same transaction.

`master_outbox_send` tells each side what it has not been told: ServiceTrade through its API
(PUT of the fields it has), the ERP through its connector's `master_data_update`. A side that
cannot be reached keeps its outbox and the error; nothing is lost, and a later run retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from mappings.services import rules_in_force
from masterdata.fields import (
    ERP_ONLY_FIELDS,
    SOURCE_PATHS,
    changed_at_from_servicetrade,
    known_fields,
    servicetrade_body,
    values_from_servicetrade,
)
from masterdata.models import Entity, MasterChange, MasterCursor, MasterRecord, Side
from syncengine.erps.base import ConnectorError
from syncengine.erps.registry import connector_for
from syncengine.models import Connection
from syncengine.sources.servicetrade_api.client import ServiceTradeError

logger = logging.getLogger(__name__)

LATEST = "LATEST"
SIDE_LABEL: dict[str, str] = {Side.SOURCE: "ServiceTrade", Side.ERP: "the ERP"}


class MasterDataRefused(ValueError):
    """The change names an unknown entity, side or field; nothing was stored."""


@dataclass
class Received:
    record: MasterRecord
    applied: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


def master_changes_receive(
    *,
    connection: Connection,
    entity: str,
    source_ref: str,
    side: str,
    values: Mapping[str, Any],
    changed_at: datetime,
    actor: str,
    now: datetime,
    erp_ref: str = "",
) -> Received:
    """Decide each changed field of one entity, as one transaction with its audit rows."""
    _check(entity, side, values)
    owners = _owners(connection, entity, on=now.date())
    with transaction.atomic():
        record, _ = MasterRecord.objects.select_for_update().get_or_create(
            connection=connection, entity=entity, source_ref=str(source_ref),
            defaults={"updated_at": now},
        )  # fmt: skip
        if erp_ref and record.erp_ref != erp_ref:
            record.erp_ref = erp_ref
        received = Received(record)
        for name, value in values.items():
            _decide(record, received, name=name, value=value, side=side, changed_at=changed_at,
                    owner=owners.get(name, LATEST), actor=actor, now=now)  # fmt: skip
        record.name = str(record.values.get("name") or _full_name(record.values) or record.name)
        record.updated_at = now
        record.save()
    return received


def _decide(
    record: MasterRecord,
    received: Received,
    *,
    name: str,
    value: Any,
    side: str,
    changed_at: datetime,
    owner: str,
    actor: str,
    now: datetime,
) -> None:
    stamp = record.stamps.get(name)
    standing_at = datetime.fromisoformat(stamp["at"]) if stamp else None
    standing_side = stamp["side"] if stamp else ""
    has_value = name in record.values
    standing = record.values.get(name)
    reported = record.reported.setdefault(side, {})
    said_before = name in reported and reported[name] == value
    reported[name] = value
    if has_value and standing == value:
        # A side that now agrees dates the value too; one repeating itself moves nothing.
        if not said_before and (standing_at is None or changed_at > standing_at):
            record.stamps[name] = {"side": side, "at": changed_at.isoformat()}
        _drop_from_outbox(record, side, name)  # this side already has it
        return
    if said_before:
        # The side repeats what it said before (a repeated delivery, an overlapping poll, or a
        # record re-read because another of its fields changed): no change of this field on
        # that side, so nothing to decide or log; it is still to be told the standing value.
        if has_value:
            _queue(record, side, name, standing)
        return
    other = Side.ERP if side == Side.SOURCE else Side.SOURCE
    if owner in (Side.SOURCE, Side.ERP) and owner != side:
        reason = f"{SIDE_LABEL[owner]} owns {record.entity}.{name}" + (
            "; its value was sent back." if has_value else "; nothing from it yet."
        )
        lost = True
    elif (
        standing_at is not None
        and changed_at < standing_at
        and (owner == LATEST or standing_side == side)
    ):
        reason = (
            f"Older than the standing change from {SIDE_LABEL[standing_side]} "
            f"({standing_at:%Y-%m-%d %H:%M:%S %Z}); the newer value stays."
        )
        lost = True
    else:
        reason = (
            f"{SIDE_LABEL[side]} owns {record.entity}.{name}."
            if owner == side
            else "The newest change wins."
        )
        lost = False
    MasterChange.objects.create(
        record=record, field=name, side=side, value=value, changed_at=changed_at,
        outcome=MasterChange.Outcome.LOST if lost else MasterChange.Outcome.APPLIED,
        standing_value=standing if has_value else None, standing_side=standing_side,
        standing_at=standing_at, reason=reason, received_at=now, actor=actor,
    )  # fmt: skip
    if lost:
        received.lost.append(name)
        if has_value:  # the loser is told the standing value, so both sides agree again
            _queue(record, side, name, standing)
        return
    received.applied.append(name)
    record.values[name] = value
    record.stamps[name] = {"side": side, "at": changed_at.isoformat()}
    _drop_from_outbox(record, side, name)
    _queue(record, other, name, value)


def _queue(record: MasterRecord, side: str, name: str, value: Any) -> None:
    if side == Side.SOURCE and name in ERP_ONLY_FIELDS[record.entity]:
        return  # ServiceTrade has no such field
    record.outbox.setdefault(side, {})[name] = value


def _drop_from_outbox(record: MasterRecord, side: str, name: str) -> None:
    pending = record.outbox.get(side)
    if pending and name in pending:
        del pending[name]
        if not pending:
            del record.outbox[side]


def _check(entity: str, side: str, values: Mapping[str, Any]) -> None:
    if entity not in Entity.values:
        raise MasterDataRefused(f"Unknown entity {entity!r}; known: {', '.join(Entity.values)}.")
    if side not in Side.values:
        raise MasterDataRefused(f"Unknown side {side!r}; known: {', '.join(Side.values)}.")
    unknown = sorted(set(values) - known_fields(entity))
    if unknown:
        raise MasterDataRefused(
            f"{entity} has no field {', '.join(unknown)}; known: "
            f"{', '.join(sorted(known_fields(entity)))}."
        )


def _owners(connection: Connection, entity: str, *, on: Any) -> dict[str, str]:
    rules = rules_in_force(connection=connection, on=on)
    if rules is None:
        return {}
    return {
        owner.field: owner.owner
        for owner in rules.compiled.ruleset.ownership
        if owner.entity == entity
    }


def _full_name(values: Mapping[str, Any]) -> str:
    return " ".join(str(values[n]) for n in ("first_name", "last_name") if values.get(n))


# --- telling each side ----------------------------------------------------------------------


@dataclass
class Sent:
    told: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def master_outbox_send(
    *,
    connection: Connection,
    now: datetime,
    servicetrade: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> Sent:
    """Tell each side the fields it has not been told. `servicetrade`: a client (tests pass the
    fake's); by default the connection's own. One record's failure never stops the others."""
    pending = list(
        MasterRecord.objects.filter(connection=connection).exclude(outbox={}).order_by("pk")
    )
    sides = _Sides(connection, servicetrade)
    sent = Sent()
    for index, record in enumerate(pending, start=1):
        for side in (Side.ERP, Side.SOURCE):
            values = dict(record.outbox.get(side) or {})
            if not values:
                continue
            try:
                sides.tell(record, side, values)
            except (ConnectorError, ServiceTradeError, MasterDataRefused, OSError) as error:
                message = getattr(error, "message", str(error))
                _sent_failed(record, message[:500], now=now)
                sent.failed += 1
                sent.errors.append(f"{record}: {message}")
                continue
            _sent(record, side, values, now=now)
            sent.told += 1
        if progress:
            progress(index, len(pending))
    return sent


class _Sides:
    """Both sides of one send run: the ERP connector and the ServiceTrade client are made once,
    when first needed, however many records they are told."""

    def __init__(self, connection: Connection, servicetrade: Any) -> None:
        self.connection = connection
        self._servicetrade = servicetrade
        self._connector: Any = None

    def tell(self, record: MasterRecord, side: str, values: dict[str, Any]) -> None:
        if side == Side.ERP:
            self._erp_update()(entity=record.entity, source_ref=record.source_ref,
                               erp_ref=record.erp_ref, values=values)  # fmt: skip
            return
        body = servicetrade_body(record.entity, values)
        if body:
            self._client().put(f"/{SOURCE_PATHS[record.entity]}/{record.source_ref}", body)

    def _erp_update(self) -> Callable[..., None]:
        if self._connector is None:
            self._connector = connector_for(self.connection)
        update = getattr(self._connector, "master_data_update", None)
        if update is None:
            raise MasterDataRefused(
                f"The {self.connection.get_target_display()} connector cannot update master "
                "data yet."
            )
        return update

    def _client(self) -> Any:
        if self._servicetrade is None:
            from syncengine.sources.servicetrade_api.sync import client_for

            self._servicetrade = client_for(self.connection)
        return self._servicetrade


def _sent(record: MasterRecord, side: str, values: dict[str, Any], *, now: datetime) -> None:
    """Clear what was told, unless a newer change to a field arrived meanwhile."""
    with transaction.atomic():
        fresh = MasterRecord.objects.select_for_update().get(pk=record.pk)
        pending = fresh.outbox.get(side) or {}
        for name, value in values.items():
            if name in pending and pending[name] == value:
                del pending[name]
        if not pending:
            fresh.outbox.pop(side, None)
        # The side holds what it was told now: should it report its old value again, that is a
        # real change of its own, not a repeat.
        fresh.reported.setdefault(side, {}).update(values)
        fresh.send_error = ""
        fresh.updated_at = now
        fresh.save(update_fields=["outbox", "reported", "send_error", "updated_at"])


def _sent_failed(record: MasterRecord, message: str, *, now: datetime) -> None:
    MasterRecord.objects.filter(pk=record.pk).update(send_error=message, updated_at=now)


def master_from_servicetrade(
    *,
    connection: Connection,
    entity: str,
    records: Iterable[Mapping[str, Any]],
    actor: str,
    now: datetime,
) -> tuple[int, list[str]]:
    """ServiceTrade companies, locations or contacts as read from its API (each with its `id`
    and `updated`), taken as changes from ServiceTrade."""
    items = [
        {
            "source_ref": record.get("id"),
            "values": values_from_servicetrade(entity, dict(record)),
            "changed_at": changed_at_from_servicetrade(dict(record), default=now).isoformat(),
        }
        for record in records
    ]
    return master_records_receive(connection=connection, side=Side.SOURCE, entity=entity,
                                  items=items, actor=actor, now=now)  # fmt: skip


def master_records_receive(
    *,
    connection: Connection,
    side: str,
    entity: str,
    items: Iterable[Mapping[str, Any]],
    actor: str,
    now: datetime,
) -> tuple[int, list[str]]:
    """Many changes from a file or an API read: each item {"source_ref", "values",
    "changed_at", "erp_ref"?}. Bad items are reported by position; the others are taken."""
    taken, errors = 0, []
    for index, item in enumerate(items):
        try:
            if item.get("source_ref") in (None, ""):
                raise KeyError("source_ref")
            changed_at = datetime.fromisoformat(str(item["changed_at"]))
            if changed_at.tzinfo is None:
                raise MasterDataRefused("changed_at needs a time zone, e.g. 2026-11-20T15:00Z")
            master_changes_receive(
                connection=connection, entity=entity, source_ref=str(item["source_ref"]),
                side=side, values=dict(item["values"]), changed_at=changed_at, actor=actor,
                now=now, erp_ref=str(item.get("erp_ref") or ""),
            )  # fmt: skip
            taken += 1
        except KeyError as missing:
            errors.append(f"item {index}: {missing.args[0]} is required")
        except (MasterDataRefused, ValueError, TypeError) as error:
            errors.append(f"item {index}: {error}")
    return taken, errors


# --- reading the ERP's changes ------------------------------------------------------------------

READ_OVERLAP = timedelta(minutes=5)  # clocks and commits in flight; a repeat is no change


@dataclass
class ErpRead:
    read: int = 0
    applied: int = 0
    lost: int = 0
    supported: bool = True


def master_from_erp(*, connection: Connection, now: datetime) -> ErpRead:
    """Read the customers the ERP changed since the last read and decide them as changes from
    the ERP. A connector without `master_data_changes` (the sandbox ledger) reads nothing.
    Raises ConnectorError; the cursor then stays where it was, with the error."""
    connector = connector_for(connection)
    changes_since = getattr(connector, "master_data_changes", None)
    if changes_since is None:
        return ErpRead(supported=False)
    cursor, _ = MasterCursor.objects.get_or_create(connection=connection)
    since = cursor.changed_at - READ_OVERLAP if cursor.changed_at else None
    try:
        changes = changes_since(since=since)
    except ConnectorError as error:
        failed = MasterCursor.objects.filter(pk=cursor.pk)
        failed.update(last_run_at=now, last_error=error.message[:500])
        raise
    result = ErpRead()
    newest = cursor.changed_at
    for change in changes:
        received = master_changes_receive(
            connection=connection, entity=Entity.CUSTOMER, source_ref=change.source_ref,
            side=Side.ERP, values=change.values, changed_at=change.changed_at,
            actor="erp read", now=now, erp_ref=change.erp_ref,
        )  # fmt: skip
        result.read += 1
        result.applied += len(received.applied)
        result.lost += len(received.lost)
        newest = max(newest, change.changed_at) if newest else change.changed_at
    done = MasterCursor.objects.filter(pk=cursor.pk)
    done.update(changed_at=newest, last_run_at=now, last_error="")
    return result
