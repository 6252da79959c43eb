"""The sandbox ledger: a small but real double-entry ledger inside Crosswalk's own database.

It is the embedded default target and the reference every real ERP connector is compared with.
The database, not Python, guarantees its books: a journal entry can only become POSTED when its
lines balance to the cent, and the lines of a posted entry can be neither changed nor removed
(triggers in migration 0002, on PostgreSQL and SQLite alike). An external document number is
unique per connection, so the sandbox itself refuses a second copy of any Crosswalk posting.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from syncengine.models import Connection
from syncengine.money import DECIMAL_PLACES, MAX_DIGITS


class AccountType(models.TextChoices):
    ASSET = "ASSET", "Asset"
    LIABILITY = "LIABILITY", "Liability"
    EQUITY = "EQUITY", "Equity"
    INCOME = "INCOME", "Income"
    EXPENSE = "EXPENSE", "Expense"


class LedgerAccount(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=20)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=AccountType.choices)
    active = models.BooleanField(default=True)
    direct_posting = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="ledger_account_number")
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class LedgerTaxCode(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=20)
    rate = models.DecimalField(max_digits=7, decimal_places=4, help_text="Percent, e.g. 7.2500")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "code"], name="ledger_tax_code")
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.rate} %)"


class LedgerCustomer(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    source_ref = models.CharField(max_length=64, help_text="ServiceTrade company id.")
    # The customer card's other fields (address, phone, tax code …), as two-way master data
    # writes them (masterdata/).
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="ledger_customer_number"),
            models.UniqueConstraint(
                fields=["connection", "source_ref"], name="ledger_customer_ref"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class JournalEntry(models.Model):
    class State(models.TextChoices):
        DRAFT = "DRAFT", "Draft"
        POSTED = "POSTED", "Posted"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=20)
    posting_date = models.DateField()
    memo = models.CharField(max_length=200, blank=True)
    external_document_number = models.CharField(max_length=35, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "journal entries"
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="journal_entry_number")
        ]

    def __str__(self) -> str:
        return self.number


class JournalLine(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="+")
    debit = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0)
    credit = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0)
    description = models.CharField(max_length=200, blank=True)
    tax_code = models.CharField(max_length=20, blank=True)
    dimensions = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            # Exactly one side carries a positive amount.
            models.CheckConstraint(
                condition=(Q(debit__gt=0) & Q(credit=0)) | (Q(credit__gt=0) & Q(debit=0)),
                name="journal_line_one_side",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: Dr {self.debit} Cr {self.credit}"


class LedgerInvoice(models.Model):
    class Kind(models.TextChoices):
        INVOICE = "INVOICE", "Invoice"
        CREDIT_MEMO = "CREDIT_MEMO", "Credit memo"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    # For a credit memo, the invoice it offsets.
    applies_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_memos"
    )
    number = models.CharField(max_length=20)
    external_document_number = models.CharField(max_length=35)
    customer = models.ForeignKey(LedgerCustomer, on_delete=models.PROTECT, related_name="invoices")
    posting_date = models.DateField()
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    journal_entry = models.OneToOneField(
        JournalEntry, on_delete=models.PROTECT, related_name="invoice"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="ledger_invoice_number"),
            models.UniqueConstraint(
                fields=["connection", "external_document_number"],
                name="ledger_invoice_external_number",
            ),
            # A void credits an invoice in full, so at most once.
            models.UniqueConstraint(
                fields=["applies_to"],
                condition=Q(kind="CREDIT_MEMO"),
                name="ledger_invoice_one_credit_memo",
            ),
            # A void's credit memo applies to its invoice; a credit issued in ServiceTrade
            # (a source credit memo, or the credit part of a split invoice) applies to none.
            models.CheckConstraint(
                condition=Q(kind="INVOICE", applies_to__isnull=True) | Q(kind="CREDIT_MEMO"),
                name="ledger_invoice_applies_only_credit_memos",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class NumberSeries(models.Model):
    """Document number series (JE-, SI-, C-) per connection; locked while a number is drawn."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    prefix = models.CharField(max_length=5)
    last_value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "prefix"], name="number_series_prefix")
        ]

    def __str__(self) -> str:
        return f"{self.prefix}-{self.last_value:06d}"


class LedgerListValue(models.Model):
    """The sandbox's other lists (dimensions and their values, departments, cost codes …), so it
    offers the rules the same catalog a full ERP does. Kinds are `mappings.ruleset.CatalogKind`."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20)
    parent = models.CharField(max_length=50, blank=True)
    code = models.CharField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "kind", "parent", "code"], name="ledger_list_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.parent + '/' if self.parent else ''}{self.code}"


class LedgerTimeEntry(models.Model):
    """Time posted for payroll and job costing; one row per source time entry, never twice."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    external_document_number = models.CharField(max_length=35)
    batch = models.CharField(max_length=35, help_text="The timecard's key.")
    employee = models.CharField(max_length=50)
    work_date = models.DateField()
    kind = models.CharField(max_length=10)
    hours = models.DecimalField(max_digits=6, decimal_places=2)
    pay_type = models.CharField(max_length=30)
    job_number = models.CharField(max_length=50, blank=True)
    cost_code = models.CharField(max_length=30, blank=True)
    department = models.CharField(max_length=30, blank=True)
    clock_in = models.CharField(max_length=30, blank=True)
    clock_out = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "time entries"
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "external_document_number"], name="ledger_time_entry_key"
            ),
            models.CheckConstraint(condition=Q(hours__gt=0), name="ledger_time_entry_hours"),
        ]

    def __str__(self) -> str:
        return f"{self.employee} {self.work_date} {self.hours} h {self.pay_type}"


class LedgerPayment(models.Model):
    """A customer payment applied to one sandbox invoice, or the reversal of one (a returned
    cheque, NSF, a voided receipt). Its journal entry debits cash and credits the invoice's
    receivable account; a reversal's entry does the opposite. Rows are only ever added."""

    class Kind(models.TextChoices):
        PAYMENT = "PAYMENT", "Payment"
        REVERSAL = "REVERSAL", "Reversal"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=20)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PAYMENT)
    invoice = models.ForeignKey(LedgerInvoice, on_delete=models.PROTECT, related_name="payments")
    payment_date = models.DateField()
    # Always positive; `kind` says which way it goes.
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    reason = models.CharField(max_length=100, blank=True)
    journal_entry = models.OneToOneField(
        JournalEntry, on_delete=models.PROTECT, related_name="payment"
    )
    # When the ledger recorded it: what `SandboxLedger.payments(since=...)` filters on.
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="ledger_payment_number"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_payment_positive"),
        ]
        indexes = [
            # SandboxLedger.payments: a connection's payments recorded since the cursor.
            models.Index(fields=["connection", "recorded_at"], name="ledger_payment_recorded"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.get_kind_display()} {self.amount} on {self.invoice_id}"


class LedgerVendor(models.Model):
    """A vendor of the sandbox ledger, created on demand by the first purchase invoice that
    names it (its PartsLedger id is `source_ref`)."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    source_ref = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="ledger_vendor_number"),
            models.UniqueConstraint(fields=["connection", "source_ref"], name="ledger_vendor_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class LedgerPosting(models.Model):
    """A journal (job item cost, inventory adjustment) or a purchase invoice posted by
    Crosswalk: its key is unique per connection, so the sandbox refuses a second copy, and its
    balanced journal entry holds the amounts."""

    class Kind(models.TextChoices):
        JOURNAL = "JOURNAL", "General journal"
        PURCHASE_INVOICE = "PURCHASE_INVOICE", "Purchase invoice"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    number = models.CharField(max_length=20)
    external_document_number = models.CharField(max_length=35)
    vendor = models.ForeignKey(
        LedgerVendor, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    vendor_document_number = models.CharField(max_length=64, blank=True)
    posting_date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    journal_entry = models.OneToOneField(
        JournalEntry, on_delete=models.PROTECT, related_name="posting"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="ledger_posting_number"),
            models.UniqueConstraint(
                fields=["connection", "external_document_number"], name="ledger_posting_key"
            ),
            models.CheckConstraint(
                condition=Q(kind="JOURNAL", vendor__isnull=True)
                | Q(kind="PURCHASE_INVOICE", vendor__isnull=False),
                name="ledger_posting_vendor_on_purchases",
            ),
        ]

    def __str__(self) -> str:
        return self.number
