"""Two-way master data: each field decided by the crosswalk's ownership rules (ERP, ServiceTrade,
or the newest change), every decision audited with both times, the loser told the winning value,
and each side told what it has not been told — through the fake ServiceTrade and the sandbox."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from mappings import services as mapping_services
from masterdata.models import Entity, MasterChange, MasterRecord, Side
from masterdata.services import (
    MasterDataRefused,
    master_changes_receive,
    master_from_servicetrade,
    master_outbox_send,
    master_records_receive,
)
from syncengine import services
from syncengine.erps.sandbox.models import LedgerCustomer
from tests.conftest import NOW, envelope, ingest
from tests.fakes.servicetrade import st_connection

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade"]

EARLIER, LATER = NOW - timedelta(hours=1), NOW + timedelta(hours=1)


def receive(connection, side, values, at, *, entity=Entity.CUSTOMER, ref="501", **extra):
    return master_changes_receive(connection=connection, entity=entity, source_ref=ref,
                                  side=side, values=values, changed_at=at, actor="test",
                                  now=NOW, **extra)  # fmt: skip


def own(connection, **owners):
    for name, owner in owners.items():
        mapping_services.draft_field_owner_set(
            connection=connection, entity="CUSTOMER", field=name, owner=owner, actor="finance",
            now=NOW,
        )  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=date(2026, 1, 1),
                                   reason="Who owns what", actor="finance", now=NOW)  # fmt: skip
    connection.refresh_from_db()


def test_without_a_rule_the_newest_change_wins_and_the_older_one_is_logged_with_both_times(
    connection,
):
    receive(connection, Side.SOURCE, {"phone": "919-555-0100"}, NOW)
    result = receive(connection, Side.ERP, {"phone": "919-555-0199"}, EARLIER)
    assert result.lost == ["phone"]
    record = MasterRecord.objects.get()
    assert record.values["phone"] == "919-555-0100"
    lost = MasterChange.objects.get(outcome=MasterChange.Outcome.LOST)
    assert (lost.value, lost.changed_at, lost.standing_value, lost.standing_at) == (
        "919-555-0199", EARLIER, "919-555-0100", NOW,
    )  # fmt: skip
    assert lost.standing_side == Side.SOURCE
    assert lost.reason == (
        "Older than the standing change from ServiceTrade (2026-11-20 15:00:00 UTC); "
        "the newer value stays."
    )
    # The ERP is told the winning value back; ServiceTrade already has it.
    assert record.outbox == {Side.ERP: {"phone": "919-555-0100"}}


def test_a_newer_change_from_the_other_side_wins_and_is_queued_for_the_first(connection):
    receive(connection, Side.SOURCE, {"email": "ap@harbor.example"}, NOW)
    receive(connection, Side.ERP, {"email": "billing@harbor.example"}, LATER)
    record = MasterRecord.objects.get()
    assert record.values["email"] == "billing@harbor.example"
    assert record.stamps["email"] == {"side": Side.ERP, "at": LATER.isoformat()}
    assert record.outbox == {Side.SOURCE: {"email": "billing@harbor.example"}}


def test_the_erp_owns_tax_setup_so_a_newer_servicetrade_change_loses(connection):
    own(connection, tax_code="ERP", street="SOURCE")
    receive(connection, Side.ERP, {"tax_code": "NC-7.25"}, EARLIER)
    result = receive(connection, Side.SOURCE, {"tax_code": "EXEMPT"}, LATER)
    assert result.lost == ["tax_code"]
    record = MasterRecord.objects.get()
    assert record.values["tax_code"] == "NC-7.25"
    lost = record.changes.get(outcome="LOST")
    assert lost.reason == "the ERP owns CUSTOMER.tax_code; its value was sent back."
    # tax_code is an ERP-only field: nothing to send to ServiceTrade.
    assert Side.SOURCE not in record.outbox


def test_servicetrade_owns_the_address_so_an_erp_edit_is_sent_back(connection):
    own(connection, street="SOURCE")
    receive(connection, Side.SOURCE, {"street": "12 Dock St"}, EARLIER)
    receive(connection, Side.ERP, {"street": "12 Dock Street"}, LATER)
    record = MasterRecord.objects.get()
    assert record.values["street"] == "12 Dock St"
    assert record.outbox == {Side.ERP: {"street": "12 Dock St"}}


def test_the_owners_own_late_delivery_does_not_undo_its_newer_change(connection):
    own(connection, tax_code="ERP")
    receive(connection, Side.ERP, {"tax_code": "NC-7.25"}, LATER)
    result = receive(connection, Side.ERP, {"tax_code": "NC-6.75"}, EARLIER)
    assert result.lost == ["tax_code"]
    assert MasterRecord.objects.get().values["tax_code"] == "NC-7.25"


def test_a_side_repeating_a_value_that_lost_is_not_a_new_change(connection):
    receive(connection, Side.ERP, {"phone": "919-555-0199"}, LATER)
    receive(connection, Side.SOURCE, {"phone": "919-555-0100"}, NOW)  # older: lost
    # ServiceTrade's record is read again because another field changed: its `updated` is newer,
    # but the phone it shows is the one it said before, not a change of the phone.
    result = receive(connection, Side.SOURCE, {"phone": "919-555-0100", "email": "a@b.example"},
                     LATER + timedelta(hours=1))  # fmt: skip
    record = MasterRecord.objects.get()
    assert record.values["phone"] == "919-555-0199" and result.applied == ["email"]
    assert record.changes.filter(field="phone").count() == 2  # the first two decisions only
    assert record.outbox[Side.SOURCE] == {"phone": "919-555-0199"}


def test_after_being_told_a_side_changing_back_to_its_old_value_is_a_change(connection, fake_st):
    connection = st_connection(connection, fake_st)
    location = fake_st.add("location", name="Harbor Foods #12", phoneNumber="919-555-0100")
    ref = str(location["id"])
    receive(connection, Side.ERP, {"phone": "919-555-0199"}, LATER, entity=Entity.LOCATION,
            ref=ref)  # fmt: skip
    receive(connection, Side.SOURCE, {"phone": "919-555-0100"}, NOW, entity=Entity.LOCATION,
            ref=ref)  # fmt: skip
    master_outbox_send(connection=connection, now=LATER)  # ServiceTrade now shows ...0199
    result = receive(connection, Side.SOURCE, {"phone": "919-555-0100"},
                     LATER + timedelta(hours=1), entity=Entity.LOCATION, ref=ref)  # fmt: skip
    assert result.applied == ["phone"]
    assert MasterRecord.objects.get().values["phone"] == "919-555-0100"


def test_a_repeated_delivery_with_a_later_time_does_not_move_the_values_time(connection):
    receive(connection, Side.SOURCE, {"phone": "919-555-0100"}, NOW)
    receive(connection, Side.SOURCE, {"phone": "919-555-0100"}, LATER + timedelta(hours=5))
    # An ERP change made after the real ServiceTrade change still wins.
    result = receive(connection, Side.ERP, {"phone": "919-555-0199"}, LATER)
    assert result.applied == ["phone"]


def test_the_same_value_again_records_nothing_new(connection):
    receive(connection, Side.SOURCE, {"name": "Harbor Foods"}, NOW)
    receive(connection, Side.ERP, {"name": "Harbor Foods"}, LATER)
    record = MasterRecord.objects.get()
    assert MasterChange.objects.count() == 1
    # The ERP reported the same name: it has it, so it is no longer waiting to be told.
    assert record.outbox == {}


def test_unknown_entities_sides_and_fields_are_refused_and_nothing_is_stored(connection):
    with pytest.raises(MasterDataRefused, match="CUSTOMER has no field colour"):
        receive(connection, Side.SOURCE, {"colour": "red"}, NOW)
    with pytest.raises(MasterDataRefused, match="Unknown side"):
        receive(connection, "CRM", {"name": "x"}, NOW)
    assert not MasterRecord.objects.exists()


def test_a_file_of_changes_takes_the_good_items_and_names_the_bad_ones(connection):
    taken, errors = master_records_receive(connection=connection, side=Side.ERP,
                                           entity=Entity.CUSTOMER, actor="test", now=NOW, items=[
        {"source_ref": "501", "values": {"name": "Harbor Foods"}, "changed_at": NOW.isoformat()},
        {"values": {"name": "No ref"}, "changed_at": NOW.isoformat()},
        {"source_ref": "5102", "values": {"name": "x"}, "changed_at": "2026-11-20T10:00"},
        {"source_ref": "5103", "values": {"fax": "1"}, "changed_at": NOW.isoformat()},
    ])  # fmt: skip
    assert taken == 1
    assert errors == [
        "item 1: source_ref is required",
        "item 2: changed_at needs a time zone, e.g. 2026-11-20T15:00Z",
        "item 3: CUSTOMER has no field fax; known: city, email, name, payment_terms, phone, "
        "postal_code, state, street, tax_code.",
    ]


def test_the_audit_of_master_data_cannot_be_changed(connection):
    receive(connection, Side.SOURCE, {"name": "Harbor Foods"}, NOW)
    with pytest.raises(DatabaseError), transaction.atomic():
        MasterChange.objects.update(value="Edited")
    with pytest.raises(DatabaseError), transaction.atomic():
        MasterChange.objects.all().delete()


# --- telling each side ---------------------------------------------------------------------------


def test_servicetrade_and_the_sandbox_are_told_what_they_had_not_been_told(connection, fake_st):
    connection = st_connection(connection, fake_st)
    location = fake_st.add("location", name="Harbor Foods #12", companyId=501,
                           address={"street": "1 Pier Rd", "city": "Wilmington", "state": "NC",
                                    "postalCode": "28401"})  # fmt: skip
    ingest(connection, envelope())  # company 501's first invoice creates its ERP customer
    services.sync_run_until_idle(now=lambda: NOW)
    receive(connection, Side.ERP, {"street": "2 Pier Rd", "phone": "910-555-0101"}, LATER,
            entity=Entity.LOCATION, ref=str(location["id"]))  # fmt: skip
    receive(connection, Side.SOURCE, {"name": "Harbor Foods Inc.", "email": "ap@harbor.example"},
            LATER)  # fmt: skip
    sent = master_outbox_send(connection=connection, now=LATER)
    assert (sent.told, sent.failed, sent.errors) == (2, 0, [])
    told = fake_st.entities["location"][location["id"]]
    assert (told["addressStreet"], told["phoneNumber"]) == ("2 Pier Rd", "910-555-0101")
    customer = LedgerCustomer.objects.get(source_ref="501")
    assert customer.name == "Harbor Foods Inc."
    assert customer.details == {"email": "ap@harbor.example"}
    assert not MasterRecord.objects.exclude(outbox={}).exists()


def test_a_side_that_cannot_take_the_change_keeps_it_queued_with_the_reason(connection):
    receive(connection, Side.SOURCE, {"name": "Harbor Foods Inc."}, LATER, ref="9999")
    receive(connection, Side.SOURCE, {"first_name": "Ana"}, LATER, entity=Entity.CONTACT)
    sent = master_outbox_send(connection=connection, now=LATER)
    assert (sent.told, sent.failed) == (0, 2)
    customer = MasterRecord.objects.get(entity=Entity.CUSTOMER)
    assert customer.outbox == {Side.ERP: {"name": "Harbor Foods Inc."}}
    assert "no customer for ServiceTrade company 9999 yet" in customer.send_error
    contact = MasterRecord.objects.get(entity=Entity.CONTACT)
    assert "keeps customers only" in contact.send_error


def test_servicetrade_records_are_read_with_their_own_update_times(connection):
    taken, errors = master_from_servicetrade(connection=connection, entity=Entity.LOCATION,
                                             actor="test", now=NOW, records=[
        {"id": 9001, "name": "Harbor Foods #12", "updated": int(EARLIER.timestamp()),
         "address": {"street": "1 Pier Rd", "city": "Wilmington", "state": "NC",
                     "postalCode": "28401"}, "taxable": True},
    ])  # fmt: skip
    assert (taken, errors) == (1, [])
    record = MasterRecord.objects.get()
    assert record.values == {"name": "Harbor Foods #12", "street": "1 Pier Rd",
                             "city": "Wilmington", "state": "NC", "postal_code": "28401",
                             "taxable": True}  # fmt: skip
    assert record.stamps["street"] == {"side": Side.SOURCE, "at": EARLIER.isoformat()}


def test_the_command_receives_a_file_sends_and_shows_what_was_lost(connection, tmp_path, capsys):
    path = tmp_path / "erp.json"
    path.write_text(json.dumps([{"source_ref": "501", "values": {"phone": "1"},
                                 "changed_at": EARLIER.isoformat()}]))  # fmt: skip
    receive(connection, Side.SOURCE, {"phone": "2"}, NOW)
    call_command("masterdata", "receive", "--connection", "demo", "--side", "ERP", "--entity",
                 "CUSTOMER", str(path))  # fmt: skip
    call_command("masterdata", "show", "--connection", "demo")
    out = capsys.readouterr().out
    assert "1 change(s) taken, 0 refused." in out
    assert "phone: ERP '1'" in out and "lost to SOURCE '2'" in out
    with pytest.raises(CommandError, match="stay queued"):
        call_command("masterdata", "send", "--connection", "demo")
