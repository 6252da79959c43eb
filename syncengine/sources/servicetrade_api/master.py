"""ServiceTrade companies, locations and contacts into two-way master data (masterdata/).

With the source setting `master_data` on, all three ways in hand ServiceTrade's records, as its
API returns them, to `masterdata.services.master_from_servicetrade`, which decides each field by
the ownership rules and compares change times (each record's `updated`):
- a webhook naming a company (entity type 5), location (11) or contact (22) re-fetches it;
- a poll reads each list `updatedAfter` its own cursor (minus the overlap);
- a backfill (`--master-data`) reads each list `updatedAfter` the date, page by page.
So a repeated, late or out-of-order delivery, an overlapping poll and a re-read backfill page
only ever report ServiceTrade's current state again, which changes nothing that is newer.
The cursors and the backfill's hold live in sync.py, as for invoices and clock events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from masterdata.models import Entity
from masterdata.services import master_from_servicetrade
from syncengine.models import Connection
from syncengine.sources.servicetrade_api.client import ServiceTradeClient, ServiceTradeError

# ServiceTrade's entity → master data's entity, in the order they are read (a location names
# its company, a contact its location).
KINDS: dict[str, str] = {
    "company": Entity.CUSTOMER,
    "location": Entity.LOCATION,
    "contact": Entity.CONTACT,
}
ACTOR_WEBHOOK = "servicetrade webhook"
ACTOR_POLL = "servicetrade poll"
ACTOR_BACKFILL = "servicetrade backfill"


@dataclass
class MasterResult:
    """What a poll or backfill read of companies, locations and contacts, and what it took."""

    read: dict[str, int] = field(default_factory=dict)  # kind → records read
    taken: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(self.read.values())

    def summary(self) -> str:
        counts = ", ".join(f"{self.read.get(kind, 0)} {kind}(s)" for kind in KINDS)
        return f"master data: {counts} read, {len(self.errors)} problem(s)"


def master_take(
    *,
    connection: Connection,
    kind: str,
    records: Iterable[Mapping[str, Any]],
    actor: str,
    now: datetime,
    result: MasterResult,
) -> None:
    """One page (or one re-fetched record) of `kind`, taken as changes from ServiceTrade."""
    records = list(records)
    taken, errors = master_from_servicetrade(connection=connection, entity=KINDS[kind],
                                             records=records, actor=actor, now=now)  # fmt: skip
    result.read[kind] = result.read.get(kind, 0) + len(records)
    result.taken += taken
    result.errors.extend(f"{kind} {_ref(records, error)}: {error}" for error in errors)


def master_refetch(
    *,
    connection: Connection,
    st: ServiceTradeClient,
    kind: str,
    entity_id: str,
    now: datetime,
) -> MasterResult:
    """A webhook named `kind` `entity_id`: read it again now and take its current state. One
    deleted since (404) is left alone: master data removes nothing on either side."""
    result = MasterResult()
    try:
        record = st.get(f"/{kind}/{_numeric(entity_id)}")
    except ServiceTradeError as error:
        if error.status == 404:
            return result
        raise
    if isinstance(record, dict):
        master_take(connection=connection, kind=kind, records=[record], actor=ACTOR_WEBHOOK,
                    now=now, result=result)  # fmt: skip
    return result


def _numeric(entity_id: str) -> str:
    if not entity_id.isdigit():
        raise ServiceTradeError(f"{entity_id[:40]!r} is not a ServiceTrade id.")
    return entity_id


def _ref(records: list[Mapping[str, Any]], error: str) -> str:
    """The id of the record an error is about ("item 2: …" names its position in the page)."""
    head = error.split(":", 1)[0]
    if head.startswith("item ") and head[5:].isdigit() and int(head[5:]) < len(records):
        return str(records[int(head[5:])].get("id", "?"))
    return "?"
