"""`manage.py preview_posting` for job item costs, timecards and PartsLedger procurement on the
sandbox ledger: what it prints is what posting then writes, line for line, and a preview stores
nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from syncengine.erps.sandbox.models import JournalLine, LedgerPosting, LedgerTimeEntry
from syncengine.models import SourceDocument, SourceReceipt, SyncRecord
from syncengine.services import NOT_POSTED
from tests.test_costs_procurement import (
    ITEM,
    LABOR,
    PROCUREMENT,
    cost_books,
    ingest_costs,
    ingest_procurement,
    job_items,
    post_due,
)
from tests.test_timecards import CARD, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def books(connection):
    return cost_books(connection)


def write(tmp_path: Path, data: Any, name: str = "file.json") -> Path:
    path = tmp_path / name
    path.write_text(data.decode() if isinstance(data, bytes) else json.dumps(data))
    return path


def preview(slug: str, path: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("preview_posting", "--connection", slug, "--document", str(path), stdout=out,
                 stderr=err)  # fmt: skip
    return out.getvalue(), err.getvalue()


def blocks(out: str) -> dict[str, dict[str, Any]]:
    """Each document the preview printed, by title: its heading, requests and notes, or why it
    is not posted."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    found: dict[str, dict[str, Any]] = {}
    at, last = 0, ""
    while at < len(out):
        end = out.index("\n", at)
        line = out[at:end]
        if line.startswith("Note: "):
            found[last]["notes"].append(line.removeprefix("Note: "))
            at = end + 1
        elif line.endswith(":"):
            last = line.split(", ")[0]
            requests, at = decoder.raw_decode(out, end + 1)
            found[last] = {"heading": line, "requests": requests, "notes": []}
            at += 1  # the newline after the JSON
        else:
            title, reason = line.split(": ", 1)
            found[title] = {"not_posted": reason}
            at = end + 1
    return found


def nothing_stored() -> bool:
    return not (SourceReceipt.objects.exists() or SourceDocument.objects.exists()
                or SyncRecord.objects.exists() or LedgerPosting.objects.exists()
                or LedgerTimeEntry.objects.exists())  # fmt: skip


def ledger_lines(key: str) -> set[tuple[str, Decimal, Decimal, str, tuple]]:
    return {(line.account.number, line.debit, line.credit, line.description,
             tuple(sorted(line.dimensions.items())))
            for line in JournalLine.objects.filter(entry__external_document_number=key)
            .select_related("account")}  # fmt: skip


def previewed_lines(entry: dict[str, Any]) -> set[tuple[str, Decimal, Decimal, str, tuple]]:
    return {(line["account"], Decimal(line["debit"]), Decimal(line["credit"]),
             line["description"], tuple(sorted(line["dimensions"].items())))
            for line in entry["lines"]}  # fmt: skip


def test_a_job_cost_file_previews_the_journal_the_sandbox_then_posts_and_stores_nothing(
    books, tmp_path
):
    out, _ = preview("demo", write(tmp_path, job_items(ITEM, LABOR)))
    assert nothing_stored()
    shown = blocks(out)
    part = shown["Job item cost J-1042/88001 (ServiceTrade 88001)"]
    assert part["heading"].endswith(", total 122.25 USD, key ST-JC-88001, rules version 2, to "
                                    "Sandbox ledger:")  # fmt: skip
    [entry] = part["requests"]
    assert (entry["external_document_number"], entry["posting_date"], entry["amount"]) == (
        "ST-JC-88001", "2026-11-26", "122.25")  # fmt: skip
    ingest_costs(books, job_items(ITEM, LABOR))
    post_due()
    assert previewed_lines(entry) == ledger_lines("ST-JC-88001")
    [labor] = shown["Job item cost J-1042/88002 (ServiceTrade 88002)"]["requests"]
    assert previewed_lines(labor) == ledger_lines("ST-JC-88002")


def test_a_procurement_file_previews_purchase_invoices_and_adjustments_as_posted_and_says_why_the_rest_is_kept(  # noqa: E501
    books, tmp_path
):
    out, _ = preview("demo", write(tmp_path, PROCUREMENT))
    assert nothing_stored()
    shown = blocks(out)
    assert shown["Vendor Ferguson Supply (PartsLedger V-100)"] == {
        "not_posted": NOT_POSTED["VENDOR"]}  # fmt: skip
    assert shown["Purchase order 4411 (PartsLedger PO-4411)"] == {
        "not_posted": NOT_POSTED["PURCHASE_ORDER"]}  # fmt: skip
    assert shown["Receipt R-9 (PartsLedger RC-9)"] == {"not_posted": NOT_POSTED["RECEIPT"]}
    invoice = shown["Purchase invoice INV-5531 (PartsLedger PI-5531)"]
    vendor, entry = invoice["requests"]
    # The vendor's name comes from the same file: it was never imported before.
    assert vendor["vendor"] == {"source_ref": "V-100", "name": "Ferguson Supply"}
    assert (entry["vendor_document_number"], entry["amount"], entry["due_date"]) == (
        "INV-5531", "433.26", "2026-12-25")  # fmt: skip
    [adjustment] = shown["Inventory adjustment ADJ-3 (PartsLedger IA-3)"]["requests"]
    ingest_procurement(books, PROCUREMENT)
    post_due()
    assert previewed_lines(entry) == ledger_lines("ST-PI-PI-5531")
    assert previewed_lines(adjustment) == ledger_lines("ST-IA-IA-3")


def test_a_timecard_previews_the_time_entries_the_sandbox_then_writes(connection, tmp_path):
    out, _ = preview("demo", write(tmp_path, {"data": CARD}))
    assert nothing_stored()
    card = blocks(out)["Timecard TC-77 of Maria Lopez"]
    assert card["heading"].startswith("Timecard TC-77 of Maria Lopez, 18.00 hours, key ST-TC-TC-77")
    [batch] = card["requests"]
    send(connection, CARD)
    post_due()
    fields = ("external_document_number", "employee", "work_date", "hours", "pay_type",
              "job_number", "cost_code", "department", "clock_in", "clock_out")  # fmt: skip

    def row(value: Any) -> tuple:
        return tuple(Decimal(value("hours")) if name == "hours" else str(value(name))
                     for name in fields)  # fmt: skip

    written = {
        row(lambda name, e=entry: getattr(e, name)) for entry in LedgerTimeEntry.objects.all()
    }
    assert {row(entry.get) for entry in batch["entries"]} == written


def test_a_timecard_not_approved_says_it_is_not_posted_and_the_command_succeeds(
    connection, tmp_path
):
    out, _ = preview("demo", write(tmp_path, {"data": {**CARD, "status": "submitted"}}))
    assert out == "Timecard TC-77 of Maria Lopez: Status 'submitted': only approved time is " \
        "posted.\n"  # fmt: skip


def test_job_costs_the_rules_cannot_code_print_every_problem_and_fail(connection, tmp_path):
    err = StringIO()
    with pytest.raises(CommandError, match="2 of 2 document"):
        call_command("preview_posting", "--document", str(write(tmp_path, job_items(ITEM, LABOR))),
                     stderr=err, stdout=StringIO())  # fmt: skip
    assert "Job item cost J-1042/88001 (ServiceTrade 88001) is blocked:" in err.getvalue()
    assert err.getvalue().count("No job cost account is configured") == 2
    assert nothing_stored()


def test_a_purchase_invoice_of_a_vendor_in_no_import_is_blocked_naming_the_vendor(books, tmp_path):
    data = {
        "format": "crosswalk-procurement/1",
        "purchaseInvoices": [{**PROCUREMENT["purchaseInvoices"][0], "vendorId": "V-404"}],
    }
    err = StringIO()
    with pytest.raises(CommandError, match="1 of 1 document"):
        call_command("preview_posting", "--document", str(write(tmp_path, data)), stderr=err,
                     stdout=StringIO())  # fmt: skip
    assert "UNKNOWN_VENDOR: Vendor V-404 is in no procurement import yet" in err.getvalue()


def test_a_lone_job_item_is_told_by_its_shape_and_kind_says_otherwise_when_asked(books, tmp_path):
    path = write(tmp_path, {"data": ITEM})  # one job item, no jobItems list around it
    out = StringIO()
    call_command("preview_posting", "--document", str(path), stdout=out)
    assert out.getvalue().startswith("Job item cost J-1042/88001 (ServiceTrade 88001), total")
    err = StringIO()
    with pytest.raises(CommandError, match="1 of 1 document"):
        call_command("preview_posting", "--document", str(path), "--kind", "invoices",
                     stdout=StringIO(), stderr=err)  # fmt: skip
    assert "data.invoiceNumber: required" in err.getvalue()
