"""ERP purchase orders → ServiceTrade job items on the job each order names.

- The ERP's orders changed since a cursor are read through the connector (`purchase_orders`,
  read-only); every line not seen before is remembered (`PurchaseOrderJobItem`, unique per
  connection, order and line) in the same transaction that moves the cursor.
- Each remembered line is then written once as a job item on the ServiceTrade job whose number
  the order carries (`POST /jobitem`, sourced `PO <number>`). The row is marked SENDING before
  the call and WRITTEN after it; a row found SENDING (a crash or a lost answer) is looked up on
  the job first, so a line is never added twice.
- An order naming no job, or a job ServiceTrade does not have, is recorded (UNKNOWN_JOB, with
  the reason) and tried again on the next run; it never stops the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from syncengine.erps.base import Connector, ConnectorError, ErpPurchaseOrder
from syncengine.erps.registry import connector_for
from syncengine.models import Connection, PurchaseOrderJobItem, SourceCursor
from syncengine.sources.servicetrade_api.client import (
    ServiceTradeClient,
    ServiceTradeError,
    from_epoch,
    to_epoch,
)

logger = logging.getLogger(__name__)

CURSOR_ENTITY = "erp_purchase_order"
FIRST_READ_LOOKBACK = timedelta(days=1)
MAX_ATTEMPTS = 5  # a line ServiceTrade keeps refusing stops being tried after this many
State = PurchaseOrderJobItem.State


@dataclass
class PurchaseOrderResult:
    orders: int = 0
    new_lines: int = 0
    written: int = 0
    unknown_job: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def reference(po_number: str) -> str:
    return f"PO {po_number}"


def purchase_orders_to_job_items(
    *,
    connection: Connection,
    now: datetime,
    client: ServiceTradeClient | None = None,
    connector: Connector | None = None,
    limit: int = 500,
) -> PurchaseOrderResult:
    """Read the ERP's purchase orders changed since the cursor, remember their new lines, then
    write every line not written yet as a job item on its ServiceTrade job.

    Raises ConnectorError when the ERP cannot be read (the cursor stays, the error is kept) and
    ServiceTradeError when ServiceTrade cannot be reached at all; one line failing does not stop
    the others."""
    from syncengine.sources.servicetrade_api.sync import client_for

    result = PurchaseOrderResult()
    cursor, _ = SourceCursor.objects.get_or_create(
        connection=connection, entity=CURSOR_ENTITY, mode=SourceCursor.Mode.POLL,
        defaults={"position_epoch": to_epoch(now - FIRST_READ_LOOKBACK), "started_at": now,
                  "moved_at": now},
    )  # fmt: skip
    since = from_epoch(cursor.position_epoch) if cursor.position_epoch is not None else None
    try:
        orders = list((connector or connector_for(connection)).purchase_orders(since=since))
    except ConnectorError as error:
        SourceCursor.objects.filter(pk=cursor.pk).update(last_error=error.message[:500])
        raise
    with transaction.atomic():
        for order in orders:
            result.new_lines += _remember(connection, order, now)
        # The ERP's own clock stamps the orders: start the next read at the newest one seen.
        newest = max((to_epoch(order.changed_at) for order in orders), default=None)
        moved = {"moved_at": now, "last_error": ""}
        if newest is not None and newest > (cursor.position_epoch or 0):
            moved["position_epoch"] = newest
        SourceCursor.objects.filter(pk=cursor.pk).update(**moved)
    result.orders = len(orders)
    due = list(
        PurchaseOrderJobItem.objects.filter(connection=connection, attempts__lt=MAX_ATTEMPTS)
        .exclude(state=State.WRITTEN)
        .order_by("pk")[:limit]
    )
    if not due:
        return result
    jobs: dict[str, str | None] = {}
    with client or client_for(connection) as st:
        for row in due:
            _write(st, row, jobs, now, result)
    return result


def _remember(connection: Connection, order: ErpPurchaseOrder, now: datetime) -> int:
    new = 0
    for line in order.lines:
        name = (line.description or line.item or f"PO {order.number} line")[:200]
        values: dict[str, Any] = {
            "po_number": order.number[:40], "job_number": order.job_number[:40], "name": name,
            "quantity": line.quantity, "unit_cost": line.unit_cost, "first_seen_at": now,
        }  # fmt: skip
        if not order.job_number:
            values["state"] = State.UNKNOWN_JOB
            values["message"] = f"Purchase order {order.number} names no ServiceTrade job."
        row, created = PurchaseOrderJobItem.objects.get_or_create(
            connection=connection, erp_order_id=order.id, erp_line_id=line.id, defaults=values
        )
        new += int(created)
        if not created and row.state in (State.PENDING, State.UNKNOWN_JOB, State.FAILED):
            # Not written yet: the latest version of the order counts (a job number corrected
            # in the ERP, say). Written or being sent: never changed.
            values.pop("first_seen_at")
            values.setdefault("state", State.PENDING)
            values.setdefault("message", "")
            PurchaseOrderJobItem.objects.filter(pk=row.pk).update(**values)
    return new


def _job_id(st: ServiceTradeClient, number: str, jobs: dict[str, str | None]) -> str | None:
    """The id of the ServiceTrade job with exactly this number. [U] `number` as a job filter
    is not in the sources; only an exact match is taken whatever the list holds."""
    if number not in jobs:
        found = [job for job in st.jobs(number=number) if str(job.get("number")) == number]
        jobs[number] = str(found[0]["id"]) if found else None
    return jobs[number]


def _write(
    st: ServiceTradeClient,
    row: PurchaseOrderJobItem,
    jobs: dict[str, str | None],
    now: datetime,
    result: PurchaseOrderResult,
) -> None:
    if not row.job_number:
        result.unknown_job += 1
        return
    try:
        job_id = _job_id(st, row.job_number, jobs)
    except ServiceTradeError as error:
        result.errors.append(f"PO {row.po_number}: {error.message}")
        return
    if job_id is None:
        _settle(row, State.UNKNOWN_JOB, now=now, message=f"No ServiceTrade job numbered "
                f"{row.job_number!r} (purchase order {row.po_number}).")  # fmt: skip
        result.unknown_job += 1
        return
    uncertain = row.state == State.SENDING
    with transaction.atomic():
        PurchaseOrderJobItem.objects.filter(pk=row.pk).update(
            state=State.SENDING, attempts=row.attempts + 1, tried_at=now, st_job_id=job_id
        )
    try:
        item_id = _existing_item(st, row, job_id) if uncertain else None
        if item_id is None:
            created = st.job_item_create({
                "jobId": int(job_id), "name": row.name, "quantity": row.quantity,
                "cost": row.unit_cost,
                "source": {"type": "refnumber", "value": reference(row.po_number)},
            })  # fmt: skip
            item_id = str(created.get("id", ""))
    except ServiceTradeError as error:
        if error.outcome_unknown:
            # It may have landed: stays SENDING, and the next run looks for it first.
            PurchaseOrderJobItem.objects.filter(pk=row.pk).update(message=error.message[:500])
        else:
            _settle(row, State.FAILED, now=now, message=error.message)
        result.failed += 1
        result.errors.append(f"PO {row.po_number}: {error.message}")
        return
    _settle(row, State.WRITTEN, now=now, item_id=item_id)
    result.written += 1


def _existing_item(st: ServiceTradeClient, row: PurchaseOrderJobItem, job_id: str) -> str | None:
    """The job item an earlier, unanswered call created for this line, if any."""
    for item in st.job_items(jobId=job_id):
        source = item.get("source") or {}
        if (
            str(source.get("value", "")) == reference(row.po_number)
            and item.get("name") == row.name
            and _same(item.get("quantity"), row.quantity)
            and _same(item.get("cost"), row.unit_cost)
        ):
            return str(item.get("id", ""))
    return None


def _same(value: Any, expected: Decimal) -> bool:
    try:
        return Decimal(str(value)) == expected
    except InvalidOperation:
        return False


def _settle(
    row: PurchaseOrderJobItem, state: str, *, now: datetime, message: str = "", item_id: str = ""
) -> None:
    values: dict[str, Any] = {"state": state, "message": message[:500], "tried_at": now}
    if state == State.WRITTEN:
        values.update(st_job_item_id=item_id[:32], written_at=now)
    PurchaseOrderJobItem.objects.filter(pk=row.pk).update(**values)


def purchase_orders_due(*, now: datetime) -> int:
    """Beat: every API connection with `purchase_order_job_items` on; returns how many ran.
    One connection failing does not stop the others."""
    from syncengine.sources.servicetrade_api.sync import api_settings, connections_with_api

    ran = 0
    for connection in connections_with_api():
        if not api_settings(connection).purchase_order_job_items:
            continue
        try:
            purchase_orders_to_job_items(connection=connection, now=now)
            ran += 1
        except (ConnectorError, ServiceTradeError) as error:
            logger.warning("Purchase orders of %s: %s", connection.slug, error.message)
    return ran
