"""`manage.py ledger export`: the sandbox ledger's posted books as JSON and as Beancount.

The Beancount files are checked by the real `bean-check`, and a tampered copy proves that the
check can fail, so a passing run means the export balances rather than that nothing was checked.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data as beancount_data
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from syncengine import services
from syncengine.erps.sandbox import export as export_module
from syncengine.erps.sandbox.export import (
    beancount_account,
    ledger_export_beancount,
    ledger_export_json,
)
from syncengine.erps.sandbox.models import (
    AccountType,
    JournalEntry,
    JournalLine,
    LedgerAccount,
    LedgerCustomer,
    LedgerInvoice,
)
from syncengine.models import Connection
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db

ODD_ACCOUNT_NAME = "Sales tax payable (NC) & misc"
ODD_CUSTOMER_NAME = 'Acme "Fire" \\ Safety'


def bean_check_binary() -> Path:
    found = shutil.which("bean-check")
    return Path(found) if found else Path(sys.executable).parent / "bean-check"


def bean_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bean_check_binary()), str(path)], capture_output=True, text=True, check=False
    )


def export(*args: str) -> str:
    out = io.StringIO()
    call_command("ledger", "export", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def make_accounts(connection: Connection) -> dict[str, LedgerAccount]:
    specs = [
        ("1100", "Accounts receivable", AccountType.ASSET, True),
        ("2200", ODD_ACCOUNT_NAME, AccountType.LIABILITY, True),
        ("3000", "Owner's equity", AccountType.EQUITY, True),
        ("4000", "Service revenue", AccountType.INCOME, True),
        ("4100", "Parts revenue", AccountType.INCOME, True),
        ("5000", "Café supplies", AccountType.EXPENSE, False),
    ]
    return {
        number: LedgerAccount.objects.create(
            connection=connection, number=number, name=name, type=kind, active=active
        )
        for number, name, kind, active in specs
    }


def make_entry(
    connection: Connection,
    number: str,
    posting_date: date,
    lines: list[tuple[LedgerAccount, str, str]],
    *,
    memo: str = "",
    post: bool = True,
) -> JournalEntry:
    """An entry the way the sandbox writes one: draft first, lines, then posted (if asked).

    Each line is (account, debit, credit); the database triggers refuse anything else.
    """
    entry = JournalEntry.objects.create(
        connection=connection,
        number=number,
        posting_date=posting_date,
        memo=memo,
        external_document_number=f"cw-{connection.slug}-{number}",
    )
    JournalLine.objects.bulk_create(
        JournalLine(
            entry=entry,
            account=account,
            debit=Decimal(debit),
            credit=Decimal(credit),
            description=f"{account.name} on {number}",
            tax_code="NC" if account.number == "2200" else "",
        )
        for account, debit, credit in lines
    )
    if post:
        entry.state = JournalEntry.State.POSTED
        entry.save(update_fields=["state"])
    return entry


def make_invoice(entry: JournalEntry, customer: LedgerCustomer, number: str, amount: str) -> None:
    LedgerInvoice.objects.create(
        connection=entry.connection,
        number=number,
        external_document_number=entry.external_document_number,
        customer=customer,
        posting_date=entry.posting_date,
        currency=entry.connection.currency,
        amount=Decimal(amount),
        journal_entry=entry,
    )


@pytest.fixture
def demo() -> Connection:
    """Three posted entries created out of order, plus one draft that must stay private."""
    connection = Connection.objects.create(name="Demo", slug="demo")
    accounts = make_accounts(connection)
    customer = LedgerCustomer.objects.create(
        connection=connection, number="C-000001", name=ODD_CUSTOMER_NAME, source_ref="42"
    )
    # Created first but dated last, so export order cannot simply follow insertion order.
    make_entry(
        connection,
        "JE-000003",
        date(2024, 3, 2),
        [(accounts["5000"], "12.34", "0"), (accounts["3000"], "0", "12.34")],
        memo='Owner paid "supplies" from C:\\petty cash',
    )
    cents = make_entry(
        connection,
        "JE-000001",
        date(2024, 3, 1),
        # 0.10 + 0.20 is 0.30000000000000004 as floats: only Decimal keeps this entry balanced.
        [
            (accounts["1100"], "0.30", "0"),
            (accounts["4000"], "0", "0.10"),
            (accounts["4100"], "0", "0.20"),
        ],
        memo="Invoice 1001 Acme",
    )
    make_invoice(cents, customer, "SI-000001", "0.30")
    # A discount debits revenue inside an invoice whose other revenue is credited.
    mixed = make_entry(
        connection,
        "JE-000002",
        date(2024, 3, 2),
        [
            (accounts["1100"], "90.00", "0"),
            (accounts["4000"], "0", "100.00"),
            (accounts["4000"], "17.25", "0"),
            (accounts["2200"], "0", "7.25"),
        ],
        memo="Invoice 1002 Acme",
    )
    make_invoice(mixed, customer, "SI-000002", "90.00")
    # Dated before everything else: if drafts leaked in they would also move the open date.
    make_entry(
        connection,
        "JE-000004",
        date(2024, 2, 1),
        [(accounts["1100"], "5.00", "0"), (accounts["4000"], "0", "5.00")],
        memo="Not approved yet",
        post=False,
    )
    return connection


def written_beancount(tmp_path: Path, *args: str) -> Path:
    path = tmp_path / "books.beancount"
    call_command(
        "ledger",
        "export",
        "--format",
        "beancount",
        "--output",
        str(path),
        *args,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    return path


def transactions(path: Path) -> list[beancount_data.Transaction]:
    entries, errors, _ = loader.load_file(str(path))
    assert errors == []
    return [entry for entry in entries if isinstance(entry, beancount_data.Transaction)]


# --- Beancount --------------------------------------------------------------------------------


def test_beancount_export_of_posted_invoices_passes_bean_check(demo, tmp_path):
    path = written_beancount(tmp_path, "--connection", "demo")

    result = bean_check(path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_invoices_posted_by_the_sync_engine_export_to_a_file_that_passes_bean_check(
    connection, tmp_path
):
    # The real pipeline, from ServiceTrade payload to posted entry, including a credit line.
    credit = {
        "id": 9,
        "description": "Goodwill credit",
        "itemType": "labor",
        "quantity": 1,
        "price": -20.00,
        "taxable": False,
    }
    ingest(connection, envelope())
    ingest(connection, envelope(id=4243, invoiceNumber="10483", items=[credit]))
    services.sync_run_until_idle(now=lambda: NOW)
    assert JournalEntry.objects.filter(state=JournalEntry.State.POSTED).count() == 2

    path = written_beancount(tmp_path, "--connection", connection.slug)
    result = bean_check(path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(transactions(path)) == 2


def test_bean_check_rejects_the_export_once_one_amount_is_tampered(demo, tmp_path):
    text = written_beancount(tmp_path, "--connection", "demo").read_text()
    assert text.count("-0.20 USD") == 1
    tampered = tmp_path / "tampered.beancount"
    tampered.write_text(text.replace("-0.20 USD", "-0.21 USD"))

    result = bean_check(tampered)

    assert result.returncode != 0
    assert "does not balance" in result.stderr


def test_beancount_postings_match_every_ledger_line_to_the_cent(demo, tmp_path):
    path = written_beancount(tmp_path, "--connection", "demo")
    lines = JournalLine.objects.filter(entry__state=JournalEntry.State.POSTED)

    postings = [p for txn in transactions(path) for p in txn.postings]

    assert sorted(p.units.number for p in postings) == sorted(
        line.debit - line.credit for line in lines
    )
    assert {p.units.currency for p in postings} == {"USD"}


def test_beancount_transactions_carry_payee_narration_and_document_numbers(demo, tmp_path):
    path = written_beancount(tmp_path, "--connection", "demo")

    by_number = {txn.meta["number"]: txn for txn in transactions(path)}

    invoiced = by_number["JE-000002"]
    assert invoiced.payee == ODD_CUSTOMER_NAME
    assert invoiced.narration == "Invoice 1002 Acme"
    assert invoiced.meta["external_document_number"] == "cw-demo-JE-000002"
    assert invoiced.meta["invoice"] == "SI-000002"
    journal_only = by_number["JE-000003"]
    assert journal_only.payee is None
    assert journal_only.narration == 'Owner paid "supplies" from C:\\petty cash'


def test_beancount_opens_every_account_on_the_first_posting_date(demo, tmp_path):
    path = written_beancount(tmp_path, "--connection", "demo")
    entries, _, options = loader.load_file(str(path))

    opens = [entry for entry in entries if isinstance(entry, beancount_data.Open)]

    assert {entry.date for entry in opens} == {date(2024, 3, 1)}
    assert "Liabilities:2200-Sales-Tax-Payable-NC-Misc" in {entry.account for entry in opens}
    assert len(opens) == LedgerAccount.objects.filter(connection=demo).count()
    assert options["operating_currency"] == ["USD"]
    assert options["title"] == "Crosswalk sandbox ledger: Demo"


def test_an_empty_ledger_still_exports_a_beancount_file_that_passes_bean_check(tmp_path):
    connection = Connection.objects.create(name="Empty", slug="empty")
    make_accounts(connection)

    result = bean_check(written_beancount(tmp_path))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("kind", "number", "name", "expected"),
    [
        (
            AccountType.LIABILITY,
            "2200",
            ODD_ACCOUNT_NAME,
            "Liabilities:2200-Sales-Tax-Payable-NC-Misc",
        ),
        (AccountType.EXPENSE, "5000", "Café supplies", "Expenses:5000-Cafe-Supplies"),
        (AccountType.ASSET, "ar.01", "receivables", "Assets:Ar-01-Receivables"),
        (AccountType.EQUITY, "3000", "(!)", "Equity:3000"),
        (AccountType.INCOME, "#", "", "Income:Account"),
    ],
)
def test_account_names_are_reduced_to_valid_beancount_components(kind, number, name, expected):
    assert beancount_account(kind, number, name) == expected


def test_accounts_whose_sanitised_names_collide_stay_distinct_in_beancount(tmp_path):
    connection = Connection.objects.create(name="Clash", slug="clash")
    first = LedgerAccount.objects.create(
        connection=connection, number="1-1", name="Cash", type=AccountType.ASSET
    )
    second = LedgerAccount.objects.create(
        connection=connection, number="1.1", name="Cash", type=AccountType.ASSET
    )
    make_entry(connection, "JE-1", date(2024, 1, 1), [(first, "1.00", "0"), (second, "0", "1.00")])

    text = ledger_export_beancount(connection=connection)

    assert "open Assets:1-1-Cash USD" in text
    assert "open Assets:1-1-Cash-2 USD" in text
    assert bean_check(_write(tmp_path, text)).returncode == 0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inline.beancount"
    path.write_text(text)
    return path


# --- JSON -------------------------------------------------------------------------------------


def test_json_export_round_trips_with_debits_equal_to_credits_in_every_entry(demo):
    exported = json.loads(export("--format", "json", "--connection", "demo"))

    assert len(exported["entries"]) == 3
    for entry in exported["entries"]:
        debits = sum((Decimal(line["debit"]) for line in entry["lines"]), Decimal(0))
        credits = sum((Decimal(line["credit"]) for line in entry["lines"]), Decimal(0))
        assert debits == credits, entry["number"]


def test_json_amounts_are_two_decimal_strings_so_cents_survive_exactly(demo):
    exported = ledger_export_json(connection=demo)

    first = exported["entries"][0]
    assert first["invoice"] == {
        "number": "SI-000001",
        "customer_number": "C-000001",
        "amount": "0.30",
    }
    assert [(line["debit"], line["credit"]) for line in first["lines"]] == [
        ("0.30", "0.00"),
        ("0.00", "0.10"),
        ("0.00", "0.20"),
    ]


def test_json_export_describes_connection_accounts_customers_and_lines(demo):
    exported = ledger_export_json(connection=demo)

    assert exported["connection"] == {"name": "Demo", "slug": "demo"}
    assert exported["currency"] == "USD"
    assert exported["accounts"][1] == {
        "number": "2200",
        "name": ODD_ACCOUNT_NAME,
        "type": "LIABILITY",
        "active": True,
    }
    assert exported["accounts"][-1]["active"] is False
    assert exported["customers"] == [
        {"number": "C-000001", "name": ODD_CUSTOMER_NAME, "source_ref": "42"}
    ]
    tax_line = exported["entries"][1]["lines"][-1]
    assert tax_line == {
        "account": "2200",
        "debit": "0.00",
        "credit": "7.25",
        "description": f"{ODD_ACCOUNT_NAME} on JE-000002",
        "tax_code": "NC",
    }
    assert exported["entries"][2]["invoice"] is None


def test_streamed_json_from_the_command_equals_the_in_memory_export(demo):
    streamed = json.loads(export("--format", "json", "--connection", "demo"))

    assert streamed == ledger_export_json(connection=demo)


# --- both formats -----------------------------------------------------------------------------


def test_draft_entries_are_left_out_of_both_exports(demo):
    exported = ledger_export_json(connection=demo)
    beancount = ledger_export_beancount(connection=demo)

    assert "JE-000004" not in {entry["number"] for entry in exported["entries"]}
    assert "JE-000004" not in beancount
    assert "Not approved yet" not in beancount


def test_entries_are_exported_by_posting_date_then_number(demo, tmp_path):
    exported = ledger_export_json(connection=demo)
    path = written_beancount(tmp_path, "--connection", "demo")

    expected = ["JE-000001", "JE-000002", "JE-000003"]
    assert [entry["number"] for entry in exported["entries"]] == expected
    assert [txn.meta["number"] for txn in transactions(path)] == expected


def test_export_contains_only_the_chosen_connections_books(demo):
    other = Connection.objects.create(name="Other", slug="other")
    accounts = make_accounts(other)
    make_entry(
        other,
        "JE-900001",
        date(2024, 1, 1),
        [(accounts["1100"], "1", "0"), (accounts["4000"], "0", "1")],
    )

    exported = ledger_export_json(connection=demo)

    assert "JE-900001" not in {entry["number"] for entry in exported["entries"]}
    assert len(exported["accounts"]) == len(accounts)


@pytest.mark.parametrize("fmt", ["json", "beancount"])
def test_export_query_count_does_not_grow_with_the_number_of_entries(fmt):
    connection = Connection.objects.create(name="Many", slug="many")
    accounts = make_accounts(connection)
    customer = LedgerCustomer.objects.create(
        connection=connection, number="C-1", name="Acme", source_ref="1"
    )

    def queries_for_export() -> int:
        with CaptureQueriesContext(db_connection) as captured:
            export("--format", fmt)
        return len(captured)

    def add_invoices(start: int, stop: int) -> None:
        for n in range(start, stop):
            lines = [(accounts["1100"], "2.00", "0"), (accounts["4000"], "0", "2.00")]
            entry = make_entry(connection, f"JE-{n:06d}", date(2024, 1, 1), lines)
            make_invoice(entry, customer, f"SI-{n:06d}", "2.00")

    add_invoices(0, 2)
    few = queries_for_export()
    add_invoices(2, 40)

    assert queries_for_export() == few


def test_entries_spread_over_several_chunks_keep_their_own_lines(demo, monkeypatch):
    # Lines are prefetched per chunk; a chunk boundary must not shift lines between entries.
    monkeypatch.setattr(export_module, "CHUNK_SIZE", 2)
    chunked = ledger_export_json(connection=demo)
    monkeypatch.setattr(export_module, "CHUNK_SIZE", 1000)

    assert chunked == ledger_export_json(connection=demo)
    assert [len(entry["lines"]) for entry in chunked["entries"]] == [3, 4, 2]


# --- the command ------------------------------------------------------------------------------


def test_ledger_export_with_an_unknown_connection_names_the_available_slugs(demo):
    Connection.objects.create(name="Other", slug="other")

    with pytest.raises(CommandError, match="No connection 'nope'.*demo, other"):
        export("--format", "json", "--connection", "nope")


def test_ledger_export_without_a_connection_asks_for_one_when_there_are_several(demo):
    Connection.objects.create(name="Other", slug="other")

    with pytest.raises(CommandError, match="choose one with --connection: demo, other"):
        export("--format", "beancount")


def test_ledger_export_uses_the_only_connection_when_none_is_named(demo):
    text = export("--format", "beancount")

    assert text == ledger_export_beancount(connection=demo)


def test_ledger_export_writes_to_stdout_when_output_is_a_dash(demo):
    assert json.loads(export("--format", "json", "--output", "-"))["connection"]["slug"] == "demo"


def test_ledger_export_refuses_an_unknown_format(demo):
    with pytest.raises(CommandError, match="invalid choice"):
        export("--format", "csv")


def test_ledger_export_into_a_missing_folder_fails_without_writing(demo, tmp_path):
    target = tmp_path / "missing" / "books.json"

    with pytest.raises(CommandError, match="does not exist"):
        export("--format", "json", "--output", str(target))

    assert not target.exists()
