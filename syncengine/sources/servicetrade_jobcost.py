"""ServiceTrade job items with a cost → canonical `JobCost` (shape in docs/source-formats.md).

A job item is a labor or material line of a job. Those with a cost are what the job consumed;
each becomes one job cost document, posted as a balanced journal (job cost debited, an offset
such as inventory or accrued cost credited). The same shape arrives from a file
(`manage.py ingest --kind job-costs`) and from the API's `/jobitem` list, where ServiceTrade's
`cost` is the unit cost [U: CONTRACTS.md §1 shows `cost` next to `quantity` on a POST].
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from syncengine.canonical import ItemType, JobCost
from syncengine.money import ZERO, to_cents
from syncengine.sources.servicetrade import InvalidDocument, _Reader


def split_job_items(envelope: Any) -> list[Any]:
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise InvalidDocument(['body: expected a JSON object with a "data" member'])
    data = envelope["data"]
    if isinstance(data, dict) and isinstance(data.get("jobItems"), list):
        return list(data["jobItems"])
    if isinstance(data, dict):
        return [data]
    raise InvalidDocument(['data: expected a job item object or {"jobItems": [...]}'])


def has_cost(item: Any) -> bool:
    """Whether an API job item is a cost at all (the API lists items without one too)."""
    return isinstance(item, dict) and item.get("cost") not in (None, "", 0, "0")


def parse_job_item(data: Any, *, currency: str, time_zone: str) -> JobCost:
    """Every problem at once, each naming its field (`data.job.number: required`)."""
    errors: list[str] = []
    root = _Reader(errors, "data", data)
    job = root.child("job")
    item_type = _item_type(root)
    quantity = root.decimal("quantity")
    unit_cost = root.decimal("cost")
    if quantity is not None and quantity == ZERO:
        errors.append("data.quantity: must not be zero")
    used_on = root.epoch_date("usedOn", ZoneInfo(time_zone))
    source = root.child("source", required=False)
    cost = JobCost(
        source_id=root.text("id"),
        job_id=job.text("id", required=False),
        job_number=job.text("number"),
        job_type=job.text("type", required=False),
        service_line=root.child("serviceLine", required=False).text("name", required=False),
        office=job.child("office", required=False).text("name", required=False),
        location_state=job.child("location", required=False)
        .child("address", required=False)
        .text("state", required=False),
        customer=job.child("customer", required=False).text("name", required=False),
        item_type=item_type,
        description=root.text("name", required=False, default="Job item")[:200],
        quantity=quantity or ZERO,
        unit_cost=unit_cost or ZERO,
        amount=to_cents((quantity or ZERO) * (unit_cost or ZERO)),
        used_on=used_on or date.min,
        currency=currency,
        purchase_ref=source.text("value", required=False),
    )
    if errors:
        raise InvalidDocument(errors)
    return cost


def _item_type(root: _Reader) -> str:
    """`libItem.type` as the API gives it, else `itemType`; labor, part or other."""
    lib_item = root.obj.get("libItem")
    text = lib_item.get("type") if isinstance(lib_item, dict) else root.obj.get("itemType")
    item_type = str(text or "").strip().lower()
    if item_type == "material":
        item_type = ItemType.PART
    if not item_type:
        root.errors.append(f"{root.path}.libItem.type: required (labor, part or other)")
    elif item_type not in ItemType.ALL:
        root.errors.append(
            f"{root.path}.libItem.type: {item_type!r} is not one of {', '.join(ItemType.ALL)}"
        )
    return item_type
