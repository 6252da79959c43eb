"""PartsLedger purchase orders and receipts in Business Central (API v2.0, no extensions).

An order is created open (unposted) in `purchaseOrders`: header and lines in one snapshot
`$batch`, one G/L-account line per order line at its own quantity and unit cost, so that a
receipt can later receive line by line. The header has no writable field that could carry
Crosswalk's key (no external document or vendor order number on that page), so the key goes
into every line's `description2` (50 characters; our keys are at most 35), and an order is
found again by reading that vendor's orders of that date with their lines and matching a line.

A receipt receives on the order Crosswalk created: each order line's `receiveQuantity` is set
(0 on the lines the receipt does not touch), then its `invoiceQuantity` to 0, each write with the
line's ETag, then `Microsoft.NAV.receiveAndInvoice`. Business Central's posting routine only
invoices when a line has something to invoice, so with every `invoiceQuantity` at 0 it posts a
receipt alone (docs/connectors/business-central.md cites the source). The received quantities
Business Central shows tell whether the receipt landed already, so a retry never receives twice.

Called by `client.BusinessCentral`, which holds the API and the settings.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from mappings.resolve_cost import PurchasePlan
from syncengine.erps.base import ConnectorError, ErpDocument, FailureCategory, ReceiptPlan
from syncengine.erps.business_central.http import odata_literal
from syncengine.money import ZERO

if TYPE_CHECKING:
    from syncengine.erps.business_central.client import BusinessCentral, Operation

RECEIVE_ACTION = "Microsoft.NAV.receiveAndInvoice"
ORDER_PAGE = 50  # the Purchase Order card in the web client [U]
KEY_FIELD_LENGTH = 50  # purchaseOrderLines.description2, Text[50] [U]
# Business Central stores a unit cost to 5 decimals by default ("Unit-Amount Rounding Precision"
# 0.00001 [U]); a finer one would be cut and the line would no longer tie to the cent.
UNIT_COST_PLACES = 5
CENT = Decimal("0.01")


def order_operations(
    bc: BusinessCentral, plan: PurchasePlan, key: str, vendor_number: str, company: str
) -> list[Operation]:
    """The header and its lines (with their dimensions) as `$batch` operations; refused before
    anything is sent when a line could not tie to the cent."""
    from syncengine.erps.business_central.client import (
        DESCRIPTION_LENGTH,
        Operation,
        line_with_dimensions,
    )

    _check_order(plan, key)
    header: dict[str, Any] = {
        "vendorNumber": vendor_number,
        "orderDate": plan.posting_date.isoformat(),
        "postingDate": plan.posting_date.isoformat(),
    }
    if plan.currency and plan.currency != bc.settings.local_currency:
        header["currencyCode"] = plan.currency
    operations = [Operation("1", "POST", f"{company}/purchaseOrders", header)]
    for line in plan.lines:
        body = {"lineType": "Account", "lineObjectNumber": line.account,
                "description": line.description[:DESCRIPTION_LENGTH], "description2": key,
                "quantity": line.quantity, "directUnitCost": line.unit_cost}  # fmt: skip
        line_with_dimensions(operations, "purchaseOrderLines", body,
                             sorted(line.dimensions.items()))  # fmt: skip
    return operations


def _check_order(plan: PurchasePlan, key: str) -> None:
    problems = []
    if not plan.lines:
        problems.append("it has no lines")
    if len(key) > KEY_FIELD_LENGTH:
        problems.append(f"its key {key} is longer than description2 takes ({KEY_FIELD_LENGTH})")
    for number, line in enumerate(plan.lines, start=1):
        if line.quantity <= ZERO:
            problems.append(f"line {number} orders {line.quantity}, not a positive quantity")
        if -line.unit_cost.as_tuple().exponent > UNIT_COST_PLACES:  # type: ignore[operator]
            problems.append(f"line {number} costs {line.unit_cost} a unit, finer than the "
                            f"{UNIT_COST_PLACES} decimals Business Central keeps")  # fmt: skip
        elif _value(line.quantity, line.unit_cost) != line.amount:
            problems.append(f"line {number} is {line.amount}, not {line.quantity} × "
                            f"{line.unit_cost}")  # fmt: skip
    if problems:
        raise ConnectorError(
            f"Purchase order {plan.document_number} cannot be sent to Business Central: "
            + "; ".join(problems) + ". Nothing was sent; correct it in PartsLedger.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip


def order_by_key(
    bc: BusinessCentral, *, vendor_number: str, order_date: str, key: str
) -> dict[str, Any] | None:
    """The order one of whose lines carries `key` in description2, with its lines.

    `purchaseOrders` has no writable header field for the key, and its lines page answers only
    inside one order (it needs the document's id), so the orders of that vendor on that date are
    read with `$expand=purchaseOrderLines` and the key is matched on a line."""
    rows = bc.api.get_all(
        f"{bc.api.company_path()}/purchaseOrders",
        params=order_lookup_params(vendor_number=vendor_number, order_date=order_date),
        what=f"look up {key}",
    )  # fmt: skip
    for order in rows:
        if any(line.get("description2") == key for line in order.get("purchaseOrderLines", [])):
            return order
    return None


def order_lookup_params(*, vendor_number: str, order_date: str) -> dict[str, str]:
    """The query `order_by_key` reads a vendor's orders of one date with."""
    return {"$filter": f"vendorNumber eq {odata_literal(vendor_number)} and "
                       f"orderDate eq {order_date}",
            "$expand": "purchaseOrderLines"}  # fmt: skip


def order_document(bc: BusinessCentral, order: dict[str, Any], *, suffix: str = "") -> ErpDocument:
    number = str(order.get("number", ""))
    return ErpDocument(id=str(order["id"]), number=f"{number}{suffix}"[:64],
                       url=bc.api.deep_link(page=ORDER_PAGE, number=number))  # fmt: skip


# --- receipts ------------------------------------------------------------------------------------


def receive(bc: BusinessCentral, plan: ReceiptPlan, key: str) -> tuple[ErpDocument, bool]:
    """Receive the plan on its order, invoicing nothing; (order, True) when it was already."""
    order = order_by_key(bc, vendor_number=bc.vendor_number(plan.vendor_ref),
                         order_date=plan.order_date.isoformat(), key=plan.order_key)  # fmt: skip
    if order is None:
        raise ConnectorError(
            f"Purchase order {plan.order_number} ({plan.order_key}) is no longer open in Business "
            f"Central (deleted, or invoiced in full): receipt {plan.document_number} cannot be "
            "received against it. Receive it there by hand if it still must be.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip
    suffix = f" receipt {plan.document_number}"
    lines = _our_lines(order, plan)
    if _received_already(lines, plan):
        return order_document(bc, order, suffix=suffix), True
    _check_costs(lines, plan)
    invoiced = [_quantity(line, "invoicedQuantity") for line in lines]
    path = f"{bc.api.company_path()}/purchaseOrders({order['id']})"
    if order.get("postingDate") != plan.posting_date.isoformat():
        # The receipt is posted on the order's posting date: make it the receipt's.
        bc.api.call("PATCH", path, body=order_date_body(plan),
                    headers={"If-Match": order["@odata.etag"]},
                    what=f"date order {plan.order_number} for receipt {plan.document_number}",
                    creates=True)  # fmt: skip
    for line, writes in zip(lines, line_writes(plan), strict=True):
        for name, value in writes:
            line = _set(bc, path, line, name, value, plan)
    bc.api.call(
        "POST", f"{path}/{RECEIVE_ACTION}", creates=True,
        what=f"receive {plan.document_number} on order {plan.order_number} ({key})",
    )  # fmt: skip
    after = bc.api.call("GET", path, params={"$expand": "purchaseOrderLines"},
                        what=f"read order {plan.order_number} after receiving").body  # fmt: skip
    _check_received(_our_lines(after, plan), plan, invoiced)
    return order_document(bc, after, suffix=suffix), False


def order_date_body(plan: ReceiptPlan) -> dict[str, Any]:
    return {"postingDate": plan.posting_date.isoformat()}


def line_writes(plan: ReceiptPlan) -> list[tuple[tuple[str, Decimal], ...]]:
    """Per line of the order, in the order Crosswalk sent them, the quantities written before
    receiving: what this receipt receives (0 on a line it does not touch), then 0 to invoice.
    Two writes, not one: validating a quantity to receive sets the quantity to invoice to
    everything receivable, so the 0 must come after it."""
    wanted = {line.position: line.quantity for line in plan.lines}
    return [(("receiveQuantity", wanted.get(position, ZERO)), ("invoiceQuantity", ZERO))
            for position in range(plan.order_lines)]  # fmt: skip


def preview_receive(bc: BusinessCentral, plan: ReceiptPlan, company: str) -> list[dict[str, Any]]:
    """The requests `receive` sends when the order shows nothing of this receipt received yet;
    the ids and ETags are the order's, as the lookup reads them."""
    order = f"{company}/purchaseOrders(<id of order {plan.order_number}>)"
    vendor = bc.vendor_number(plan.vendor_ref)
    requests: list[dict[str, Any]] = [
        {"method": "GET", "url": f"{company}/purchaseOrders",
         "params": order_lookup_params(vendor_number=vendor,
                                       order_date=plan.order_date.isoformat()),
         "purpose": f"find the order: a line whose description2 is {plan.order_key}; when it "
                    "shows this receipt received already, nothing below is sent"},
        {"method": "PATCH", "url": order, "headers": {"If-Match": "<the order's ETag>"},
         "body": order_date_body(plan),
         "purpose": "only when the order's posting date is not the receipt's"},
    ]  # fmt: skip
    for position, writes in enumerate(line_writes(plan), start=1):
        for name, value in writes:
            requests.append({"method": "PATCH",
                             "url": f"{order}/purchaseOrderLines(<id of line {position}>)",
                             "headers": {"If-Match": f"<line {position}'s ETag>"},
                             "body": {name: value},
                             "purpose": "only when the line does not hold it already"})  # fmt: skip
    requests.append({"method": "POST", "url": f"{order}/{RECEIVE_ACTION}"})
    requests.append({"method": "GET", "url": order, "params": {"$expand": "purchaseOrderLines"},
                     "purpose": "check what was received and nothing invoiced"})  # fmt: skip
    return requests


def _our_lines(order: dict[str, Any], plan: ReceiptPlan) -> list[dict[str, Any]]:
    """The order's lines Crosswalk sent, in the order it sent them."""
    lines = sorted((line for line in order.get("purchaseOrderLines", [])
                    if line.get("description2") == plan.order_key),
                   key=lambda line: int(line.get("sequence") or 0))  # fmt: skip
    if len(lines) != plan.order_lines:
        raise ConnectorError(
            f"Purchase order {order.get('number')} has {len(lines)} of the {plan.order_lines} "
            f"lines Crosswalk sent: it was changed in Business Central. Receive receipt "
            f"{plan.document_number} there by hand.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip
    return lines


def _received_already(lines: list[dict[str, Any]], plan: ReceiptPlan) -> bool:
    """True when Business Central shows this receipt received, False when it shows only the
    receipts before it; anything else was received by hand and needs a person."""
    shown = list(zip((_quantity(lines[line.position], "receivedQuantity") for line in plan.lines),
                     plan.lines, strict=True))  # fmt: skip
    if all(got == line.received_before + line.quantity for got, line in shown):
        return True
    if all(got == line.received_before for got, line in shown):
        return False
    expected = ", ".join(f"line {line.position + 1}: {line.received_before} before this receipt, "
                         f"{line.received_before + line.quantity} after it, Business Central "
                         f"shows {got}" for got, line in shown)  # fmt: skip
    raise ConnectorError(
        f"Order {plan.order_number} was received in Business Central other than through "
        f"Crosswalk ({expected}). Receive receipt {plan.document_number} there by hand.",
        category=FailureCategory.VALUE, transient=False,
    )  # fmt: skip


def _check_costs(lines: list[dict[str, Any]], plan: ReceiptPlan) -> None:
    """Each received line at the order line's unit cost is worth what PartsLedger says, to the
    cent; checked before anything changes."""
    for line in plan.lines:
        cost = Decimal(str(lines[line.position].get("directUnitCost") or "0"))
        value = _value(line.quantity, cost)
        if value != line.amount:
            raise ConnectorError(
                f"Receipt {plan.document_number} values line {line.position + 1} at "
                f"{line.amount}; order {plan.order_number} in Business Central at {value} "
                f"({line.quantity} × {cost}). Nothing was received: correct the unit cost in "
                "PartsLedger or on the order, then retry.",
                category=FailureCategory.VALUE, transient=False,
            )  # fmt: skip


def _set(
    bc: BusinessCentral,
    path: str,
    line: dict[str, Any],
    name: str,
    value: Decimal,
    plan: ReceiptPlan,
) -> dict[str, Any]:
    """Write one quantity of one order line with its ETag (skipped when it already holds it);
    the line as Business Central answers it, with its new ETag."""
    if _quantity(line, name) == value:
        return line
    url = f"{path}/purchaseOrderLines({line['id']})"
    answer = bc.api.call("PATCH", url, body={name: value},
                         headers={"If-Match": line["@odata.etag"]}, creates=True,
                         what=f"set {name} on order {plan.order_number} for receipt "
                         f"{plan.document_number}")  # fmt: skip
    if isinstance(answer.body, dict) and answer.body.get("@odata.etag"):
        return answer.body
    # An answer without the record (return=minimal): read the line for its new ETag.
    read: dict[str, Any] = bc.api.call("GET", url, what=f"read a line of {plan.order_number}").body
    return read


def _check_received(
    lines: list[dict[str, Any]], plan: ReceiptPlan, invoiced: list[Decimal]
) -> None:
    for line in plan.lines:
        got = _quantity(lines[line.position], "receivedQuantity")
        if got != line.received_before + line.quantity:
            raise ConnectorError(
                f"Business Central answered receipt {plan.document_number} but shows line "
                f"{line.position + 1} of order {plan.order_number} received {got}, not "
                f"{line.received_before + line.quantity}. Check the order there.",
                category=FailureCategory.VALUE, transient=False,
            )  # fmt: skip
    if [_quantity(line, "invoicedQuantity") for line in lines] != invoiced:
        raise ConnectorError(
            f"Business Central invoiced order {plan.order_number} while receiving receipt "
            f"{plan.document_number}: reverse that posted purchase invoice there (the cost "
            "reaches the books with PartsLedger's own invoice).",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip


def _quantity(line: dict[str, Any], name: str) -> Decimal:
    return Decimal(str(line.get(name) or "0"))


def _value(quantity: Decimal, unit_cost: Decimal) -> Decimal:
    return (quantity * unit_cost).quantize(CENT, rounding=ROUND_HALF_UP)
