"""Dynamics 365 Business Central as a connector, through the standard API v2.0 (no extensions).

What goes where (docs/connectors/business-central.md says it for finance):
- An invoice is a sales invoice: one G/L-account line per plan line (the tax ServiceTrade
  computed is its own line to the tax liability account, so the total ties out to the cent),
  each line's dimensions as its dimension set lines. Header, lines and dimensions travel in one
  `$batch` with `Isolation: snapshot`, so Business Central keeps all of it or none of it. Then,
  by the connection's `post_policy`, it is posted (`Microsoft.NAV.post`) or left as a draft.
- The idempotency key is the document's `externalDocumentNumber`; `find_invoice` searches it.
- A void is a sales credit memo applied to the posted invoice (`invoiceId`), its lines the
  invoice's lines read back from Business Central, so it offsets exactly what was posted.
- A job item cost (or an inventory adjustment) is general journal lines in the connection's
  `cost_journal`: G/L account against a G/L balancing account, the key in
  `externalDocumentNumber` and, shortened to Business Central's 20 characters when needed, in
  `documentNumber`, which the posted G/L entries keep; lines and dimensions in one `$batch`.
  The lines are left in the journal for finance to post: posting a journal posts every line in
  it, other people's too.
- A purchase invoice is a purchase invoice with one G/L-account line per plan line; the key is
  its `vendorInvoiceNumber` (the page has no externalDocumentNumber), the vendor created first
  when the connection allows it.
- A PartsLedger purchase order is an open purchase order, the key in every line's
  `description2` (the header has no field for it); a receipt receives on that order without
  invoicing it (purchase_orders.py says how, and why it cannot invoice twice).
- A timecard is time registration entries. That page has no field for our key, so an entry is
  recognised by employee, date, project and hours; a week's new entries go in one `$batch`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from mappings.resolve import InvoicePlan, PlanLine
from mappings.resolve_cost import JournalPlan, PurchasePlan
from mappings.resolve_time import TimePlan, TimePlanEntry
from syncengine.erps.base import (
    CatalogItem,
    ConnectorError,
    ErpDocument,
    ErpDocumentSummary,
    ErpPayment,
    ErpPurchaseOrder,
    ErpPurchaseOrderLine,
    FailureCategory,
    ReceiptPlan,
)
from syncengine.erps.business_central import master_data, purchase_orders
from syncengine.erps.business_central.http import (
    MAX_BATCH_OPERATIONS,
    BcApi,
    BcSettings,
    batch_request,
    odata_literal,
    odata_time,
)
from syncengine.models import Connection
from syncengine.money import ZERO

# Web client pages for deep links: draft and posted, invoices and credit memos.
PAGES = {
    ("salesInvoices", True): 43,
    ("salesInvoices", False): 132,
    ("salesCreditMemos", True): 44,
    ("salesCreditMemos", False): 134,
    ("purchaseInvoices", True): 51,
    ("purchaseInvoices", False): 138,
}
DOCUMENT_NUMBER_LENGTH = 20  # a journal line's documentNumber (Code[20]) [U]
KEY_PREFIX = "ST-"  # every Crosswalk key starts so (syncengine.services.records._erp_key)
ORDER_KEY_PREFIX = "ST-PO-"  # a PartsLedger purchase order's key (records.procurement_key)
DESCRIPTION_LENGTH = 100  # Business Central's line description
# A sales document not posted yet; "In Review" as schema 2.0 spells it too.
UNPOSTED_STATUSES = ("Draft", "In Review", "In_x0020_Review")
# Default dimensions' "Value Posting" as written: enum names with spaces encoded (schema 2.0) [U].
POSTING_VALIDATIONS = {"Code Mandatory": "Code_x0020_Mandatory", "Same Code": "Same_x0020_Code"}


@dataclass
class Operation:
    """One request of a `$batch` (or, for preview, one request Crosswalk would send)."""

    id: str
    method: str
    url: str  # relative to the API root, or "$<id>/…" for a record made earlier in the batch
    body: dict[str, Any] | None = None
    depends_on: list[str] = field(default_factory=list)

    def as_batch(self) -> dict[str, Any]:
        request: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url}
        if self.depends_on:
            request["dependsOn"] = self.depends_on
        if self.body is not None:
            request["headers"] = {"Content-Type": "application/json"}
            request["body"] = self.body
        return request


def line_with_dimensions(
    operations: list[Operation],
    line_set: str,
    body: dict[str, Any],
    dimensions: Iterable[tuple[str, str]],
) -> None:
    """Add a line of the document made by request 1, then its dimension set lines."""
    line_id = str(len(operations) + 1)
    operations.append(Operation(line_id, "POST", f"$1/{line_set}", body, ["1"]))
    for code, value in dimensions:
        operations.append(Operation(
            str(len(operations) + 1), "POST", f"${line_id}/dimensionSetLines",
            {"code": code, "valueCode": value}, [line_id],
        ))  # fmt: skip


class BusinessCentral:
    # PartsLedger documents this ERP takes as documents of their own (base.procurement_poster).
    posted_procurement = frozenset({"PURCHASE_ORDER", "RECEIPT"})

    def __init__(self, *, connection: Connection) -> None:
        self.connection = connection
        self.settings = BcSettings.of(connection)
        self._api: BcApi | None = None
        # Code → id of small lists (tax areas, payment terms), read once per connector.
        self.ids_by_code: dict[str, dict[str, str]] = {}

    @property
    def api(self) -> BcApi:
        if self._api is None:
            secrets = self.connection.erp_secrets()
            client_id, client_secret = secrets.get("client_id"), secrets.get("client_secret")
            if not client_id or not client_secret:
                raise ConnectorError(
                    f"{self.connection.name} has no Business Central client id and secret yet: "
                    "set them on the connection's settings page.",
                    category=FailureCategory.AUTH, transient=False,
                )  # fmt: skip
            self._api = BcApi(
                settings=self.settings, client_id=str(client_id), client_secret=str(client_secret)
            )
        return self._api

    # --- reading --------------------------------------------------------------------------------

    def check(self) -> str:
        _, name = self.api.company()
        return f"Business Central company {name} ({self.settings.environment})"

    def catalog_lists(self, *, changed_since: datetime | None = None) -> list[CatalogItem]:
        """Every list page by page. With `changed_since`, only records changed after it
        (`$filter=lastModifiedDateTime gt …`: every page read here has that field), except the
        dimensions, always read whole: a changed value is named by its dimension's code."""
        company = self.api.company_path()
        changed = (
            {"$filter": f"lastModifiedDateTime gt {odata_time(changed_since)}"}
            if changed_since is not None
            else None
        )

        def read(entity_set: str, *, whole: bool = False) -> Iterator[dict[str, Any]]:
            return self.api.get_all(f"{company}/{entity_set}", params=None if whole else changed,
                                    what=f"read its {entity_set}")  # fmt: skip

        items = [
            CatalogItem(
                kind="ACCOUNT",
                code=row["number"],
                name=row.get("displayName", ""),
                active=not row.get("blocked", False),
                # Headings and totals take no postings; direct posting matters to journals only.
                accepts_postings=row.get("accountType", "Posting") == "Posting",
                attributes={
                    "category": row.get("category", ""),
                    "direct_posting": bool(row.get("directPosting", False)),
                },
            )  # fmt: skip
            for row in read("accounts")
        ]
        dimensions = {row["id"]: row for row in read("dimensions", whole=True)}
        items += [
            CatalogItem(kind="DIMENSION", code=row["code"], name=row.get("displayName", ""))
            for row in dimensions.values()
        ]
        for row in read("dimensionValues"):
            dimension = dimensions.get(row.get("dimensionId", ""))
            if dimension is not None:
                items.append(CatalogItem(
                    kind="DIMENSION_VALUE", code=row["code"], parent=dimension["code"],
                    name=row.get("displayName", ""),
                ))  # fmt: skip
        for row in read("taxGroups"):
            # The code a sales line carries as its taxCode: rules call it the tax code.
            for kind in ("TAX_GROUP", "TAX_CODE"):
                items.append(CatalogItem(kind=kind, code=row["code"],
                                         name=row.get("displayName", "")))  # fmt: skip
        items += [
            CatalogItem(kind="TAX_AREA", code=row["code"], name=row.get("displayName", ""))
            for row in read("taxAreas")
        ]
        items += [
            CatalogItem(kind="PAYMENT_TERM", code=row["code"], name=row.get("displayName", ""))
            for row in read("paymentTerms")
        ]
        items += [
            CatalogItem(
                kind="EMPLOYEE",
                code=row["number"],
                name=row.get("displayName", ""),
                active=row.get("status", "Active") == "Active",
            )  # fmt: skip
            for row in read("employees")
        ]
        items += [
            CatalogItem(
                kind="CUSTOMER",
                code=row["number"],
                name=row.get("displayName", ""),
                active=_not_blocked(row.get("blocked")),
            )  # fmt: skip
            for row in read("customers")
        ]
        items += [
            CatalogItem(
                kind="ITEM",
                code=row["number"],
                name=row.get("displayName", ""),
                active=not row.get("blocked", False),
            )  # fmt: skip
            for row in read("items")
        ]
        items += [
            CatalogItem(
                kind="VENDOR",
                code=row["number"],
                name=row.get("displayName", ""),
                active=_not_blocked(row.get("blocked")),
            )  # fmt: skip
            for row in read("vendors")
        ]
        items += [
            CatalogItem(kind="PROJECT", code=row["number"], name=row.get("displayName", ""))
            for row in read("projects")
        ]
        return items

    def find_invoice(self, *, key: str) -> ErpDocument | None:
        """The invoice, else the credit memo, whose externalDocumentNumber is `key`.

        With the "post" policy, a draft found here (its posting failed or its answer was lost)
        is posted now, so a retry finishes what the lost attempt started.
        """
        for entity_set in ("salesInvoices", "salesCreditMemos"):
            found = self._by_key(entity_set, key)
            if found is not None:
                if self.settings.post_policy == "post" and found.get("status") == "Draft":
                    return self._post(entity_set, found, key)
                return self._document(entity_set, found)
        return None

    def list_documents(self) -> Iterator[ErpDocumentSummary]:
        company = self.api.company_path()
        for entity_set, kind, date_field in (
            ("salesInvoices", "INVOICE", "postingDate"),
            ("salesCreditMemos", "CREDIT_MEMO", "postingDate"),
        ):
            params = {"$filter": "externalDocumentNumber ne ''"}
            for row in self.api.get_all(
                f"{company}/{entity_set}", params=params, what=f"list its {entity_set}"
            ):
                key = row.get("externalDocumentNumber") or ""
                if not key.startswith(KEY_PREFIX):
                    continue
                yield ErpDocumentSummary(
                    key=key, id=row["id"], number=row.get("number", ""), kind=kind,
                    amount=Decimal(str(row.get("totalAmountIncludingTax", "0"))),
                    posting_date=date.fromisoformat(row[date_field]),
                )  # fmt: skip

    def payments(self, *, since: datetime | None) -> Iterator[ErpPayment]:
        """Customer payment lines that name an invoice (`appliesToInvoiceId` or `…Number`),
        changed since `since`, page by page. A payment journal line carries a negative amount
        (it credits the customer); a positive one on an invoice is a refund or reversal.
        [U] These are journal lines: Business Central removes them when the journal is posted,
        so payments must be read before that (docs/connectors/business-central.md)."""
        params: dict[str, str] = {}
        if since is not None:
            params["$filter"] = f"lastModifiedDateTime ge {odata_time(since)}"
        rows = self.api.get_all(
            f"{self.api.company_path()}/customerPayments", params=params, what="read payments"
        )
        for row in rows:
            if not (row.get("appliesToInvoiceId") or row.get("appliesToInvoiceNumber")):
                continue
            amount = -Decimal(str(row.get("amount") or "0"))
            yield ErpPayment(
                id=str(row["id"]), amount=amount,
                payment_date=date.fromisoformat(row["postingDate"]),
                changed_at=datetime.fromisoformat(row["lastModifiedDateTime"]),
                invoice_id=str(row.get("appliesToInvoiceId") or "").strip("{}").lower(),
                invoice_number=str(row.get("appliesToInvoiceNumber") or ""),
                reason="" if amount >= ZERO else str(row.get("description") or "Reversal")[:100],
            )  # fmt: skip

    def purchase_orders(self, *, since: datetime | None) -> Iterator[ErpPurchaseOrder]:
        """Purchase orders changed since `since` with their lines (`purchaseOrders`, then each
        order's `purchaseOrderLines`); read-only. The ServiceTrade job number is read from the
        order field named by the ERP setting `purchase_order_job_field` (default
        `shipToContact`): [U] API v2.0 shows no job or "your reference" field on orders."""
        field_name = str((self.connection.erp_settings or {}).get("purchase_order_job_field")
                         or "shipToContact")  # fmt: skip
        company = self.api.company_path()
        params: dict[str, str] = {}
        if since is not None:
            stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            params["$filter"] = f"lastModifiedDateTime ge {stamp}"
        orders = list(self.api.get_all(f"{company}/purchaseOrders", params=params,
                                       what="read purchase orders"))  # fmt: skip
        for order in orders:
            lines = list(self.api.get_all(
                f"{company}/purchaseOrders({order['id']})/purchaseOrderLines",
                what=f"read purchase order {order.get('number')}",
            ))  # fmt: skip
            if any(str(line.get("description2") or "").startswith(ORDER_KEY_PREFIX)
                   for line in lines):  # fmt: skip
                continue  # one Crosswalk sent from PartsLedger: not an order to bring back
            yield ErpPurchaseOrder(
                id=str(order["id"]), number=str(order.get("number") or ""),
                changed_at=datetime.fromisoformat(order["lastModifiedDateTime"]),
                job_number=str(order.get(field_name) or "").strip(),
                vendor=str(order.get("vendorName") or order.get("vendorNumber") or ""),
                lines=tuple(
                    ErpPurchaseOrderLine(
                        id=str(line["id"]), description=str(line.get("description") or ""),
                        quantity=Decimal(str(line.get("quantity") or "0")),
                        unit_cost=Decimal(str(line.get("directUnitCost") or "0")),
                        item=str(line.get("lineObjectNumber") or ""),
                    )
                    for line in lines
                    if str(line.get("lineType", "Item")) != "Comment"
                ),
            )  # fmt: skip

    # --- invoices -------------------------------------------------------------------------------

    def preview_invoice(self, *, plan: InvoicePlan, key: str) -> list[dict[str, Any]]:
        """The requests post_invoice sends, in order; nothing is sent (the company's id is
        shown as configured when only its name is known)."""
        if plan.total < ZERO:
            raise self._negative_invoice(plan)
        company = self._preview_company()
        operations = self._invoice_operations(plan, key, self._customer_number(plan), company)
        batch = batch_request([op.as_batch() for op in operations],
                              what=f"create invoice {plan.document_number} ({key})")  # fmt: skip
        return [*self._preview_customer(plan, company), batch,
                *self._preview_post(company, "salesInvoices")]  # fmt: skip

    def _preview_customer(self, plan: InvoicePlan, company: str) -> list[dict[str, Any]]:
        """The requests `_customer` sends: the lookup, and the create when the connection may."""
        number = self._customer_number(plan)
        requests: list[dict[str, Any]] = [
            {"method": "GET", "url": f"{company}/customers",
             "params": {"$filter": f"number eq {odata_literal(number)}"},
             "purpose": "is the customer there?"},
        ]  # fmt: skip
        if self.settings.create_customers and plan.customer_dimensions:
            defaults = [
                Operation(str(index + 2), "POST", "$1/defaultDimensions", self._default_dimension(
                    f"<id of dimension {code}>", f"<id of {code} value {value}>"), ["1"])
                for index, (code, value) in enumerate(sorted(plan.customer_dimensions.items()))
            ]  # fmt: skip
            operations = [Operation("1", "POST", f"{company}/customers",
                                    self._customer_body(plan)), *defaults]  # fmt: skip
            batch = batch_request(
                [op.as_batch() for op in operations], what=f"create customer {number}"
            )
            requests.append({**batch, "purpose": "only when the lookup found nothing; the "
                             "dimension and value ids are looked up first"})  # fmt: skip
        elif self.settings.create_customers:
            requests.append({"method": "POST", "url": f"{company}/customers",
                             "body": self._customer_body(plan),
                             "purpose": "only when the lookup found nothing"})  # fmt: skip
        return requests

    def _preview_post(self, company: str, entity_set: str) -> list[dict[str, Any]]:
        # `_post`, by the connection's post policy: the new draft posted, then read back.
        if self.settings.post_policy != "post":
            return []
        return [{"method": "POST", "url": f"{company}/{entity_set}(<id>)/Microsoft.NAV.post",
                 "purpose": "post the new draft"},
                {"method": "GET", "url": f"{company}/{entity_set}(<id>)",
                 "purpose": "read it back for its posted number"}]  # fmt: skip

    def _preview_company(self) -> str:
        # The company's id as configured, or a placeholder when only its name is known.
        if self.settings.company_id:
            return f"companies({self.settings.company_id})"
        return f"companies(<id of {self.settings.company_name}>)"

    def post_invoice(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        if plan.total < ZERO:
            raise self._negative_invoice(plan)
        customer = self._customer(plan)
        company = self.api.company_path()
        operations = self._invoice_operations(plan, key, customer["number"], company)
        answers = self.api.batch(
            [op.as_batch() for op in operations],
            what=f"create invoice {plan.document_number} ({key})",
        )
        invoice = answers[0].body
        if self.settings.post_policy == "post":
            return self._post("salesInvoices", invoice, key)
        return self._document("salesInvoices", invoice)

    def _negative_invoice(self, plan: InvoicePlan) -> ConnectorError:
        return ConnectorError(
            f"Invoice {plan.document_number} totals {plan.total}: Business Central does not "
            "post a negative invoice. Issue it as a credit memo in ServiceTrade.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip

    def _invoice_operations(
        self, plan: InvoicePlan, key: str, customer_number: str, company: str
    ) -> list[Operation]:
        header: dict[str, Any] = {
            "customerNumber": customer_number,
            "externalDocumentNumber": key,
            "invoiceDate": plan.posting_date.isoformat(),
            "postingDate": plan.posting_date.isoformat(),
        }
        if plan.currency and plan.currency != self.settings.local_currency:
            header["currencyCode"] = plan.currency
        return self._document_operations(
            plan, f"{company}/salesInvoices", header, "salesInvoiceLines", list(plan.lines)
        )

    def _document_operations(
        self,
        plan: InvoicePlan,
        url: str,
        header: dict[str, Any],
        line_set: str,
        plan_lines: list[PlanLine],
    ) -> list[Operation]:
        operations = [Operation("1", "POST", url, header)]
        lines = [line for line in plan_lines if line.amount != ZERO]
        if not lines:
            raise ConnectorError(
                f"Invoice {plan.document_number}: an invoice whose every amount is zero cannot be "
                "posted.",
                category=FailureCategory.VALUE, transient=False,
            )  # fmt: skip
        for line in lines:
            line_with_dimensions(operations, line_set, self._line_body(line),
                                 _dimensions(line).items())  # fmt: skip
        return operations

    def _line_body(self, line: PlanLine) -> dict[str, Any]:
        # Quantity ±1 at the line's amount: the amount is exact to the cent and its sign says
        # which side (a negative line, e.g. a discount, debits revenue).
        body: dict[str, Any] = {
            "lineType": "Account",
            "lineObjectNumber": line.account,
            "description": line.description[:DESCRIPTION_LENGTH],
            "quantity": Decimal(1) if line.amount > ZERO else Decimal(-1),
            "unitPrice": abs(line.amount),
        }
        if self.settings.line_tax_code:
            body["taxCode"] = self.settings.line_tax_code
        return body

    # --- credit memos ---------------------------------------------------------------------------

    def post_credit_memo(self, *, original_id: str, key: str, posting_date: date) -> ErpDocument:
        company = self.api.company_path()
        original = self.api.call(
            "GET", f"{company}/salesInvoices({original_id})",
            params={"$expand": "salesInvoiceLines($expand=dimensionSetLines)"},
            what=f"read the invoice to credit ({key})",
        ).body  # fmt: skip
        status = original.get("status")
        if status in UNPOSTED_STATUSES:
            raise ConnectorError(
                f"Invoice {original.get('number')} is still a draft in Business Central: it "
                "cannot be credited. Delete the draft in Business Central, or post it, then retry.",
                category=FailureCategory.PREREQUISITE, transient=False,
            )  # fmt: skip
        if status in ("Canceled", "Corrective"):
            raise ConnectorError(
                f"Invoice {original.get('number')} is already cancelled in Business Central; "
                "there is nothing left to credit.",
                category=FailureCategory.VALUE, transient=False,
            )  # fmt: skip
        header = {
            "customerNumber": original["customerNumber"],
            "externalDocumentNumber": key,
            "creditMemoDate": posting_date.isoformat(),
            "postingDate": posting_date.isoformat(),
            "invoiceId": original_id,
        }
        # In the invoice's currency, as Business Central holds it (blank or the local currency's
        # code: local), or the memo would be in local currency and not offset the invoice.
        currency = str(original.get("currencyCode") or "")
        if currency and currency != self.settings.local_currency:
            header["currencyCode"] = currency
        operations = [Operation("1", "POST", f"{company}/salesCreditMemos", header)]
        for line in original.get("salesInvoiceLines", []):
            if line.get("lineType") == "Comment":
                continue
            body = {name: line[name] for name in _MIRRORED_LINE_FIELDS if line.get(name) not in
                    (None, "")}  # fmt: skip
            dimensions = [(item["code"], item["valueCode"])
                          for item in line.get("dimensionSetLines", [])]  # fmt: skip
            line_with_dimensions(operations, "salesCreditMemoLines", body, dimensions)
        answers = self.api.batch(
            [op.as_batch() for op in operations],
            what=f"create the credit memo for invoice {original.get('number')} ({key})",
        )
        memo = answers[0].body
        if self.settings.post_policy == "post":
            return self._post("salesCreditMemos", memo, key)
        return self._document("salesCreditMemos", memo)

    def post_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        """A sales credit memo applied to no invoice, its lines the plan's lines with the sign
        turned (a credited revenue line is a positive credit memo line)."""
        customer = self._customer(plan)
        company = self.api.company_path()
        operations = self._credit_memo_operations(plan, key, customer["number"], company)
        answers = self.api.batch(
            [op.as_batch() for op in operations],
            what=f"create credit memo {plan.document_number} ({key})",
        )
        memo = answers[0].body
        if self.settings.post_policy == "post":
            return self._post("salesCreditMemos", memo, key)
        return self._document("salesCreditMemos", memo)

    def preview_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> list[dict[str, Any]]:
        """The requests post_source_credit_memo sends; nothing is sent."""
        company = self._preview_company()
        customer = self._preview_customer(plan, company)
        operations = self._credit_memo_operations(plan, key, self._customer_number(plan), company)
        batch = batch_request(
            [op.as_batch() for op in operations],
            what=f"create credit memo {plan.document_number} ({key})",
        )
        return [*customer, batch, *self._preview_post(company, "salesCreditMemos")]

    def _credit_memo_operations(
        self, plan: InvoicePlan, key: str, customer_number: str, company: str
    ) -> list[Operation]:
        """A credit issued in the source: the plan's lines with the sign turned (a credited
        revenue line is a positive credit memo line), applied to no invoice."""
        header: dict[str, Any] = {
            "customerNumber": customer_number,
            "externalDocumentNumber": key,
            "creditMemoDate": plan.posting_date.isoformat(),
            "postingDate": plan.posting_date.isoformat(),
        }
        if plan.currency and plan.currency != self.settings.local_currency:
            header["currencyCode"] = plan.currency
        turned = [line._replace(amount=-line.amount) for line in plan.lines]
        return self._document_operations(
            plan, f"{company}/salesCreditMemos", header, "salesCreditMemoLines", turned
        )

    # --- time -----------------------------------------------------------------------------------

    def post_time_entries(self, *, plan: TimePlan, key: str) -> ErpDocument:
        self._check_time_entries()
        company = self.api.company_path()
        for job_number in _projects_of(plan):
            self._project(company, job_number)
        new = self._time_entries_missing(company, plan)
        groups = [self._time_operations(company, entry) for entry in new]
        for batch in _time_batches(groups):
            self.api.batch(batch, what=_time_what(plan, key))
        count = len(plan.entries)
        return ErpDocument(id=key, number=f"{count} time entries", url="")

    def preview_time_entries(self, *, plan: TimePlan, key: str) -> list[dict[str, Any]]:
        """The requests post_time_entries sends for a week Business Central has none of yet;
        nothing is sent."""
        self._check_time_entries()
        company = self._preview_company()
        requests: list[dict[str, Any]] = []
        for number in _projects_of(plan):
            requests.append({"method": "GET", "url": f"{company}/projects",
                             "params": {"$filter": f"number eq {odata_literal(number)}"},
                             "purpose": "is the project there?"})  # fmt: skip
            if self.settings.create_projects:
                requests.append({"method": "POST", "url": f"{company}/projects",
                                 "body": _project_body(number),
                                 "purpose": "only when the lookup found nothing"})  # fmt: skip
        query = _time_entries_query(plan)
        if query is not None:
            requests.append({"method": "GET", "url": f"{company}/timeRegistrationEntries",
                             "params": query, "purpose": "the entries already there (by date, "
                             "project and hours) are not sent again"})  # fmt: skip
        groups = [self._time_operations(company, entry) for entry in plan.entries]
        return requests + [batch_request(batch, what=_time_what(plan, key))
                           for batch in _time_batches(groups)]  # fmt: skip

    def _check_time_entries(self) -> None:
        if self.settings.time_entries != "time_registration":
            raise ConnectorError(
                f"time_entries {self.settings.time_entries!r} is not supported: API v2.0 journal "
                "lines take G/L amounts, not hours. Use 'time_registration'.",
                category=FailureCategory.VALUE, transient=False,
            )  # fmt: skip

    def _time_entries_missing(self, company: str, plan: TimePlan) -> list[TimePlanEntry]:
        """The plan's entries Business Central does not have yet, matched by date, project and
        hours (the page has no field to carry our key)."""
        query = _time_entries_query(plan)
        if query is None:
            return []
        existing = Counter(
            _time_signature(row.get("date", ""), row.get("jobNumber", ""), row.get("quantity"))
            for row in self.api.get_all(
                f"{company}/timeRegistrationEntries", params=query,
                what=f"read the time entries of {plan.employee}",
            )
        )  # fmt: skip
        missing = []
        for entry in plan.entries:
            signature = _time_signature(entry.work_date, entry.job_number, entry.hours)
            if existing[signature] > 0:
                existing[signature] -= 1
            else:
                missing.append(entry)
        return missing

    def _time_operations(self, company: str, entry: TimePlanEntry) -> list[Operation]:
        body: dict[str, Any] = {
            "employeeNumber": entry.employee,
            "date": entry.work_date,
            "quantity": entry.hours,
        }
        if entry.job_number:
            body["jobNumber"] = entry.job_number
            if self.settings.job_task_number:
                body["jobTaskNumber"] = self.settings.job_task_number
        operations = [Operation("1", "POST", f"{company}/timeRegistrationEntries", body)]
        for source, dimension in sorted(self.settings.time_dimensions.items()):
            value = str(getattr(entry, source, "") or "")
            if value:
                operations.append(Operation(
                    str(len(operations) + 1), "POST", "$1/dimensionSetLines",
                    {"code": dimension, "valueCode": value}, ["1"],
                ))  # fmt: skip
        return operations

    def _project(self, company: str, number: str) -> None:
        found = list(self.api.get_all(
            f"{company}/projects", params={"$filter": f"number eq {odata_literal(number)}"},
            what=f"look up project {number}",
        ))  # fmt: skip
        if found:
            return
        if not self.settings.create_projects:
            raise ConnectorError(
                f"Project {number} does not exist in Business Central. Create it there (or allow "
                "Crosswalk to create projects); the record is then sent again by itself.",
                category=FailureCategory.PREREQUISITE, transient=False,
                missing=f"PROJECT:{number}",
            )  # fmt: skip
        self._create_or_find(
            f"{company}/projects", _project_body(number), what=f"create project {number}"
        )

    # --- job costs and purchases ----------------------------------------------------------------

    def find_posting(self, *, kind: str, key: str) -> ErpDocument | None:
        """A journal by its lines (still in the journal) or its G/L entries (once posted); a
        purchase invoice by `vendorInvoiceNumber`, posted now when the policy says so."""
        company = self.api.company_path()
        if kind == "PURCHASE_INVOICE":
            rows = list(self.api.get_all(
                f"{company}/purchaseInvoices",
                params={"$filter": f"vendorInvoiceNumber eq {odata_literal(key)}"},
                what=f"look up {key}",
            ))  # fmt: skip
            if not rows:
                return None
            if self.settings.post_policy == "post" and rows[0].get("status") == "Draft":
                return self._post("purchaseInvoices", rows[0], key)
            return self._document("purchaseInvoices", rows[0])
        journal = self._journal(company)
        lines = list(self.api.get_all(
            f"{company}/journals({journal['id']})/journalLines",
            params={"$filter": f"externalDocumentNumber eq {odata_literal(key)}"},
            what=f"look up {key} in journal {journal.get('code', '')}",
        ))  # fmt: skip
        if lines:
            return ErpDocument(id=str(lines[0]["id"]), number=f"{journal.get('code', '')} "
                               f"{_document_number(key)} ({len(lines)} lines)")  # fmt: skip
        entries = list(self.api.get_all(
            f"{company}/generalLedgerEntries",
            params={"$filter": f"documentNumber eq {odata_literal(_document_number(key))}"},
            what=f"look up the G/L entries of {key}",
        ))  # fmt: skip
        if entries:
            return ErpDocument(id=str(entries[0]["id"]), number=f"{_document_number(key)} (posted)")
        return None

    def post_journal(self, *, plan: JournalPlan, key: str) -> ErpDocument:
        company = self.api.company_path()
        journal = self._journal(company)
        operations = self._journal_operations(plan, key, f"{company}/journals({journal['id']})")
        answers = self.api.batch(_renumbered(operations), what=_journal_what(plan, key))
        first = answers[0].body or {}
        return ErpDocument(id=str(first.get("id", key)), number=f"{journal.get('code', '')} "
                           f"{_document_number(key)} ({len(plan.pairs)} lines)")  # fmt: skip

    def _journal_operations(
        self, plan: JournalPlan, key: str, journal_path: str
    ) -> list[list[Operation]]:
        groups = []
        for pair in plan.pairs:
            body = {
                "accountType": "G/L Account", "accountNumber": pair.debit_account,
                "postingDate": plan.posting_date.isoformat(),
                "documentNumber": _document_number(key), "externalDocumentNumber": key,
                "amount": pair.amount, "description": pair.description[:DESCRIPTION_LENGTH],
                "balanceAccountType": "G/L Account", "balancingAccountNumber": pair.credit_account,
            }  # fmt: skip
            group = [Operation("1", "POST", f"{journal_path}/journalLines", body)]
            for code, value in sorted(pair.dimensions.items()):
                group.append(Operation(str(len(group) + 1), "POST", "$1/dimensionSetLines",
                                       {"code": code, "valueCode": value}, ["1"]))  # fmt: skip
            groups.append(group)
        return groups

    def preview_journal(self, *, plan: JournalPlan, key: str) -> list[dict[str, Any]]:
        """The requests post_journal sends; nothing is sent."""
        code = self._journal_code()
        company = self._preview_company()
        journal_path = f"{company}/journals(<id of journal {code}>)"
        operations = self._journal_operations(plan, key, journal_path)
        return [
            {"method": "GET", "url": f"{company}/journals",
             "params": {"$filter": f"code eq {odata_literal(code)}"},
             "purpose": "the cost journal's id"},
            batch_request(_renumbered(operations), what=_journal_what(plan, key)),
        ]  # fmt: skip

    def _journal_code(self) -> str:
        code = self.settings.cost_journal
        if not code:
            raise ConnectorError(
                f"{self.connection.name} has no cost journal: set cost_journal (a general journal "
                "batch code) in its Business Central settings.",
                category=FailureCategory.PREREQUISITE, transient=False,
            )  # fmt: skip
        return code

    def _journal(self, company: str) -> dict[str, Any]:
        code = self._journal_code()
        rows = list(self.api.get_all(
            f"{company}/journals", params={"$filter": f"code eq {odata_literal(code)}"},
            what=f"look up journal {code}",
        ))  # fmt: skip
        if not rows:
            raise ConnectorError(
                f"Journal {code} does not exist in Business Central: create the general journal "
                "batch there, then retry.",
                category=FailureCategory.PREREQUISITE, transient=False,
            )  # fmt: skip
        return rows[0]

    def post_purchase(self, *, plan: PurchasePlan, key: str) -> ErpDocument:
        vendor = self._vendor(plan)
        company = self.api.company_path()
        operations = self._purchase_operations(plan, key, vendor["number"], company)
        answers = self.api.batch([op.as_batch() for op in operations],
                                 what=_purchase_what(plan, key))  # fmt: skip
        invoice = answers[0].body
        if self.settings.post_policy == "post":
            return self._post("purchaseInvoices", invoice, key)
        return self._document("purchaseInvoices", invoice)

    def preview_purchase(self, *, plan: PurchasePlan, key: str) -> list[dict[str, Any]]:
        """The requests post_purchase sends; nothing is sent."""
        company = self._preview_company()
        operations = self._purchase_operations(plan, key, self.vendor_number(plan.vendor_ref),
                                               company)  # fmt: skip
        return [
            *self._preview_vendor(plan, company),
            batch_request([op.as_batch() for op in operations], what=_purchase_what(plan, key)),
            *self._preview_post(company, "purchaseInvoices"),
        ]

    def _purchase_operations(
        self, plan: PurchasePlan, key: str, vendor_number: str, company: str
    ) -> list[Operation]:
        """A purchase invoice's header and its lines (±1 at the line's amount, like sales
        lines), with their dimensions; zero lines are left out."""
        header: dict[str, Any] = {
            "vendorNumber": vendor_number, "vendorInvoiceNumber": key,
            "invoiceDate": plan.posting_date.isoformat(),
            "postingDate": plan.posting_date.isoformat(),
        }  # fmt: skip
        if plan.due_date:
            header["dueDate"] = plan.due_date.isoformat()
        if plan.currency and plan.currency != self.settings.local_currency:
            header["currencyCode"] = plan.currency
        operations = [Operation("1", "POST", f"{company}/purchaseInvoices", header)]
        for line in plan.lines:
            if line.amount == ZERO:
                continue
            body = {"lineType": "Account", "lineObjectNumber": line.account,
                    "description": line.description[:DESCRIPTION_LENGTH],
                    "quantity": Decimal(1) if line.amount > ZERO else Decimal(-1),
                    "unitCost": abs(line.amount)}  # fmt: skip
            line_with_dimensions(operations, "purchaseInvoiceLines", body,
                                 sorted(line.dimensions.items()))  # fmt: skip
        return operations

    def _preview_vendor(self, plan: PurchasePlan, company: str) -> list[dict[str, Any]]:
        """The requests `_vendor` sends: the lookup, and the create when the connection may."""
        number = self.vendor_number(plan.vendor_ref)
        requests: list[dict[str, Any]] = [
            {"method": "GET", "url": f"{company}/vendors",
             "params": {"$filter": f"number eq {odata_literal(number)}"},
             "purpose": "is the vendor there?"},
        ]  # fmt: skip
        if self.settings.create_vendors:
            requests.append({"method": "POST", "url": f"{company}/vendors",
                             "body": self._vendor_body(plan),
                             "purpose": "only when the lookup found nothing"})  # fmt: skip
        return requests

    def _vendor_body(self, plan: PurchasePlan) -> dict[str, Any]:
        number = self.vendor_number(plan.vendor_ref)
        return {"number": number, "displayName": (plan.vendor_name or number)[:100]}

    def vendor_number(self, vendor_ref: str) -> str:
        """A PartsLedger vendor's number in Business Central: prefix + its id, cut to 20."""
        return f"{self.settings.vendor_number_prefix}{vendor_ref}"[:20]

    def _vendor(self, plan: PurchasePlan) -> dict[str, Any]:
        """The plan's vendor, created first when missing and the connection allows it."""
        number = self.vendor_number(plan.vendor_ref)
        company = self.api.company_path()
        found = list(self.api.get_all(
            f"{company}/vendors", params={"$filter": f"number eq {odata_literal(number)}"},
            what=f"look up vendor {number}",
        ))  # fmt: skip
        if found:
            if not _not_blocked(found[0].get("blocked")):
                raise ConnectorError(
                    f"Vendor {number} ({found[0].get('displayName', '')}) is blocked in Business "
                    "Central. Unblock it there, then retry.",
                    category=FailureCategory.PREREQUISITE, transient=False,
                )  # fmt: skip
            return found[0]
        if not self.settings.create_vendors:
            raise ConnectorError(
                f"Vendor {number} ({plan.vendor_name}) does not exist in Business Central. Create "
                "it there (or allow Crosswalk to create vendors); the record is then sent again "
                "by itself.",
                category=FailureCategory.PREREQUISITE, transient=False,
                missing=f"VENDOR:{number}",
            )  # fmt: skip
        return self._create_or_find(
            f"{company}/vendors", self._vendor_body(plan), what=f"create vendor {number}"
        )

    # --- purchase orders and receipts (purchase_orders.py) --------------------------------------

    def find_purchase_order(self, *, plan: PurchasePlan, key: str) -> ErpDocument | None:
        order = purchase_orders.order_by_key(
            self, vendor_number=self.vendor_number(plan.vendor_ref),
            order_date=plan.posting_date.isoformat(), key=key,
        )  # fmt: skip
        return None if order is None else purchase_orders.order_document(self, order)

    def post_purchase_order(self, *, plan: PurchasePlan, key: str) -> ErpDocument:
        vendor = self._vendor(plan)
        company = self.api.company_path()
        operations = purchase_orders.order_operations(self, plan, key, vendor["number"], company)
        answers = self.api.batch([op.as_batch() for op in operations],
                                 what=_order_what(plan, key))  # fmt: skip
        return purchase_orders.order_document(self, answers[0].body)

    def preview_purchase_order(self, *, plan: PurchasePlan, key: str) -> list[dict[str, Any]]:
        """The requests post_purchase_order sends, in order; nothing is sent."""
        company = self._preview_company()
        number = self.vendor_number(plan.vendor_ref)
        requests = self._preview_vendor(plan, company)
        params = purchase_orders.order_lookup_params(
            vendor_number=number, order_date=plan.posting_date.isoformat()
        )
        requests.append({"method": "GET", "url": f"{company}/purchaseOrders", "params": params,
                         "purpose": "only on a retry whose earlier answer was lost: a line "
                                    f"whose description2 is {key} means the order is "
                                    "there"})  # fmt: skip
        operations = purchase_orders.order_operations(self, plan, key, number, company)
        requests.append(batch_request([op.as_batch() for op in operations],
                                      what=_order_what(plan, key)))  # fmt: skip
        return requests

    def post_receipt(self, *, plan: ReceiptPlan, key: str) -> tuple[ErpDocument, bool]:
        return purchase_orders.receive(self, plan, key)

    def preview_receipt(self, *, plan: ReceiptPlan, key: str) -> list[dict[str, Any]]:
        """The requests post_receipt sends when the order shows the receipt not received yet;
        nothing is sent."""
        return purchase_orders.preview_receive(self, plan, self._preview_company())

    # --- two-way master data (master_data.py) --------------------------------------------------

    def master_data_update(
        self, *, entity: str, source_ref: str, erp_ref: str, values: dict[str, Any]
    ) -> None:
        master_data.customer_update(self, entity=entity, source_ref=source_ref, erp_ref=erp_ref,
                                    values=values)  # fmt: skip

    def master_data_changes(self, *, since: datetime | None) -> list[master_data.CustomerChange]:
        return list(master_data.customer_changes(self, since=since))

    def _customer_number(self, plan: InvoicePlan) -> str:
        return f"{self.settings.customer_number_prefix}{plan.customer_ref}"

    def _customer_body(self, plan: InvoicePlan) -> dict[str, Any]:
        return {"number": self._customer_number(plan), "displayName": plan.customer_name[:100]}

    def _customer(self, plan: InvoicePlan) -> dict[str, Any]:
        """The invoice's customer, created first when missing and the connection allows it."""
        number = self._customer_number(plan)
        company = self.api.company_path()
        found = list(self.api.get_all(
            f"{company}/customers", params={"$filter": f"number eq {odata_literal(number)}"},
            what=f"look up customer {number}",
        ))  # fmt: skip
        if found:
            customer = found[0]
            if not _not_blocked(customer.get("blocked")):
                raise ConnectorError(
                    f"Customer {number} ({customer.get('displayName', '')}) is blocked in Business "
                    "Central. Unblock it there, then retry.",
                    category=FailureCategory.PREREQUISITE, transient=False,
                )  # fmt: skip
            return customer
        if not self.settings.create_customers:
            raise ConnectorError(
                f"Customer {number} ({plan.customer_name}) does not exist in Business Central. "
                "Create it there (or allow Crosswalk to create customers); the record is then "
                "sent again by itself.",
                category=FailureCategory.PREREQUISITE, transient=False,
                missing=f"CUSTOMER:{number}",
            )  # fmt: skip
        defaults = [
            ("defaultDimensions", self._default_dimension(*self._dimension_ids(company, *pair)))
            for pair in sorted(plan.customer_dimensions.items())
        ]
        return self._create_or_find(
            f"{company}/customers", self._customer_body(plan), what=f"create customer {number}",
            parts=defaults,
        )  # fmt: skip

    def _default_dimension(self, dimension_id: str, value_id: str) -> dict[str, Any]:
        """A default dimension of a customer: the value its documents get unless they say
        otherwise, checked at posting as `customer_dimension_posting` says."""
        body = {"dimensionId": dimension_id, "dimensionValueId": value_id}
        posting = self.settings.customer_dimension_posting
        if posting:
            if posting not in POSTING_VALIDATIONS:
                raise ConnectorError(
                    f"customer_dimension_posting must be empty, {' or '.join(POSTING_VALIDATIONS)}"
                    f", not {posting!r}: fix the connection's Business Central settings.",
                    category=FailureCategory.VALUE, transient=False,
                )  # fmt: skip
            body["postingValidation"] = POSTING_VALIDATIONS[posting]
        return body

    def _dimension_ids(self, company: str, code: str, value: str) -> tuple[str, str]:
        """The ids of dimension `code` and of its value `value` (a default dimension is written
        by ids: its codes are read-only)."""
        dimensions = list(self.api.get_all(
            f"{company}/dimensions", params={"$filter": f"code eq {odata_literal(code)}"},
            what=f"look up dimension {code}",
        ))  # fmt: skip
        values = dimensions and list(self.api.get_all(
            f"{company}/dimensions({dimensions[0]['id']})/dimensionValues",
            params={"$filter": f"code eq {odata_literal(value)}"},
            what=f"look up {code} value {value}",
        ))  # fmt: skip
        if not values:
            raise ConnectorError(
                f"Business Central has no {code} value {value} to give the new customer as its "
                "default dimension. Create it there (or change the rules), then retry.",
                category=FailureCategory.MISSING_REFERENCE, transient=False,
            )  # fmt: skip
        return str(dimensions[0]["id"]), str(values[0]["id"])

    def _create_or_find(
        self,
        url: str,
        body: dict[str, Any],
        *,
        what: str,
        parts: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Create a master record by its `number`, with records of its `parts` (e.g. default
        dimensions) in the same snapshot `$batch`: all of it or none of it. When Business
        Central says the number exists (another worker created it a moment ago, or an earlier
        attempt whose answer was lost did), the existing record is read and used instead."""
        try:
            if parts:
                operations = [Operation("1", "POST", url, body)] + [
                    Operation(str(index + 2), "POST", f"$1/{part}", part_body, ["1"])
                    for index, (part, part_body) in enumerate(parts)
                ]
                answers = self.api.batch([op.as_batch() for op in operations], what=what)
                first: dict[str, Any] = answers[0].body
                return first
            created: dict[str, Any] = self.api.call(
                "POST", url, body=body, what=what, creates=True
            ).body
            return created
        except ConnectorError as error:
            if error.category != FailureCategory.DUPLICATE:
                raise
            found = list(self.api.get_all(
                url, params={"$filter": f"number eq {odata_literal(body['number'])}"}, what=what,
            ))  # fmt: skip
            if not found:
                raise
            return found[0]

    def _by_key(self, entity_set: str, key: str) -> dict[str, Any] | None:
        rows = list(self.api.get_all(
            f"{self.api.company_path()}/{entity_set}",
            params={"$filter": f"externalDocumentNumber eq {odata_literal(key)}"},
            what=f"look up {key}",
        ))  # fmt: skip
        return rows[0] if rows else None

    def _post(self, entity_set: str, document: dict[str, Any], key: str) -> ErpDocument:
        """Post a draft, then read it back: posting gives it its final number."""
        path = f"{self.api.company_path()}/{entity_set}({document['id']})"
        self.api.call("POST", f"{path}/Microsoft.NAV.post", what=f"post {key}", creates=True)
        posted = self.api.call("GET", path, what=f"read {key} after posting").body
        return self._document(entity_set, posted)

    def _document(self, entity_set: str, document: dict[str, Any]) -> ErpDocument:
        draft = document.get("status") in UNPOSTED_STATUSES
        number = str(document.get("number", ""))
        url = self.api.deep_link(page=PAGES[(entity_set, draft)], number=number)
        return ErpDocument(id=str(document["id"]), number=number, url=url)


_MIRRORED_LINE_FIELDS = ("lineType", "lineObjectNumber", "description", "quantity", "unitPrice",
                         "taxCode")  # fmt: skip


def _dimensions(line: PlanLine) -> dict[str, str]:
    return {
        name.removeprefix("dimension:"): coding.value
        for name, coding in line.codings.items()
        if name.startswith("dimension:") and coding.value
    }


def _document_number(key: str) -> str:
    """The key as a journal line's documentNumber: itself when it fits, else a stable digest."""
    if len(key) <= DOCUMENT_NUMBER_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{KEY_PREFIX}{digest[: DOCUMENT_NUMBER_LENGTH - len(KEY_PREFIX)]}".upper()


def _not_blocked(value: Any) -> bool:
    # A blank option reads " ", or "_x0020_" where Business Central encodes enum names (API
    # schema version 2.0, the default since 2024 wave 1).
    return value in (None, "", " ", "_x0020_", False)


def _time_signature(work_date: str, job_number: str, hours: Any) -> tuple[str, str, Decimal]:
    return (work_date, job_number or "", Decimal(str(hours or 0)).normalize())


def _projects_of(plan: TimePlan) -> list[str]:
    """The projects a week's entries are booked on, each checked (or created) first."""
    return sorted({entry.job_number for entry in plan.entries if entry.job_number})


def _project_body(number: str) -> dict[str, Any]:
    return {"number": number, "displayName": number}


def _time_entries_query(plan: TimePlan) -> dict[str, str] | None:
    """The read of the employee's entries over the plan's dates (None for a week without any)."""
    dates = [date.fromisoformat(entry.work_date) for entry in plan.entries]
    if not dates:
        return None
    first, last = min(dates), max(dates) + timedelta(days=1)
    return {"$filter": f"employeeNumber eq {odata_literal(plan.employee)} and "
                       f"date ge {first.isoformat()} and date lt {last.isoformat()}"}  # fmt: skip


def _time_batches(groups: list[list[Operation]]) -> list[list[dict[str, Any]]]:
    """The entries' operations in as few `$batch`es as fit. Each is all or nothing; entries are
    matched again on a retry, so a week larger than one batch is safe in several."""
    batches: list[list[dict[str, Any]]] = []
    chunk: list[list[Operation]] = []
    for group in groups:
        if chunk and sum(len(item) for item in chunk) + len(group) > MAX_BATCH_OPERATIONS:
            batches.append(_renumbered(chunk))
            chunk = []
        chunk.append(group)
    if chunk:
        batches.append(_renumbered(chunk))
    return batches


def _time_what(plan: TimePlan, key: str) -> str:
    return (
        f"create the time entries of {plan.technician} for the week of {plan.week_starting} ({key})"
    )


def _journal_what(plan: JournalPlan, key: str) -> str:
    return f"create journal lines {plan.description} ({key})"


def _purchase_what(plan: PurchasePlan, key: str) -> str:
    return f"create purchase invoice {plan.document_number} ({key})"


def _order_what(plan: PurchasePlan, key: str) -> str:
    return f"create purchase order {plan.document_number} ({key})"


def _renumbered(groups: list[list[Operation]]) -> list[dict[str, Any]]:
    """Several entries' operations in one batch: ids made unique, references kept."""
    requests: list[dict[str, Any]] = []
    for group in groups:
        offset = len(requests)
        for operation in group:
            moved = int(operation.id) + offset
            url = operation.url
            if url.startswith("$"):
                reference, _, rest = url[1:].partition("/")
                url = f"${int(reference) + offset}/{rest}"
            depends = [str(int(item) + offset) for item in operation.depends_on]
            requests.append(
                Operation(str(moved), operation.method, url, operation.body, depends).as_batch()
            )
    return requests
