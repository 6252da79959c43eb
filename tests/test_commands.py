import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import SourceDocument, SyncRecord, SyncState
from tests.conftest import invoice_data

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_ingest_accepts_good_files_and_names_the_file_and_field_of_a_bad_one(connection, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"data": invoice_data()}))
    bad = tmp_path / "bad.json"
    bad_invoice = invoice_data(id=9, invoiceNumber="B-9")
    bad_invoice["transactionDate"] = "yesterday"
    bad.write_text(json.dumps({"data": bad_invoice}))
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("ingest", str(good), str(bad), stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert err.getvalue().strip() == (
        f'{bad}: data.transactionDate: expected epoch seconds, got "yesterday"'
    )
    assert list(SourceDocument.objects.values_list("number", flat=True)) == ["10482"]


def test_ingest_reports_what_it_accepted(connection, tmp_path):
    path = tmp_path / "page.json"
    path.write_text(json.dumps({"data": {"invoices": [invoice_data(id=1), invoice_data(id=2)]}}))
    out, _ = run("ingest", str(path))
    assert out.strip() == "2 invoice(s) accepted, 0 already up to date, 0 problem(s) found."


def test_ingest_explains_a_missing_connection_or_file(db, tmp_path):
    with pytest.raises(CommandError, match="There is no connection yet"):
        run("ingest", str(tmp_path / "x.json"))


def test_sync_until_idle_posts_everything_due_and_says_what_happened(connection, tmp_path):
    path = tmp_path / "page.json"
    items = [
        {
            "id": 1,
            "itemType": "labor",
            "quantity": "1",
            "price": "50",
            "serviceLine": {"name": "Backflow Testing"},
        }
    ]
    page = [invoice_data(id=1), invoice_data(id=2, items=items)]
    path.write_text(json.dumps({"data": {"invoices": page}}))
    run("ingest", str(path))
    out, _ = run("sync", "--until-idle")
    assert out.strip() == "2 attempt(s): 1 blocked, 1 posted."
    assert LedgerInvoice.objects.count() == 1
    out, _ = run("sync", "--until-idle")
    assert out.strip() == "0 attempt(s): nothing was due."


def test_load_demo_is_idempotent_and_posts_cleanly(db):
    first, _ = run("load_demo", "--invoices", "60", "--seed", "3")
    second, _ = run("load_demo", "--invoices", "60", "--seed", "3")
    assert "60 invoice(s) new or changed, 0 unchanged" in first
    assert "0 invoice(s) new or changed, 60 unchanged" in second
    assert SyncRecord.objects.filter(document__kind="INVOICE").count() == 60
    assert SyncRecord.objects.filter(document__kind="TIMECARD").count() == 16
    run("sync", "--until-idle")
    states = set(SyncRecord.objects.values_list("state", flat=True))
    assert states <= {SyncState.POSTED, SyncState.SKIPPED, SyncState.BLOCKED}
    assert SyncRecord.objects.filter(state=SyncState.POSTED).count() >= 45
    posted = SyncRecord.objects.filter(state=SyncState.POSTED, document__kind="INVOICE")
    for record in posted.select_related("document"):
        assert LedgerInvoice.objects.get(pk=record.erp_document_id).amount == record.document.total


def test_load_demo_shows_a_customer_both_sides_edited_once_however_often_it_runs(db):
    from masterdata.models import MasterChange, MasterRecord

    run("load_demo", "--invoices", "5", "--seed", "3")
    run("load_demo", "--invoices", "5", "--seed", "3")
    record = MasterRecord.objects.get()
    assert record.values == {"phone": "919-555-0142", "email": "ap@example.com",
                             "payment_terms": "NET30"}  # fmt: skip
    assert record.outbox == {"ERP": {"phone": "919-555-0142", "email": "ap@example.com"}}
    lost = MasterChange.objects.get(outcome="LOST")
    assert (lost.field, lost.value, lost.standing_value) == ("phone", "919-555-0100",
                                                              "919-555-0142")  # fmt: skip
    assert MasterChange.objects.count() == 4  # phone, email, the lost phone, payment terms


def test_demo_invoices_are_the_same_for_the_same_seed_and_differ_across_seeds():
    from console.demo import demo_invoices

    assert list(demo_invoices(seed=1, count=5)) == list(demo_invoices(seed=1, count=5))
    assert list(demo_invoices(seed=1, count=5)) != list(demo_invoices(seed=2, count=5))
