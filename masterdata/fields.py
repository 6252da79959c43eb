"""The fields two-way master data keeps in step, and how each reads and writes in ServiceTrade.

Field names are Crosswalk's own (the ownership rules of the crosswalk use them, e.g.
`CUSTOMER.tax_code`). ServiceTrade's names come from its API: locations from the write fields
its SDKs list; companies and contacts use the same names, marked unverified in
docs/master-data.md until checked on a real account. A field ServiceTrade does not have (a
customer's tax code, payment terms) is kept and sent to the ERP only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from masterdata.models import Entity


class SourceField(NamedTuple):
    read: tuple[str, ...]  # path in a ServiceTrade record, e.g. ("address", "street")
    write: str  # the write field, e.g. "addressStreet"


_ADDRESS = {
    "street": SourceField(("address", "street"), "addressStreet"),
    "city": SourceField(("address", "city"), "addressCity"),
    "state": SourceField(("address", "state"), "addressState"),
    "postal_code": SourceField(("address", "postalCode"), "addressPostalCode"),
}

SOURCE_FIELDS: dict[str, dict[str, SourceField]] = {
    Entity.CUSTOMER: {
        "name": SourceField(("name",), "name"),
        **_ADDRESS,
        "phone": SourceField(("phoneNumber",), "phoneNumber"),
        "email": SourceField(("email",), "email"),
    },
    Entity.LOCATION: {
        "name": SourceField(("name",), "name"),
        **_ADDRESS,
        "phone": SourceField(("phoneNumber",), "phoneNumber"),
        "email": SourceField(("email",), "email"),
        "taxable": SourceField(("taxable",), "taxable"),
    },
    Entity.CONTACT: {
        "first_name": SourceField(("firstName",), "firstName"),
        "last_name": SourceField(("lastName",), "lastName"),
        "email": SourceField(("email",), "email"),
        "phone": SourceField(("phone",), "phone"),
    },
}

# Fields only the ERP has: kept in step from the ERP, never sent to ServiceTrade.
ERP_ONLY_FIELDS: dict[str, frozenset[str]] = {
    Entity.CUSTOMER: frozenset({"tax_code", "payment_terms"}),
    Entity.LOCATION: frozenset({"tax_code"}),
    Entity.CONTACT: frozenset(),
}

SOURCE_PATHS: dict[str, str] = {
    Entity.CUSTOMER: "company",
    Entity.LOCATION: "location",
    Entity.CONTACT: "contact",
}


def known_fields(entity: str) -> frozenset[str]:
    return frozenset(SOURCE_FIELDS[entity]) | ERP_ONLY_FIELDS[entity]


def values_from_servicetrade(entity: str, record: dict[str, Any]) -> dict[str, Any]:
    """The fields a ServiceTrade company, location or contact carries (absent ones left out)."""
    values: dict[str, Any] = {}
    for name, field in SOURCE_FIELDS[entity].items():
        value: Any = record
        for part in field.read:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            values[name] = value
    return values


def changed_at_from_servicetrade(record: dict[str, Any], *, default: datetime) -> datetime:
    """ServiceTrade's `updated` (epoch seconds), else `default`."""
    updated = record.get("updated")
    if isinstance(updated, int | float) and not isinstance(updated, bool):
        return datetime.fromtimestamp(updated, tz=UTC)
    return default


def servicetrade_body(entity: str, values: dict[str, Any]) -> dict[str, Any]:
    """A ServiceTrade PUT body for the fields it has; ERP-only fields are left out."""
    fields = SOURCE_FIELDS[entity]
    return {fields[name].write: value for name, value in values.items() if name in fields}
