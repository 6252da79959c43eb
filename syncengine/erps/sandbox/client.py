"""The sandbox ledger as a connector: the reference implementation of `Connector`.

It behaves like an ERP reached over the network would: each call is its own transaction (the
engine never holds one across it), the idempotency key lands in the document's external document
number, and `find_invoice` looks it up there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from django.db import DatabaseError, IntegrityError, transaction
from django.db import connection as db
from django.urls import reverse

from mappings.resolve import InvoicePlan
from mappings.resolve_cost import JournalPlan, PurchasePlan
from mappings.resolve_time import TimePlan
from syncengine.erps.base import (
    CatalogItem,
    ConnectorError,
    ErpDocument,
    ErpDocumentSummary,
    ErpPayment,
    ErpPurchaseOrder,
    FailureCategory,
)
from syncengine.erps.sandbox.exchanges import reported
from syncengine.erps.sandbox.invoice_sql import LineRow, invoice_write
from syncengine.erps.sandbox.models import (
    JournalEntry,
    JournalLine,
    LedgerAccount,
    LedgerCustomer,
    LedgerInvoice,
    LedgerListValue,
    LedgerPayment,
    LedgerPosting,
    LedgerTaxCode,
    LedgerTimeEntry,
    LedgerVendor,
    NumberSeries,
)
from syncengine.models import Connection
from syncengine.money import ZERO

# Ids by (connection, account number) and by (connection, ServiceTrade company), remembered by
# every connector of this process: the application never deletes a ledger account or customer,
# so an id read back from the database stays right (tests, whose rows are rolled back, forget
# them between tests).
_ACCOUNT_IDS: dict[tuple[int, str], int] = {}
_CUSTOMER_IDS: dict[tuple[int, str], int] = {}
_IDS_KEPT = 100_000


def _remember(ids: dict[tuple[int, str], int], found: dict[tuple[int, str], int]) -> None:
    if len(ids) + len(found) > _IDS_KEPT:
        ids.clear()
    ids.update(found)


def _forget(connection_id: int) -> None:
    for ids in (_ACCOUNT_IDS, _CUSTOMER_IDS):
        for remembered in [pair for pair in ids if pair[0] == connection_id]:
            del ids[remembered]


class SandboxLedger:
    def __init__(self, *, connection: Connection):
        self.connection = connection
        self._invoice_url = ""

    def check(self) -> str:
        accounts = LedgerAccount.objects.filter(connection=self.connection).count()
        return f"Sandbox ledger with {accounts} accounts"

    def catalog_lists(self, *, changed_since: datetime | None = None) -> list[CatalogItem]:
        # Its lists are in Crosswalk's own database: always read whole.
        items = [
            CatalogItem(
                kind="ACCOUNT",
                code=account.number,
                name=account.name,
                active=account.active,
                accepts_postings=account.direct_posting,
                attributes={"type": account.type},
            )
            for account in LedgerAccount.objects.filter(connection=self.connection)
        ]
        items += [
            CatalogItem(
                kind="TAX_CODE",
                code=tax.code,
                name=f"{tax.rate} %",
                active=tax.active,
                attributes={"rate": str(tax.rate)},
            )
            for tax in LedgerTaxCode.objects.filter(connection=self.connection)
        ]
        items += [
            CatalogItem(
                kind=value.kind,
                code=value.code,
                name=value.name,
                parent=value.parent,
                active=value.active,
            )
            for value in LedgerListValue.objects.filter(connection=self.connection)
        ]
        return items

    def list_documents(self) -> Iterator[ErpDocumentSummary]:
        documents = LedgerInvoice.objects.filter(connection=self.connection).only(
            "pk", "number", "kind", "amount", "posting_date", "external_document_number"
        )
        for document in documents.iterator(chunk_size=2000):
            yield ErpDocumentSummary(
                key=document.external_document_number, id=str(document.pk),
                number=document.number, kind=document.kind, amount=document.amount,
                posting_date=document.posting_date,
            )  # fmt: skip

    def payments(self, *, since: datetime | None) -> Iterator[ErpPayment]:
        """Payments and reversals recorded since `since` (`manage.py ledger pay`)."""
        payments = LedgerPayment.objects.filter(connection=self.connection)
        if since is not None:
            payments = payments.filter(recorded_at__gte=since)
        for payment in payments.select_related("invoice").order_by("recorded_at", "pk"):
            reversal = payment.kind == LedgerPayment.Kind.REVERSAL
            yield ErpPayment(
                id=payment.number, amount=-payment.amount if reversal else payment.amount,
                payment_date=payment.payment_date, changed_at=payment.recorded_at,
                invoice_key=payment.invoice.external_document_number,
                invoice_id=str(payment.invoice_id), invoice_number=payment.invoice.number,
                reason=(payment.reason or "Reversal") if reversal else "",
            )  # fmt: skip

    def purchase_orders(self, *, since: datetime | None) -> Iterator[ErpPurchaseOrder]:
        """The sandbox ledger keeps no purchase orders (PartsLedger orders are kept in Crosswalk,
        not posted), so there are none to read back."""
        return iter(())

    @reported("GET", "invoices")
    def find_invoice(self, *, key: str) -> ErpDocument | None:
        invoice = LedgerInvoice.objects.filter(
            connection=self.connection, external_document_number=key
        ).first()
        return self._document(invoice) if invoice else None

    @reported("POST", "invoices")
    def post_invoice(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        return self._invoice_written(plan=plan, key=key, credit=False)

    @reported("POST", "credit-memos")
    def post_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        """A credit issued in ServiceTrade: the plan's journal entry (revenue debited, receivable
        credited) under a credit memo of the positive amount, applied to no invoice."""
        return self._invoice_written(plan=plan, key=key, credit=True)

    def _invoice_written(self, *, plan: InvoicePlan, key: str, credit: bool) -> ErpDocument:
        """The invoice or credit memo with its journal entry, written whole or refused. A new
        customer is created first, in a transaction of its own: like an ERP, the ledger keeps a
        customer whose first invoice it then refuses."""
        legs = _legs(plan)
        if not legs:
            raise ConnectorError(
                "An invoice whose every amount is zero cannot be posted.",
                category=FailureCategory.VALUE,
                transient=False,
            )
        write = self._invoice_in_one_call if db.vendor == "postgresql" else self._invoice_saved
        try:
            accounts = self._account_ids({leg.account for leg in legs})
            customer_id = self._customer_id(plan)
            try:
                written = write(plan, key, legs, credit, customer_id, accounts)
            except _NoNumberSeries as missing:
                # The connection's first document of a series (nothing was written): the series
                # is created and the invoice goes once more.
                NumberSeries.objects.bulk_create(
                    [NumberSeries(connection=self.connection, prefix=prefix)
                     for prefix in missing.prefixes],
                    ignore_conflicts=True,
                )  # fmt: skip
                written = write(plan, key, legs, credit, customer_id, accounts)
        except DatabaseError as error:
            # Should a remembered id be stale (an account deleted and created again in the
            # admin), the next attempt reads them afresh.
            _forget(self.connection.pk)
            raise self._refusal(key, error) from error
        return self._document_of(*written)

    @reported("POST", "credit-memos")
    def post_credit_memo(self, *, original_id: str, key: str, posting_date: date) -> ErpDocument:
        try:
            with transaction.atomic():
                memo = self._create_credit_memo(original_id, key, posting_date)
        except DatabaseError as error:
            raise self._refusal(key, error) from error
        return self._document(memo)

    def _create_credit_memo(self, original_id: str, key: str, posting_date: date) -> LedgerInvoice:
        original = (
            LedgerInvoice.objects.select_related("journal_entry", "customer")
            .filter(connection=self.connection, pk=original_id, kind=LedgerInvoice.Kind.INVOICE)
            .first()
        )
        if original is None:
            raise ConnectorError(
                f"Invoice {original_id} is not in the sandbox ledger; nothing to credit.",
                category=FailureCategory.MISSING_REFERENCE,
                transient=False,
            )
        earlier = original.credit_memos.first()
        if earlier is not None:
            raise ConnectorError(
                f"Invoice {original.number} is already credited in full by {earlier.number}.",
                category=FailureCategory.VALUE,
                transient=False,
            )
        entry = JournalEntry.objects.create(
            connection=self.connection,
            number=_next_number(self.connection, "JE"),
            posting_date=posting_date,
            memo=f"Credit memo for invoice {original.number} (voided)"[:200],
            external_document_number=key,
        )
        # The exact mirror of the invoice's entry: every debit becomes a credit and back.
        JournalLine.objects.bulk_create(
            JournalLine(
                entry=entry,
                account_id=line.account_id,
                debit=line.credit,
                credit=line.debit,
                description=f"Void of {original.number}: {line.description}"[:200],
                tax_code=line.tax_code,
                dimensions=line.dimensions,
            )
            for line in original.journal_entry.lines.order_by("id")
        )
        entry.state = JournalEntry.State.POSTED
        entry.save(update_fields=["state"])
        return LedgerInvoice.objects.create(
            connection=self.connection,
            kind=LedgerInvoice.Kind.CREDIT_MEMO,
            applies_to=original,
            number=_next_number(self.connection, "CM"),
            external_document_number=key,
            customer=original.customer,
            posting_date=posting_date,
            currency=original.currency,
            amount=original.amount,
            journal_entry=entry,
        )

    @reported("POST", "time-entries")
    def post_time_entries(self, *, plan: TimePlan, key: str) -> ErpDocument:
        """Create the entries not already there; an entry's key is never used twice."""
        existing = set(
            LedgerTimeEntry.objects.filter(
                connection=self.connection,
                external_document_number__in=[entry.key for entry in plan.entries],
            ).values_list("external_document_number", flat=True)
        )
        new = [entry for entry in plan.entries if entry.key not in existing]
        try:
            with transaction.atomic():
                LedgerTimeEntry.objects.bulk_create(
                    LedgerTimeEntry(
                        connection=self.connection, external_document_number=entry.key,
                        batch=key, employee=entry.employee,
                        work_date=date.fromisoformat(entry.work_date), kind=entry.kind,
                        hours=entry.hours, pay_type=entry.pay_type, job_number=entry.job_number,
                        cost_code=entry.cost_code, department=entry.department,
                        clock_in=entry.clock_in, clock_out=entry.clock_out,
                    )
                    for entry in new
                )  # fmt: skip
        except DatabaseError as error:
            raise ConnectorError(
                f"The sandbox ledger could not save the time entries ({error}); retrying.",
                category=FailureCategory.INTERNAL, transient=True,
            ) from error  # fmt: skip
        total = LedgerTimeEntry.objects.filter(connection=self.connection, batch=key).count()
        return ErpDocument(id=key, number=f"{total} time entries", url="")

    # --- job costs and purchases -------------------------------------------------------------

    @reported("GET", "postings")
    def find_posting(self, *, kind: str, key: str) -> ErpDocument | None:
        posting = LedgerPosting.objects.filter(
            connection=self.connection, kind=kind, external_document_number=key
        ).first()
        return self._posting_document(posting) if posting else None

    @reported("POST", "journal-entries")
    def post_journal(self, *, plan: JournalPlan, key: str) -> ErpDocument:
        """The plan's pairs as one balanced journal entry under a JOURNAL posting."""
        return self._post_legs(
            LedgerPosting.Kind.JOURNAL, key, _journal_legs(plan), plan.posting_date, plan.currency,
            memo=plan.description, amount=plan.total,
        )  # fmt: skip

    @reported("POST", "purchase-invoices")
    def post_purchase(self, *, plan: PurchasePlan, key: str) -> ErpDocument:
        """Debit each line's account, credit payables with the total; the vendor is created
        on demand (the sandbox always allows it)."""
        return self._post_legs(
            LedgerPosting.Kind.PURCHASE_INVOICE, key, _purchase_legs(plan),
            plan.posting_date, plan.currency, amount=plan.total,
            memo=f"Purchase invoice {plan.document_number} {plan.vendor_name}", plan=plan,
        )  # fmt: skip

    def _post_legs(
        self, kind: str, key: str, legs: list[Leg], posting_date: date, currency: str, *,
        memo: str, amount: Decimal, plan: PurchasePlan | None = None,
    ) -> ErpDocument:  # fmt: skip
        if not legs:
            raise ConnectorError("A posting whose every amount is zero cannot be posted.",
                                 category=FailureCategory.VALUE, transient=False)  # fmt: skip
        try:
            with transaction.atomic():
                vendor = self._vendor(plan) if plan is not None else None
                entry = self._entry(legs, posting_date, memo, key)
                posting = LedgerPosting.objects.create(
                    connection=self.connection, kind=kind, external_document_number=key,
                    number=_next_number(self.connection, "PI" if vendor else "GJ"),
                    vendor=vendor, vendor_document_number=plan.document_number if plan else "",
                    posting_date=posting_date, due_date=plan.due_date if plan else None,
                    currency=currency, amount=amount, journal_entry=entry,
                )  # fmt: skip
        except DatabaseError as error:
            if self.find_posting(kind=kind, key=key):
                raise ConnectorError(f"A posting with external document number {key} already "
                                     "exists.", category=FailureCategory.DUPLICATE,
                                     transient=False) from error  # fmt: skip
            raise self._refusal(key, error) from error
        return self._posting_document(posting)

    def _entry(self, legs: list[Leg], posting_date: date, memo: str, key: str) -> JournalEntry:
        entry = JournalEntry.objects.create(
            connection=self.connection, number=_next_number(self.connection, "JE"),
            posting_date=posting_date, memo=memo[:200], external_document_number=key,
        )  # fmt: skip
        accounts = {
            account.number: account
            for account in LedgerAccount.objects.filter(
                connection=self.connection, number__in={leg.account for leg in legs}
            )
        }
        missing = sorted({leg.account for leg in legs} - set(accounts))
        if missing:
            raise ConnectorError(f"Account {', '.join(missing)} is not in the sandbox ledger.",
                                 category=FailureCategory.MISSING_REFERENCE,
                                 transient=False)  # fmt: skip
        JournalLine.objects.bulk_create(
            JournalLine(entry=entry, account=accounts[leg.account], debit=leg.debit,
                        credit=leg.credit, description=leg.description[:200],
                        dimensions=leg.dimensions)
            for leg in legs
        )  # fmt: skip
        entry.state = JournalEntry.State.POSTED  # the database checks the balance (0002)
        entry.save(update_fields=["state"])
        return entry

    def _vendor(self, plan: PurchasePlan) -> LedgerVendor:
        vendor = LedgerVendor.objects.filter(
            connection=self.connection, source_ref=plan.vendor_ref
        ).first()
        if vendor is not None:
            return vendor
        return LedgerVendor.objects.create(
            connection=self.connection, number=_next_number(self.connection, "V"),
            name=plan.vendor_name or plan.vendor_ref, source_ref=plan.vendor_ref,
        )  # fmt: skip

    def _posting_document(self, posting: LedgerPosting) -> ErpDocument:
        return ErpDocument(id=f"P{posting.pk}", number=posting.number, url="")

    def preview_invoice(self, *, plan: InvoicePlan, key: str) -> list[dict[str, Any]]:
        return [
            {
                "operation": "create customer if missing",
                "customer": {"source_ref": plan.customer_ref, "name": plan.customer_name},
            },
            {
                "operation": "create invoice and post its journal entry",
                "external_document_number": key,
                "posting_date": plan.posting_date.isoformat(),
                "currency": plan.currency,
                "amount": str(plan.total),
                "lines": [
                    {
                        "account": leg.account,
                        "debit": str(leg.debit),
                        "credit": str(leg.credit),
                        "description": leg.description,
                        "tax_code": leg.tax_code,
                        "dimensions": leg.dimensions,
                    }
                    for leg in _legs(plan)
                ],
            },
        ]

    def _invoice_saved(
        self, plan: InvoicePlan, key: str, legs: list[Leg], credit: bool, customer_id: int,
        accounts: dict[str, int],
    ) -> tuple[int, str]:  # fmt: skip
        """The invoice and its entry through the ORM, in one transaction (SQLite): its id and
        number."""
        with transaction.atomic():
            # Drawn first: the series stay locked until commit.
            entry_number, document_number = _next_numbers(
                self.connection, "JE", "CM" if credit else "SI"
            )
            entry = JournalEntry.objects.create(
                connection=self.connection,
                number=entry_number,
                posting_date=plan.posting_date,
                memo=_invoice_memo(plan, credit),
                external_document_number=key,
            )
            JournalLine.objects.bulk_create(
                JournalLine(
                    entry=entry,
                    account_id=accounts[leg.account],
                    debit=leg.debit,
                    credit=leg.credit,
                    description=leg.description[:200],
                    tax_code=leg.tax_code,
                    dimensions=leg.dimensions,
                )
                for leg in legs
            )
            # The database checks the balance as the entry is posted (migration 0002).
            entry.state = JournalEntry.State.POSTED
            entry.save(update_fields=["state"])
            invoice = LedgerInvoice.objects.create(
                connection=self.connection,
                kind=LedgerInvoice.Kind.CREDIT_MEMO if credit else LedgerInvoice.Kind.INVOICE,
                number=document_number,
                external_document_number=key,
                customer_id=customer_id,
                posting_date=plan.posting_date,
                currency=plan.currency,
                amount=-plan.total if credit else plan.total,  # a credit memo's is positive
                journal_entry=entry,
            )
            return invoice.pk, invoice.number

    def _invoice_in_one_call(
        self, plan: InvoicePlan, key: str, legs: list[Leg], credit: bool, customer_id: int,
        accounts: dict[str, int],
    ) -> tuple[int, str]:  # fmt: skip
        """The rows `_invoice_saved` writes, in one call (PostgreSQL, invoice_sql.py): the
        invoice's id and number."""
        prefix = "CM" if credit else "SI"
        kind = LedgerInvoice.Kind.CREDIT_MEMO if credit else LedgerInvoice.Kind.INVOICE
        amount = -plan.total if credit else plan.total  # a credit memo's amount is positive
        written = invoice_write(
            connection_id=self.connection.pk, kind=kind, key=key, customer_id=customer_id,
            posting_date=plan.posting_date, currency=plan.currency, amount=amount,
            memo=_invoice_memo(plan, credit), entry_prefix="JE", invoice_prefix=prefix,
            lines=[LineRow(accounts[leg.account], leg.debit, leg.credit, leg.description[:200],
                           leg.tax_code, leg.dimensions) for leg in legs],
        )  # fmt: skip
        if written is None:
            raise _NoNumberSeries("JE", prefix)
        return written

    def _account_ids(self, numbers: set[str]) -> dict[str, int]:
        """Account ids by number (accounts are never deleted, so remembered by the process)."""
        connection = self.connection.pk
        unknown = {number for number in numbers if (connection, number) not in _ACCOUNT_IDS}
        if unknown:
            found = LedgerAccount.objects.filter(connection=connection, number__in=unknown)
            pairs = found.values_list("number", "pk")
            _remember(_ACCOUNT_IDS, {(connection, number): pk for number, pk in pairs})
        missing = sorted(number for number in numbers if (connection, number) not in _ACCOUNT_IDS)
        if missing:
            raise ConnectorError(
                f"Account {', '.join(missing)} is not in the sandbox ledger.",
                category=FailureCategory.MISSING_REFERENCE,
                transient=False,
            )
        return {number: _ACCOUNT_IDS[(connection, number)] for number in numbers}

    def _customer_id(self, plan: InvoicePlan) -> int:
        """The customer's id, created with its first invoice. Only customers read back from the
        database are remembered: one created here may yet be rolled back with its invoice."""
        remembered = (self.connection.pk, plan.customer_ref)
        if remembered in _CUSTOMER_IDS:
            return _CUSTOMER_IDS[remembered]
        found = (
            LedgerCustomer.objects.filter(connection=self.connection, source_ref=plan.customer_ref)
            .values_list("pk", flat=True)
            .first()
        )
        if found is not None:
            _remember(_CUSTOMER_IDS, {remembered: found})
            return found
        try:
            with transaction.atomic():
                return LedgerCustomer.objects.create(
                    connection=self.connection,
                    number=_next_number(self.connection, "C"),
                    name=plan.customer_name,
                    source_ref=plan.customer_ref,
                ).pk
        except IntegrityError:
            # Another posting created the customer first (and has committed): use that one.
            return LedgerCustomer.objects.get(
                connection=self.connection, source_ref=plan.customer_ref
            ).pk

    def master_data_update(
        self, *, entity: str, source_ref: str, erp_ref: str, values: dict[str, Any]
    ) -> None:
        """Two-way master data: the customer card takes the fields (the sandbox keeps no
        locations or contacts). A customer is created with its first invoice, so until then the
        change waits (transient)."""
        if entity != "CUSTOMER":
            raise ConnectorError(
                f"The sandbox ledger keeps customers only, not {entity.lower()}s.",
                category=FailureCategory.VALUE, transient=False,
            )  # fmt: skip
        customers = LedgerCustomer.objects.filter(connection=self.connection)
        customer = customers.filter(source_ref=source_ref).first() or (
            customers.filter(number=erp_ref).first() if erp_ref else None
        )
        if customer is None:
            raise ConnectorError(
                f"The sandbox ledger has no customer for ServiceTrade company {source_ref} yet: "
                "it is created with the company's first invoice, then this change is sent.",
                category=FailureCategory.PREREQUISITE, transient=True,
            )  # fmt: skip
        if "name" in values:
            customer.name = str(values["name"])[:200]
        customer.details = {**customer.details, **{k: v for k, v in values.items() if k != "name"}}
        customer.save(update_fields=["name", "details"])

    def _refusal(self, key: str, error: DatabaseError) -> ConnectorError:
        if self.find_invoice(key=key):
            return ConnectorError(
                f"An invoice with external document number {key} already exists.",
                category=FailureCategory.DUPLICATE,
                transient=False,
            )
        if "does not balance" in str(error):
            return ConnectorError(
                f"The sandbox ledger refused an unbalanced entry: {error}",
                category=FailureCategory.VALUE,
                transient=False,
            )
        return ConnectorError(
            f"The sandbox ledger could not save the invoice ({error}); it will be retried.",
            category=FailureCategory.INTERNAL,
            transient=True,
        )

    def _document(self, invoice: LedgerInvoice) -> ErpDocument:
        return self._document_of(invoice.pk, invoice.number)

    def _document_of(self, pk: int, number: str) -> ErpDocument:
        if not self._invoice_url:  # reversed once per connector, not once per invoice
            self._invoice_url = reverse(
                "console:ledger-invoice", args=[self.connection.slug, _NUMBER_MARK]
            )
        head, _, tail = self._invoice_url.rpartition(_NUMBER_MARK)
        url = head + quote(number, safe="") + tail
        return ErpDocument(id=str(pk), number=number, url=url)

    # --- previews (manage.py preview_posting): what the post methods above write, as data ------
    # The legs are the post methods' own (`_legs`, `_journal_legs`, `_purchase_legs`);
    # tests/test_preview_posting_costs.py posts each kind and compares the ledger with its preview.

    def preview_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> list[dict[str, Any]]:
        """What post_source_credit_memo writes: the invoice's entry under a credit memo."""
        customer, entry = self.preview_invoice(plan=plan, key=key)
        return [customer, {**entry, "operation": "create credit memo and post its journal entry",
                           "amount": str(-plan.total)}]  # fmt: skip

    def preview_journal(self, *, plan: JournalPlan, key: str) -> list[dict[str, Any]]:
        """What post_journal writes: one balanced entry, debit and credit of each pair."""
        return [self._preview_entry("create journal entry and its journal posting", key,
                               _journal_legs(plan),
                               plan.posting_date, plan.currency, plan.total,
                               memo=plan.description)]  # fmt: skip

    def preview_purchase(self, *, plan: PurchasePlan, key: str) -> list[dict[str, Any]]:
        """What post_purchase writes: the vendor when missing, each line debited, payables
        credited with the total."""
        entry = self._preview_entry(
            "create purchase invoice and post its journal entry", key,
            _purchase_legs(plan), plan.posting_date, plan.currency, plan.total,
            memo=f"Purchase invoice {plan.document_number} {plan.vendor_name}",
        )  # fmt: skip
        entry["vendor_document_number"] = plan.document_number
        entry["due_date"] = plan.due_date.isoformat() if plan.due_date else None
        return [{"operation": "create vendor if missing",
                 "vendor": {"source_ref": plan.vendor_ref,
                            "name": plan.vendor_name or plan.vendor_ref}}, entry]  # fmt: skip

    def preview_time_entries(self, *, plan: TimePlan, key: str) -> list[dict[str, Any]]:
        """What post_time_entries writes: each entry whose key the ledger does not hold yet."""
        entries = [{"external_document_number": entry.key, "employee": entry.employee,
                    "work_date": entry.work_date, "kind": entry.kind, "hours": str(entry.hours),
                    "pay_type": entry.pay_type, "job_number": entry.job_number,
                    "cost_code": entry.cost_code, "department": entry.department,
                    "clock_in": entry.clock_in, "clock_out": entry.clock_out}
                   for entry in plan.entries]  # fmt: skip
        return [{"operation": "create the time entries whose key is not there yet",
                 "batch": key, "entries": entries}]  # fmt: skip

    @staticmethod
    def _preview_entry(
        operation: str, key: str, legs: list[Leg], posting_date: date, currency: str,
        amount: Decimal, *, memo: str,
    ) -> dict[str, Any]:  # fmt: skip
        """A journal entry as the preview methods show it (amounts as exact strings)."""
        return {"operation": operation, "external_document_number": key,
                "posting_date": posting_date.isoformat(), "currency": currency,
                "amount": str(amount), "memo": memo[:200],
                "lines": [{"account": leg.account, "debit": str(leg.debit),
                           "credit": str(leg.credit), "description": leg.description[:200],
                           "dimensions": leg.dimensions} for leg in legs]}  # fmt: skip


@dataclass(frozen=True)
class Leg:
    account: str
    debit: Decimal
    credit: Decimal
    description: str
    tax_code: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)


def _legs(plan: InvoicePlan) -> list[Leg]:
    """Debit/credit legs of the plan; zero amounts are dropped, signs pick the side."""
    legs = _leg(plan.receivable_account, -plan.total, f"Invoice {plan.document_number}", "", {})
    for line in plan.lines:
        dimensions = {
            name.removeprefix("dimension:"): coding.value
            for name, coding in line.codings.items()
            if name.startswith("dimension:")
        }
        legs += _leg(line.account, line.amount, line.description, line.tax_code, dimensions)
    return legs


def _journal_legs(plan: JournalPlan) -> list[Leg]:
    """Each pair of the plan as its debit and its credit (post_journal, preview_journal)."""
    legs = []
    for pair in plan.pairs:
        legs.append(Leg(pair.debit_account, pair.amount, ZERO, pair.description, "",
                        dict(pair.dimensions)))  # fmt: skip
        legs.append(Leg(pair.credit_account, ZERO, pair.amount, pair.description, "",
                        dict(pair.dimensions)))  # fmt: skip
    return legs


def _purchase_legs(plan: PurchasePlan) -> list[Leg]:
    """Each line debited, payables credited with the total (post_purchase, preview_purchase)."""
    legs = [_leg(line.account, -line.amount, line.description, "", dict(line.dimensions))
            for line in plan.lines]  # fmt: skip
    legs.append(_leg(plan.payable_account, plan.total, f"Vendor invoice {plan.document_number}",
                     "", {}))  # fmt: skip
    return [leg for pair in legs for leg in pair]


def _leg(
    account: str,
    credit_amount: Decimal,
    description: str,
    tax_code: str,
    dimensions: dict[str, str],
) -> list[Leg]:
    if credit_amount > ZERO:
        return [Leg(account, ZERO, credit_amount, description, tax_code, dimensions)]
    if credit_amount < ZERO:
        return [Leg(account, -credit_amount, ZERO, description, tax_code, dimensions)]
    return []


def _next_number(connection: Connection, prefix: str) -> str:
    """The next number of a series per connection, e.g. SI-000042; never issued twice."""
    return _next_numbers(connection, prefix)[0]


_NUMBER_MARK = "number-goes-here"


class _NoNumberSeries(Exception):
    """A number series the connection has never drawn from (see `_invoice_written`)."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__(", ".join(prefixes))
        self.prefixes = prefixes


def _invoice_memo(plan: InvoicePlan, credit: bool) -> str:
    kind = "Credit memo" if credit else "Invoice"
    return f"{kind} {plan.document_number} {plan.customer_name}"[:200]


def _next_numbers(connection: Connection, *prefixes: str) -> list[str]:
    """The next number of each series, drawn in one statement, in the order asked.

    The statement locks the series rows until the posting transaction ends, as an ERP's number
    series is (SQLite ≥ 3.35 and PostgreSQL both return the new values). On PostgreSQL the rows
    are locked in the order of their prefixes, so two postings drawing from the same series never
    wait on each other in a circle; SQLite runs one writing transaction at a time.
    """
    placeholders = ", ".join(["%s"] * len(prefixes))
    rows = f"connection_id = %s AND prefix IN ({placeholders})"
    if db.vendor == "postgresql":
        rows = (
            f"id IN (SELECT id FROM sandbox_numberseries WHERE {rows} ORDER BY prefix FOR UPDATE)"
        )
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE sandbox_numberseries SET last_value = last_value + 1 WHERE {rows}"
            " RETURNING prefix, last_value",
            [connection.pk, *prefixes],
        )
        drawn = dict(cursor.fetchall())
    if len(drawn) < len(set(prefixes)):  # the first number of a series
        for prefix in set(prefixes) - drawn.keys():
            NumberSeries.objects.get_or_create(connection=connection, prefix=prefix)
        # The series that existed keep the numbers just drawn; the new ones are drawn now.
        return [
            f"{prefix}-{drawn[prefix]:06d}" if prefix in drawn else _next_number(connection, prefix)
            for prefix in prefixes
        ]
    return [f"{prefix}-{drawn[prefix]:06d}" for prefix in prefixes]
