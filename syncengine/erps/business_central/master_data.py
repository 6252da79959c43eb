"""Two-way master data with Business Central: its customers, field by field.

Business Central's API v2.0 has customers but no customer sites or contacts, so only CUSTOMER
master data goes both ways here. A customer is Crosswalk's when its number is the connection's
`customer_number_prefix` followed by the ServiceTrade company id (the numbers Crosswalk gives
the customers it creates); other customers are left alone.

Writes are a PATCH with the customer's ETag in If-Match: a customer someone changed meanwhile
is refused (`Request_EntityChanged`, transient), and the change stays queued until the next
run reads the new ETag. Tax code and payment terms travel as codes in Crosswalk and as ids in
Business Central (`taxAreaId`, `paymentTermsId`), looked up once per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.business_central.http import odata_literal, odata_time

if TYPE_CHECKING:
    from syncengine.erps.business_central.client import BusinessCentral

# Crosswalk's field → the customer's field in Business Central.
CUSTOMER_FIELDS = {
    "name": "displayName",
    "street": "addressLine1",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
    "phone": "phoneNumber",
    "email": "email",
}
# Crosswalk's field → (the id field, the list its codes come from).
CODED_FIELDS = {
    "tax_code": ("taxAreaId", "taxAreas"),
    "payment_terms": ("paymentTermsId", "paymentTerms"),
}


@dataclass(frozen=True)
class CustomerChange:
    source_ref: str
    erp_ref: str
    values: dict[str, Any]
    changed_at: datetime


def customer_update(
    bc: BusinessCentral, *, entity: str, source_ref: str, erp_ref: str, values: dict[str, Any]
) -> None:
    if entity != "CUSTOMER":
        raise ConnectorError(
            f"Business Central's API has no {entity.lower()}s of customers: only customers are "
            "kept in step with it.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip
    number = erp_ref or f"{bc.settings.customer_number_prefix}{source_ref}"
    company = bc.api.company_path()
    found = list(bc.api.get_all(
        f"{company}/customers", params={"$filter": f"number eq {odata_literal(number)}"},
        what=f"look up customer {number}",
    ))  # fmt: skip
    if not found:
        raise ConnectorError(
            f"Business Central has no customer {number} yet: it is created with the company's "
            "first invoice (or by hand), then this change is sent.",
            category=FailureCategory.PREREQUISITE, transient=True, missing=f"CUSTOMER:{number}",
        )  # fmt: skip
    customer = found[0]
    body = _customer_body(bc, company, values)
    if not body:
        return
    bc.api.call(
        "PATCH", f"{company}/customers({customer['id']})", body=body,
        headers={"If-Match": str(customer.get("@odata.etag") or "*")},
        what=f"update customer {number}",
    )  # fmt: skip


def _customer_body(bc: BusinessCentral, company: str, values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name in CUSTOMER_FIELDS:
            body[CUSTOMER_FIELDS[name]] = "" if value is None else str(value)
        elif name in CODED_FIELDS:
            field_name, entity_set = CODED_FIELDS[name]
            ids = _ids_by_code(bc, company, entity_set)
            if value and str(value) not in ids:
                raise ConnectorError(
                    f"Business Central has no {entity_set} code {value!r}: add it there, or "
                    f"correct {name} in ServiceTrade.",
                    category=FailureCategory.MISSING_REFERENCE, transient=False,
                )  # fmt: skip
            body[field_name] = ids.get(str(value), "00000000-0000-0000-0000-000000000000")
    return body


def _ids_by_code(bc: BusinessCentral, company: str, entity_set: str) -> dict[str, str]:
    """Read once per connector, so a send run does not read the list for every customer."""
    if entity_set not in bc.ids_by_code:
        rows = bc.api.get_all(f"{company}/{entity_set}", what=f"read {entity_set}")
        bc.ids_by_code[entity_set] = {str(row["code"]): str(row["id"]) for row in rows}
    return bc.ids_by_code[entity_set]


def customer_changes(bc: BusinessCentral, *, since: datetime | None) -> Iterator[CustomerChange]:
    """Crosswalk's customers changed after `since` (all of them when None), as master data."""
    company = bc.api.company_path()
    prefix = bc.settings.customer_number_prefix
    params = {"$filter": f"lastModifiedDateTime gt {odata_time(since)}"} if since else None
    codes = {
        field_name: {ident: code for code, ident in _ids_by_code(bc, company, entity_set).items()}
        for field_name, (_, entity_set) in CODED_FIELDS.items()
    }
    for row in bc.api.get_all(f"{company}/customers", params=params, what="read customers"):
        number = str(row.get("number") or "")
        source_ref = number[len(prefix) :] if number.startswith(prefix) else ""
        if not source_ref.isdigit():  # not one of Crosswalk's customers
            continue
        # Blank fields are left out: Business Central answers "" for every field never filled,
        # and a first read must not blank what ServiceTrade holds (a cleared field is therefore
        # not carried over either).
        values: dict[str, Any] = {name: row[field] for name, field in CUSTOMER_FIELDS.items()
                                  if row.get(field)}  # fmt: skip
        for name, (field_name, _) in CODED_FIELDS.items():
            code = codes[name].get(str(row.get(field_name) or ""), "")
            if code:
                values[name] = code
        yield CustomerChange(
            source_ref=source_ref, erp_ref=number, values=values,
            changed_at=datetime.fromisoformat(str(row["lastModifiedDateTime"])),
        )  # fmt: skip
