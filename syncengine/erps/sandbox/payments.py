"""Customer payments in the sandbox ledger: what a cashier does in a real ERP, so the payments
flow back to ServiceTrade can be tried end to end (`manage.py ledger pay`).

A payment is a balanced journal entry, debit cash and credit the invoice's receivable account;
a reversal (a returned cheque, NSF, a voided receipt) is the opposite entry. The database checks
the balance as the entry is posted (sandbox migration 0002), as it does for invoices.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum

from syncengine.erps.sandbox.client import _next_number
from syncengine.erps.sandbox.models import (
    JournalEntry,
    JournalLine,
    LedgerAccount,
    LedgerInvoice,
    LedgerPayment,
)
from syncengine.models import Connection
from syncengine.money import ZERO, to_cents


class PaymentRefused(Exception):
    """The payment cannot be recorded; the message says why in plain words."""


def ledger_invoice_paid(*, invoice: LedgerInvoice) -> Decimal:
    """What is paid on the invoice now: payments less reversals."""
    totals = invoice.payments.aggregate(
        paid=Sum("amount", filter=Q(kind=LedgerPayment.Kind.PAYMENT), default=ZERO),
        reversed=Sum("amount", filter=Q(kind=LedgerPayment.Kind.REVERSAL), default=ZERO),
    )
    # SQLite sums decimals as floats: back to cents before anything compares them.
    return to_cents(Decimal(totals["paid"]) - Decimal(totals["reversed"]))


@transaction.atomic
def ledger_payment_record(
    *,
    connection: Connection,
    invoice: str,
    amount: Decimal,
    reverse: bool = False,
    reason: str = "",
    payment_date: date,
    cash_account: str,
    now: datetime,
) -> LedgerPayment:
    """Record a payment on (or, with `reverse`, a reversal of a payment on) the invoice whose
    number or external document number is `invoice`.

    Raises PaymentRefused: unknown invoice or cash account, an amount that is not positive, more
    than is open on the invoice, or a reversal of more than is paid.
    """
    amount = to_cents(amount)
    if amount <= ZERO:
        raise PaymentRefused("The amount must be more than zero.")
    target = _invoice(connection, invoice)
    paid = ledger_invoice_paid(invoice=target)
    if not reverse and paid + amount > target.amount:
        raise PaymentRefused(
            f"Invoice {target.number} has {target.amount - paid} open; {amount} is more than that."
        )
    if reverse and amount > paid:
        raise PaymentRefused(
            f"Only {paid} is paid on invoice {target.number}; cannot reverse {amount}."
        )
    cash = LedgerAccount.objects.filter(connection=connection, number=cash_account).first()
    if cash is None:
        raise PaymentRefused(f"There is no account {cash_account} in the sandbox ledger.")
    kind = LedgerPayment.Kind.REVERSAL if reverse else LedgerPayment.Kind.PAYMENT
    entry = _entry(connection, target, cash, amount, kind, reason, payment_date)
    return LedgerPayment.objects.create(
        connection=connection, number=_next_number(connection, "PMT"), kind=kind, invoice=target,
        payment_date=payment_date, amount=amount, reason=reason[:100], journal_entry=entry,
        recorded_at=now,
    )  # fmt: skip


def _invoice(connection: Connection, reference: str) -> LedgerInvoice:
    invoice = (
        LedgerInvoice.objects.select_related("journal_entry")
        .filter(Q(number=reference) | Q(external_document_number=reference))
        .filter(connection=connection, kind=LedgerInvoice.Kind.INVOICE)
        .first()
    )
    if invoice is None:
        raise PaymentRefused(f"No invoice {reference!r} in the sandbox ledger ({connection.slug}).")
    if invoice.amount <= ZERO:
        raise PaymentRefused(f"Invoice {invoice.number} is not owed by the customer.")
    return invoice


def _entry(
    connection: Connection,
    invoice: LedgerInvoice,
    cash: LedgerAccount,
    amount: Decimal,
    kind: str,
    reason: str,
    payment_date: date,
) -> JournalEntry:
    # The invoice's first line is its receivable leg (sandbox client `_legs` puts it first).
    receivable = invoice.journal_entry.lines.order_by("id").first()
    assert receivable is not None, "a posted invoice has journal lines"
    reversal = kind == LedgerPayment.Kind.REVERSAL
    label = f"{'Reversal of payment' if reversal else 'Payment'} on {invoice.number}"
    if reason:
        label += f" ({reason})"
    entry = JournalEntry.objects.create(
        connection=connection, number=_next_number(connection, "JE"), posting_date=payment_date,
        memo=label[:200],
    )  # fmt: skip
    cash_side, receivable_side = (ZERO, amount) if reversal else (amount, ZERO)
    JournalLine.objects.bulk_create([
        JournalLine(entry=entry, account=cash, debit=cash_side, credit=receivable_side,
                    description=label[:200]),
        JournalLine(entry=entry, account_id=receivable.account_id, debit=receivable_side,
                    credit=cash_side, description=label[:200]),
    ])  # fmt: skip
    entry.state = JournalEntry.State.POSTED
    entry.save(update_fields=["state"])
    return entry
