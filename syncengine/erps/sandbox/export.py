"""Export the sandbox ledger's posted books as JSON or as a Beancount (v3) file.

Only POSTED journal entries are exported, ordered by posting date, then entry number. Drafts are
work in progress that the database has not yet checked for balance, so they are not books.

JSON
----
One object; every amount is a string with exactly two decimals (never a float)::

    {
      "connection": {"name": "Demo", "slug": "demo"},
      "currency": "USD",
      "accounts": [{"number": "1100", "name": "Receivables", "type": "ASSET", "active": true}],
      "customers": [{"number": "C-000001", "name": "Acme", "source_ref": "42"}],
      "entries": [
        {
          "number": "JE-000001",
          "posting_date": "2024-03-01",
          "memo": "Invoice 1001 Acme",
          "external_document_number": "cw-...",
          "invoice": {"number": "SI-000001", "customer_number": "C-000001", "amount": "107.25"},
          "lines": [
            {"account": "1100", "debit": "107.25", "credit": "0.00",
             "description": "Invoice 1001", "tax_code": ""}
          ]
        }
      ]
    }

"invoice" is null for an entry that no sandbox invoice points at; "tax_code" is "" when a line
has none. Accounts are sorted by number, customers by number, lines in the order they were written.

Beancount
---------
A ``title`` and ``operating_currency`` option, one ``open`` directive per account (dated the
earliest posting date, or today for an empty ledger), then one transaction per entry::

    2024-03-01 * "Acme" "Invoice 1001 Acme"
      number: "JE-000001"
      external_document_number: "cw-..."
      invoice: "SI-000001"
      Assets:1100-Receivables  107.25 USD
        description: "Invoice 1001"
      Income:4000-Service-Revenue  -100.00 USD
      ...

Account names are ``<Root>:<number>-<Name>``, the root chosen by account type and both parts reduced
to what Beancount accepts in a component. Debits are positive, credits negative.

Both writers read entries in chunks with their lines prefetched per chunk, so a ledger of any size
streams in constant memory with a number of queries that grows only with the number of chunks.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from django.db.models import Min, Prefetch, QuerySet
from django.utils import timezone

from syncengine.erps.sandbox.models import (
    AccountType,
    JournalEntry,
    JournalLine,
    LedgerAccount,
    LedgerCustomer,
)
from syncengine.models import Connection
from syncengine.money import CENT

FORMATS = ("json", "beancount")

# Large enough to amortise the per-chunk line query, small enough that one chunk of entries with
# their invoices and lines stays within tens of megabytes (about 50 MB peak measured at 2,000).
CHUNK_SIZE = 2000

BEANCOUNT_ROOTS = {
    AccountType.ASSET: "Assets",
    AccountType.LIABILITY: "Liabilities",
    AccountType.EQUITY: "Equity",
    AccountType.INCOME: "Income",
    AccountType.EXPENSE: "Expenses",
}


class TextStream(Protocol):
    def write(self, text: str, /) -> Any: ...


@dataclass(frozen=True)
class Account:
    number: str
    name: str
    type: str
    active: bool
    beancount_name: str


# --- shared reading ---------------------------------------------------------------------------


def posted_entries(connection: Connection) -> Iterator[JournalEntry]:
    """Posted entries in export order; lines (by id, i.e. as written) prefetched per chunk."""
    lines = JournalLine.objects.order_by("id")
    entries: QuerySet[JournalEntry] = (
        JournalEntry.objects.filter(connection=connection, state=JournalEntry.State.POSTED)
        .select_related("invoice__customer")
        .prefetch_related(Prefetch("lines", queryset=lines))
        # Numbers are unique per connection, so this order is total and exports are repeatable.
        .order_by("posting_date", "number")
    )
    return entries.iterator(chunk_size=CHUNK_SIZE)


def ledger_accounts(connection: Connection) -> dict[int, Account]:
    """Every account of the connection by primary key, with its unique Beancount name."""
    accounts: dict[int, Account] = {}
    taken: set[str] = set()
    for row in LedgerAccount.objects.filter(connection=connection).order_by("number"):
        name = _unique(beancount_account(row.type, row.number, row.name), taken)
        accounts[row.pk] = Account(row.number, row.name, row.type, row.active, name)
    return accounts


def _unique(name: str, taken: set[str]) -> str:
    # Sanitising can fold two distinct (number, name) pairs into one string; Beancount would then
    # merge two accounts silently, so later ones get a numeric suffix instead.
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}-{suffix}", suffix + 1
    taken.add(candidate)
    return candidate


def money(amount: Decimal) -> str:
    """Two decimals, computed on the Decimal itself so no binary rounding can creep in."""
    return f"{amount.quantize(CENT):f}"


# --- JSON -------------------------------------------------------------------------------------


def ledger_export_json(*, connection: Connection) -> dict[str, Any]:
    """The whole export as one dict; for large ledgers prefer `write_ledger`, which streams."""
    accounts = ledger_accounts(connection)
    return {
        **_json_head(connection, accounts),
        "entries": list(_json_entries(connection, accounts)),
    }


def _json_head(connection: Connection, accounts: dict[int, Account]) -> dict[str, Any]:
    return {
        "connection": {"name": connection.name, "slug": connection.slug},
        "currency": connection.currency,
        "accounts": [
            {"number": a.number, "name": a.name, "type": a.type, "active": a.active}
            for a in accounts.values()
        ],
        "customers": [
            {"number": c.number, "name": c.name, "source_ref": c.source_ref}
            for c in LedgerCustomer.objects.filter(connection=connection).order_by("number")
        ],
    }


def _json_entries(connection: Connection, accounts: dict[int, Account]) -> Iterator[dict[str, Any]]:
    for entry in posted_entries(connection):
        yield {
            "number": entry.number,
            "posting_date": entry.posting_date.isoformat(),
            "memo": entry.memo,
            "external_document_number": entry.external_document_number,
            "invoice": _json_invoice(entry),
            "lines": [_json_line(line, accounts) for line in entry.lines.all()],
        }


def _json_invoice(entry: JournalEntry) -> dict[str, str] | None:
    invoice = _invoice_of(entry)
    if invoice is None:
        return None
    return {
        "number": invoice.number,
        "customer_number": invoice.customer.number,
        "amount": money(invoice.amount),
    }


def _json_line(line: JournalLine, accounts: dict[int, Account]) -> dict[str, str]:
    return {
        "account": accounts[line.account_id].number,
        "debit": money(line.debit),
        "credit": money(line.credit),
        "description": line.description,
        "tax_code": line.tax_code,
    }


def _invoice_of(entry: JournalEntry) -> Any:
    # A reverse one-to-one raises rather than returning None when no invoice points at the entry.
    try:
        return entry.invoice
    except JournalEntry.invoice.RelatedObjectDoesNotExist:
        return None


def _write_json(connection: Connection, stream: TextStream) -> None:
    """Valid JSON written one entry per line, so 100,000 entries never sit in memory at once."""
    accounts = ledger_accounts(connection)
    head = json.dumps(_json_head(connection, accounts), ensure_ascii=False)
    stream.write(head[:-1] + ', "entries": [')
    separator = "\n"
    for entry in _json_entries(connection, accounts):
        stream.write(separator + json.dumps(entry, ensure_ascii=False))
        separator = ",\n"
    stream.write("\n]}\n")


# --- Beancount --------------------------------------------------------------------------------


def ledger_export_beancount(*, connection: Connection) -> str:
    """The whole export as one string; for large ledgers prefer `write_ledger`, which streams."""
    return "".join(_beancount_chunks(connection))


def _beancount_chunks(connection: Connection) -> Iterator[str]:
    currency = connection.currency.upper()
    accounts = ledger_accounts(connection)
    yield f"option {quote('title')} {quote(f'Crosswalk sandbox ledger: {connection.name}')}\n"
    yield f"option {quote('operating_currency')} {quote(currency)}\n\n"
    opened = _open_date(connection).isoformat()
    for account in accounts.values():
        yield f"{opened} open {account.beancount_name} {currency}\n"
    for entry in posted_entries(connection):
        yield "\n" + _beancount_transaction(entry, accounts, currency)


def _open_date(connection: Connection) -> date:
    first = JournalEntry.objects.filter(
        connection=connection, state=JournalEntry.State.POSTED
    ).aggregate(first=Min("posting_date"))["first"]
    return first or timezone.localdate()


def _beancount_transaction(entry: JournalEntry, accounts: dict[int, Account], currency: str) -> str:
    invoice = _invoice_of(entry)
    strings = [entry.memo] if invoice is None else [invoice.customer.name, entry.memo]
    header = f"{entry.posting_date.isoformat()} * " + " ".join(quote(s) for s in strings)
    lines = [header, _meta("number", entry.number, 2)]
    lines.append(_meta("external_document_number", entry.external_document_number, 2))
    if invoice is not None:
        lines.append(_meta("invoice", invoice.number, 2))
    for line in entry.lines.all():
        lines.extend(_beancount_posting(line, accounts[line.account_id], currency))
    return "\n".join(lines) + "\n"


def _beancount_posting(line: JournalLine, account: Account, currency: str) -> list[str]:
    # The database guarantees exactly one side is positive, so the difference is the signed leg.
    posting = [f"  {account.beancount_name}  {money(line.debit - line.credit)} {currency}"]
    if line.description:
        posting.append(_meta("description", line.description, 4))
    if line.tax_code:
        posting.append(_meta("tax_code", line.tax_code, 4))
    return posting


def _meta(key: str, value: str, indent: int) -> str:
    return f"{' ' * indent}{key}: {quote(value)}"


def quote(text: str) -> str:
    """A Beancount string literal; the backslash goes first so quotes are not escaped twice."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def beancount_account(account_type: str, number: str, name: str) -> str:
    """``<Root>:<number>-<Name>``, e.g. ``Liabilities:2200-Sales-Tax-Payable-NC-Misc``."""
    root = BEANCOUNT_ROOTS[AccountType(account_type)]
    parts = [part for part in (_component_words(number), _component_words(name)) if part]
    component = "-".join(parts) or "Account"
    # Beancount wants a capital letter or a digit first; the number may start with a lowercase.
    return f"{root}:{component[0].upper()}{component[1:]}"


def _component_words(text: str) -> str:
    """Letters and digits only, in dash-joined words, each starting with a capital."""
    # Decomposing first keeps "Café" as "Cafe" rather than dropping the accented letter.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[A-Za-z0-9]+", ascii_text)
    return "-".join(word[0].upper() + word[1:] for word in words)


# --- streaming entry point --------------------------------------------------------------------


def write_ledger(*, connection: Connection, fmt: str, stream: TextStream) -> None:
    """Write the export in `fmt` ("json" or "beancount") to `stream` piece by piece."""
    if fmt == "json":
        _write_json(connection, stream)
    elif fmt == "beancount":
        _write_all(_beancount_chunks(connection), stream)
    else:
        raise ValueError(f"Unknown ledger export format {fmt!r}; expected one of {FORMATS}.")


def _write_all(chunks: Iterable[str], stream: TextStream) -> None:
    for chunk in chunks:
        stream.write(chunk)
