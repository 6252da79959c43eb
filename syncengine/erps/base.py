"""The connector interface every ERP target implements, kept deliberately small.

A connector turns a resolved posting plan into one ERP document, and finds that document again by
the idempotency key it wrote into it. The engine decides when to call which; the connector never
touches sync records. To add an ERP: a folder `syncengine/erps/<erp>/` with a `client.py` whose
class implements `Connector`, registered in `syncengine.erps.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from mappings.resolve import InvoicePlan
    from mappings.resolve_cost import JournalPlan, PurchasePlan
    from mappings.resolve_time import TimePlan


@dataclass(frozen=True)
class CatalogItem:
    """One value of one ERP list as a connector reads it (kind: `mappings.ruleset.CatalogKind`)."""

    kind: str
    code: str
    name: str = ""
    parent: str = ""
    active: bool = True
    accepts_postings: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErpDocument:
    id: str
    number: str
    url: str = ""


@dataclass(frozen=True)
class ErpDocumentSummary:
    """A document the ERP holds that carries a Crosswalk key, for reconciliation."""

    key: str
    id: str
    number: str
    kind: str  # INVOICE or CREDIT_MEMO
    amount: Decimal
    posting_date: date


@dataclass(frozen=True)
class ErpPayment:
    """One payment application the ERP holds against an invoice, as `Connector.payments` reads it.

    The invoice is named by whatever the ERP gives: our key (its external document number), the
    ERP document id, or its number. `amount` is what this entry applies to the invoice: positive
    for a payment, negative for a reversal, a void or a returned (NSF) payment. `changed_at` is
    when the ERP last changed the entry; the caller keeps the newest one as its cursor.
    """

    id: str
    amount: Decimal
    payment_date: date
    changed_at: datetime
    invoice_key: str = ""
    invoice_id: str = ""
    invoice_number: str = ""
    reason: str = ""  # e.g. "NSF", "Reversal"; empty for an ordinary payment


@dataclass(frozen=True)
class ErpPurchaseOrderLine:
    id: str
    description: str
    quantity: Decimal
    unit_cost: Decimal
    item: str = ""  # the ERP's item or account number, when the line has one


@dataclass(frozen=True)
class ErpPurchaseOrder:
    """A purchase order as `Connector.purchase_orders` reads it. `job_number` is the ServiceTrade
    job number the order carries ("" when it names none); its lines go onto that job."""

    id: str
    number: str
    changed_at: datetime
    job_number: str = ""
    vendor: str = ""
    lines: tuple[ErpPurchaseOrderLine, ...] = ()


@dataclass(frozen=True)
class ReceiptLine:
    """One line of a PartsLedger receipt, as the order line it receives: `position` is that
    line's place in the order as Crosswalk sent it (0-based), `received_before` what the other
    receipts Crosswalk posted against it received, `amount` this receipt's value of the line
    (quantity × unit cost, rounded half-up to the cent)."""

    position: int
    quantity: Decimal
    received_before: Decimal
    amount: Decimal


@dataclass(frozen=True)
class ReceiptPlan:
    """A receipt against a purchase order Crosswalk posted (keyed `order_key`, for vendor
    `vendor_ref` on `order_date`, `order_lines` lines), posted on `posting_date`."""

    document_number: str
    posting_date: date
    order_key: str
    order_number: str
    vendor_ref: str
    order_date: date
    order_lines: int
    lines: tuple[ReceiptLine, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


class FailureCategory:
    AUTH = "AUTH"
    CONNECTION = "CONNECTION"
    RATE_LIMIT = "RATE_LIMIT"
    VALUE = "VALUE"
    MISSING_REFERENCE = "MISSING_REFERENCE"
    DUPLICATE = "DUPLICATE"
    PREREQUISITE = "PREREQUISITE"
    INTERNAL = "INTERNAL"


class ConnectorError(Exception):
    """An ERP call failed. `transient` errors are retried with backoff; the rest need a person.

    `outcome_unknown` means the ERP may have committed (a timeout after sending): the next attempt
    must look the document up before creating it.
    """

    def __init__(
        self,
        message: str,
        *,
        category: str,
        transient: bool,
        outcome_unknown: bool = False,
        retry_after_seconds: int | None = None,
        throttled_locally: bool = False,
        missing: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.category = category
        self.transient = transient
        self.outcome_unknown = outcome_unknown
        self.retry_after_seconds = retry_after_seconds
        # Crosswalk's own rate budget said wait: the ERP was never called.
        self.throttled_locally = throttled_locally
        # A PREREQUISITE the ERP lacks, as "<CATALOG KIND>:<code>" (e.g. "CUSTOMER:C-501"): the
        # record waits, blocked, and is sent again once a catalog read finds it.
        self.missing = missing


class Connector(Protocol):
    def check(self) -> str:
        """Reach the ERP with the saved credentials and say what was found ("company CRONUS").

        Raises ConnectorError when it cannot; the console's test-connection button calls it.
        """
        ...

    def catalog_lists(self, *, changed_since: datetime | None = None) -> list[CatalogItem]:
        """Every list the ERP offers for the rules: accounts, dimensions, tax codes …

        With `changed_since`, at least every value changed after it: a connector that can ask
        the ERP for changes only returns those, one that cannot returns everything. Values
        deleted in the ERP are seen only by a read without it.
        """
        ...

    def find_invoice(self, *, key: str) -> ErpDocument | None: ...

    def post_invoice(self, *, plan: InvoicePlan, key: str) -> ErpDocument: ...

    def post_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        """A credit memo for a credit issued in the source: `plan.total` is negative and its
        lines are signed as in an invoice (a negative line debits revenue); the memo carries
        the positive amounts, applies to no invoice, and is found again by `find_invoice`."""
        ...

    def post_credit_memo(self, *, original_id: str, key: str, posting_date: date) -> ErpDocument:
        """A credit memo offsetting the posted invoice `original_id` exactly, linked to it.

        Found again by `find_invoice(key=...)`, like invoices.
        """
        ...

    def post_time_entries(self, *, plan: TimePlan, key: str) -> ErpDocument:
        """Create the plan's time entries that the ERP does not have yet (each carries its own
        key), so re-sending a week is safe."""
        ...

    def post_journal(self, *, plan: JournalPlan, key: str) -> ErpDocument:
        """A balanced G/L journal (job item costs, inventory adjustments), every line carrying
        `key`; found again by `find_posting(kind="JOURNAL", key=...)`."""
        ...

    def post_purchase(self, *, plan: PurchasePlan, key: str) -> ErpDocument:
        """An AP (purchase) invoice for the plan's vendor, created first when the connection
        allows, else a PREREQUISITE error naming it; found again by `find_posting`."""
        ...

    def find_posting(self, *, kind: str, key: str) -> ErpDocument | None:
        """The journal ("JOURNAL") or purchase invoice ("PURCHASE_INVOICE") carrying `key`."""
        ...

    def list_documents(self) -> Iterable[ErpDocumentSummary]:
        """Every document carrying a Crosswalk key (reconciliation compares them by key)."""
        ...

    # Previews (`manage.py preview_posting`): the requests the post method of the same name
    # would send, in order, sending nothing; built by the code that builds what it sends. A
    # request that depends on an answer (an id, an ETag) shows a placeholder and says when it
    # is sent ("purpose"). An error the post method would raise before sending is raised.

    def preview_invoice(self, *, plan: InvoicePlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_invoice` would send, without sending them."""
        ...

    def preview_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_source_credit_memo` would send, without sending them."""
        ...

    def preview_journal(self, *, plan: JournalPlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_journal` would send, without sending them."""
        ...

    def preview_purchase(self, *, plan: PurchasePlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_purchase` would send, without sending them."""
        ...

    def preview_time_entries(self, *, plan: TimePlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_time_entries` would send for a week the ERP has none of yet."""
        ...

    def payments(self, *, since: datetime | None) -> Iterable[ErpPayment]:
        """Payment applications to invoices changed at or after `since` (every one when None).

        Reading the same entry again is expected: callers recognise it by `id`.
        """
        ...

    def purchase_orders(self, *, since: datetime | None) -> Iterable[ErpPurchaseOrder]:
        """Purchase orders (with their lines) changed at or after `since` (every one when None);
        read-only. Reading one again is expected: callers recognise each line by its id."""
        ...


class ProcurementConnector(Protocol):
    """What a connector offers, besides `Connector`, when its ERP takes PartsLedger purchase
    orders and receipts as documents of their own (Business Central does; the sandbox ledger keeps
    no orders). It names the document kinds it posts in `posted_procurement`
    (`syncengine.models.DocumentKind` values); the engine asks through `procurement_poster`."""

    posted_procurement: frozenset[str]

    def find_purchase_order(self, *, plan: PurchasePlan, key: str) -> ErpDocument | None:
        """The open order carrying `key`, or None."""
        ...

    def post_purchase_order(self, *, plan: PurchasePlan, key: str) -> ErpDocument:
        """An open (unposted) purchase order for the plan's vendor, every line carrying `key`."""
        ...

    def preview_purchase_order(self, *, plan: PurchasePlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_purchase_order` would send, without sending them."""
        ...

    def post_receipt(self, *, plan: ReceiptPlan, key: str) -> tuple[ErpDocument, bool]:
        """Receive the plan's quantities on its order, invoicing nothing; (the order, True) when
        the ERP shows them received already, so a retry never receives twice."""
        ...

    def preview_receipt(self, *, plan: ReceiptPlan, key: str) -> list[dict[str, Any]]:
        """The requests `post_receipt` would send when the ERP shows nothing of it received."""
        ...


def procurement_poster(connector: object, *, kind: str) -> ProcurementConnector | None:
    """The connector, when it posts documents of `kind` (PURCHASE_ORDER, RECEIPT); None when
    they are kept unposted for it. A connector opts in by naming the kinds in
    `posted_procurement`; one that does not (the sandbox ledger) never has to know."""
    if kind in getattr(connector, "posted_procurement", frozenset()):
        return cast(ProcurementConnector, connector)
    return None
