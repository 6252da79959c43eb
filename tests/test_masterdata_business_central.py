"""Two-way master data with the fake Business Central: its customers changed since the last read
come in as changes from the ERP (only Crosswalk's own customers, codes for ids), and what the ERP
has not been told goes out as a PATCH with the customer's ETag; what it cannot take stays queued
with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from masterdata.models import Entity, MasterChange, MasterCursor, MasterRecord, Side
from masterdata.services import master_changes_receive, master_from_erp, master_outbox_send
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]

LATER = NOW + timedelta(hours=1)


@pytest.fixture
def bc(fake_bc):
    fake_bc.seed_demo_books()
    return fake_bc


@pytest.fixture
def connection(bc):
    return bc.connection()


def at(moment: datetime):
    return lambda: moment


def test_crosswalks_customers_changed_in_business_central_come_in_as_erp_changes(connection, bc):
    bc.clock = at(NOW)
    bc.add("customers", number="ST501", displayName="Harbor Foods", phoneNumber="919-555-0100",
           taxAreaId=bc.rows("taxAreas", code="NC")[0]["id"], blocked=" ")  # fmt: skip
    result = master_from_erp(connection=connection, now=LATER)
    assert result.read == 1  # C10000 (Adatum) is not one of Crosswalk's customers
    record = MasterRecord.objects.get()
    assert (record.entity, record.source_ref, record.erp_ref) == (Entity.CUSTOMER, "501", "ST501")
    assert record.values["name"] == "Harbor Foods" and record.values["tax_code"] == "NC"
    assert record.stamps["phone"] == {"side": Side.ERP, "at": NOW.isoformat()}
    assert MasterCursor.objects.get().changed_at == NOW


def test_blank_business_central_fields_never_blank_what_servicetrade_holds(connection, bc):
    master_changes_receive(connection=connection, entity=Entity.CUSTOMER, source_ref="501",
                           side=Side.SOURCE, values={"phone": "919-555-0100"},
                           changed_at=NOW - timedelta(days=1), actor="test", now=NOW)  # fmt: skip
    bc.clock = at(NOW)
    bc.add("customers", number="ST501", displayName="Harbor Foods", phoneNumber="", blocked=" ")
    master_from_erp(connection=connection, now=LATER)
    record = MasterRecord.objects.get()
    assert record.values == {"phone": "919-555-0100", "name": "Harbor Foods"}


def test_a_second_read_takes_only_what_changed_and_repeats_nothing(connection, bc):
    bc.clock = at(NOW)
    customer = bc.add("customers", number="ST501", displayName="Harbor Foods", blocked=" ")
    master_from_erp(connection=connection, now=LATER)
    decisions = MasterChange.objects.count()
    assert master_from_erp(connection=connection, now=LATER).read == 1  # the overlap re-reads it
    assert MasterChange.objects.count() == decisions
    bc.clock = at(LATER)
    bc.change("customers", {"id": customer["id"]}, displayName="Harbor Foods Inc.")
    master_from_erp(connection=connection, now=LATER + timedelta(hours=1))
    assert MasterRecord.objects.get().values["name"] == "Harbor Foods Inc."


def test_what_the_erp_was_not_told_goes_out_as_a_patch_with_the_etag(connection, bc):
    customer = bc.add("customers", number="ST501", displayName="Harbor Foods", blocked=" ")
    etag_before = customer["@odata.etag"]
    master_changes_receive(connection=connection, entity=Entity.CUSTOMER, source_ref="501",
                           side=Side.SOURCE, values={"name": "Harbor Foods Inc.", "phone": "1",
                                                     "payment_terms": "NET30"},
                           changed_at=NOW, actor="test", now=NOW)  # fmt: skip
    sent = master_outbox_send(connection=connection, now=LATER)
    assert (sent.told, sent.failed) == (1, 0)
    [updated] = bc.rows("customers", id=customer["id"])
    assert (updated["displayName"], updated["phoneNumber"]) == ("Harbor Foods Inc.", "1")
    assert updated["paymentTermsId"] == bc.rows("paymentTerms", code="NET30")[0]["id"]
    patch = [sent for sent in bc.sent if sent.method == "PATCH"]
    assert patch and patch[0].headers.get("If-Match") == etag_before
    assert updated["@odata.etag"] != etag_before


def test_an_unknown_code_or_a_missing_customer_stays_queued_with_the_reason(connection, bc):
    bc.add("customers", number="ST501", displayName="Harbor Foods", blocked=" ")
    for ref, values in (("501", {"tax_code": "ZZ"}), ("502", {"name": "New Co"})):
        master_changes_receive(connection=connection, entity=Entity.CUSTOMER, source_ref=ref,
                               side=Side.SOURCE, values=values, changed_at=NOW, actor="test",
                               now=NOW)  # fmt: skip
    sent = master_outbox_send(connection=connection, now=LATER)
    assert (sent.told, sent.failed) == (0, 2)
    errors = dict(MasterRecord.objects.values_list("source_ref", "send_error"))
    assert "no taxAreas code 'ZZ'" in errors["501"]
    assert "no customer ST502 yet" in errors["502"]
    assert MasterRecord.objects.exclude(outbox={}).count() == 2


def test_locations_are_refused_for_business_central_with_the_reason(connection, bc):
    master_changes_receive(connection=connection, entity=Entity.LOCATION, source_ref="9001",
                           side=Side.SOURCE, values={"street": "1 Pier Rd"}, changed_at=NOW,
                           actor="test", now=NOW)  # fmt: skip
    master_outbox_send(connection=connection, now=LATER)
    assert "only customers are kept in step" in MasterRecord.objects.get().send_error


def test_the_cursor_keeps_its_place_and_the_error_when_business_central_fails(connection, bc):
    from syncengine.erps.base import ConnectorError

    bc.inject("500", path_contains="customers", times=5)
    with pytest.raises(ConnectorError):
        master_from_erp(connection=connection, now=LATER)
    cursor = MasterCursor.objects.get()
    assert cursor.changed_at is None and cursor.last_error
    assert cursor.last_run_at == LATER.astimezone(UTC)


def test_the_command_reads_the_erps_changed_customers(connection, bc, capsys):
    from django.core.management import call_command

    bc.add("customers", number="ST501", displayName="Harbor Foods", blocked=" ")
    call_command("masterdata", "read-erp", "--connection", connection.slug)
    out = capsys.readouterr().out
    assert f"{connection.slug}: 1 customer(s) read" in out
    assert MasterRecord.objects.get().values["name"] == "Harbor Foods"
