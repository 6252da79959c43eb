"""ServiceTrade companies, locations and contacts feed two-way master data on every way in
(webhook, polling, backfill) when the connection's `master_data` is on; against the fake
ServiceTrade and a real database. Repeats, late deliveries, 429s and 5xx change nothing twice."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command

from masterdata.models import Entity, MasterChange, MasterRecord, Side
from masterdata.services import master_changes_receive, master_outbox_send
from syncengine.models import SourceCursor, SourceDocument, SourceReceipt
from syncengine.sources.servicetrade_api import sync
from syncengine.sources.servicetrade_api.client import ServiceTradeError, to_epoch
from tests.conftest import NOW
from tests.fakes.servicetrade import make_client, st_connection
from tests.test_servicetrade_sync import SECRET, django_sender, hook_path

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade"]

SINCE = date(2026, 10, 1)
KINDS = ("company", "location", "contact")


@pytest.fixture
def api_connection(connection, fake_st):
    fake_st.clock = lambda: to_epoch(NOW) - 3600
    connection = st_connection(connection, fake_st, master_data=True)
    connection.webhook_secret_hash = connection.hash_secret(SECRET)
    connection.save(update_fields=["webhook_secret_hash"])
    return connection


def kept(entity, ref):
    return MasterRecord.objects.get(entity=entity, source_ref=str(ref))


def at(moment):
    return lambda: to_epoch(moment)


# --- webhooks -----------------------------------------------------------------------------------


def test_a_company_event_re_fetches_the_company_and_keeps_its_fields_as_master_data(
    client, api_connection, fake_st
):
    company = fake_st.add_company(name="Harbor Foods")
    delivery = fake_st.deliver(hook_path(api_connection), [("company", company["id"], "updated")],
                               send=django_sender(client))  # fmt: skip
    assert delivery.attempts == [202]
    assert fake_st.calls("GET", f"/company/{company['id']}") == [{}]
    record = kept(Entity.CUSTOMER, company["id"])
    assert record.values == {"name": "Harbor Foods", "street": "1 Harbor Way", "city": "Raleigh",
                             "state": "NC", "postal_code": "27601", "phone": "919-555-0100",
                             "email": "ap@harbor.example"}  # fmt: skip
    assert record.stamps["name"] == {"side": Side.SOURCE,
                                     "at": (NOW - timedelta(hours=1)).isoformat()}  # fmt: skip
    assert MasterChange.objects.filter(actor="servicetrade webhook").count() == 7
    receipt = SourceReceipt.objects.get(channel=SourceReceipt.Channel.WEBHOOK)
    assert (receipt.outcome, receipt.errors) == (SourceReceipt.Outcome.ACCEPTED, [])


def test_location_and_contact_events_named_by_their_type_codes_are_re_fetched_too(
    client, api_connection, fake_st
):
    company = fake_st.add_company()
    location = fake_st.add_location(company_id=company["id"])
    contact = fake_st.add_contact(first_name="Dana", last_name="Reyes")
    fake_st.deliver(hook_path(api_connection),
                    [("11", location["id"], "updated"), ("22", contact["id"], "created")],
                    send=django_sender(client))  # fmt: skip
    assert kept(Entity.LOCATION, location["id"]).values["taxable"] is True
    assert kept(Entity.CONTACT, contact["id"]).name == "Dana Reyes"
    assert not MasterRecord.objects.filter(entity=Entity.CUSTOMER).exists()


def test_repeated_and_out_of_order_deliveries_leave_the_current_state_and_log_nothing_twice(
    client, api_connection, fake_st
):
    company = fake_st.add_company(phoneNumber="919-555-0100")
    send = django_sender(client)
    first = [("company", company["id"], "updated")]
    fake_st.deliver(hook_path(api_connection), first, send=send)
    fake_st.clock = at(NOW - timedelta(minutes=30))
    fake_st.change("company", company["id"], phoneNumber="919-555-0111")
    fake_st.deliver(hook_path(api_connection), first, send=send)
    changes = MasterChange.objects.count()
    # The first delivery again, late, and the second one repeated: both read the current state.
    fake_st.deliver(hook_path(api_connection), first, send=send)
    fake_st.deliver(hook_path(api_connection), first, send=send)
    record = kept(Entity.CUSTOMER, company["id"])
    assert record.values["phone"] == "919-555-0111"
    assert MasterChange.objects.count() == changes
    assert record.outbox == {Side.ERP: {"name": "Harbor Foods", "street": "1 Harbor Way",
                                        "city": "Raleigh", "state": "NC", "postal_code": "27601",
                                        "phone": "919-555-0111",
                                        "email": "ap@harbor.example"}}  # fmt: skip


def test_a_newer_erp_change_is_not_undone_by_a_late_delivery_of_an_older_servicetrade_state(
    client, api_connection, fake_st
):
    company = fake_st.add_company(phoneNumber="919-555-0100")
    fake_st.deliver(hook_path(api_connection), [("company", company["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    master_changes_receive(connection=api_connection, entity=Entity.CUSTOMER,
                           source_ref=str(company["id"]), side=Side.ERP,
                           values={"phone": "919-555-0199"}, changed_at=NOW, actor="erp",
                           now=NOW)  # fmt: skip
    fake_st.deliver(hook_path(api_connection), [("company", company["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    record = kept(Entity.CUSTOMER, company["id"])
    assert record.values["phone"] == "919-555-0199"
    assert record.outbox[Side.SOURCE] == {"phone": "919-555-0199"}


def test_a_value_crosswalk_wrote_to_servicetrade_comes_back_as_no_change(
    client, api_connection, fake_st
):
    company = fake_st.add_company()
    fake_st.deliver(hook_path(api_connection), [("company", company["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    master_changes_receive(connection=api_connection, entity=Entity.CUSTOMER,
                           source_ref=str(company["id"]), side=Side.ERP,
                           values={"street": "9 Dock St"}, changed_at=NOW, actor="erp",
                           now=NOW)  # fmt: skip
    fake_st.clock = at(NOW + timedelta(minutes=1))
    st, _ = make_client(fake_st)
    master_outbox_send(connection=api_connection, now=NOW, servicetrade=st)
    assert fake_st.entities["company"][company["id"]]["address"]["street"] == "9 Dock St"
    changes = MasterChange.objects.count()
    # ServiceTrade's update event for Crosswalk's own write re-reads the same value.
    fake_st.deliver(hook_path(api_connection), [("company", company["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    assert MasterChange.objects.count() == changes
    assert kept(Entity.CUSTOMER, company["id"]).values["street"] == "9 Dock St"


def test_a_429_and_a_503_on_the_re_fetch_are_waited_out(client, api_connection, fake_st):
    contact = fake_st.add_contact()
    fake_st.fail("GET", f"/contact/{contact['id']}", 429, retry_after="0")
    fake_st.fail("GET", f"/contact/{contact['id']}", 503)
    fake_st.deliver(hook_path(api_connection), [("contact", contact["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    assert len(fake_st.calls("GET", f"/contact/{contact['id']}")) == 3
    assert kept(Entity.CONTACT, contact["id"]).values["first_name"] == "Dana"
    assert SourceReceipt.objects.get().outcome == SourceReceipt.Outcome.ACCEPTED


def test_a_re_fetch_that_keeps_failing_is_kept_on_the_receipt_and_the_next_poll_reads_it(
    client, api_connection, fake_st
):
    location = fake_st.add_location(company_id=501)
    fake_st.fail("GET", f"/location/{location['id']}", 500, times=10)
    fake_st.deliver(hook_path(api_connection), [("location", location["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    receipt = SourceReceipt.objects.get()
    assert receipt.outcome == SourceReceipt.Outcome.REJECTED
    assert receipt.errors[0].startswith(f"location {location['id']}: GET /location/")
    assert not MasterRecord.objects.exists()
    fake_st.heal()
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert kept(Entity.LOCATION, location["id"]).values["name"] == "Harbor Foods #12"


def test_a_deleted_record_is_left_alone_and_events_are_ignored_while_master_data_is_off(
    client, api_connection, fake_st
):
    fake_st.deliver(hook_path(api_connection), [("company", 424242, "deleted")],
                    send=django_sender(client))  # fmt: skip
    assert SourceReceipt.objects.get().outcome == SourceReceipt.Outcome.ACCEPTED
    api_connection.source_settings["master_data"] = False
    api_connection.save(update_fields=["source_settings"])
    company = fake_st.add_company()
    fake_st.requests.clear()
    fake_st.deliver(hook_path(api_connection), [("company", company["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    assert fake_st.requests == []
    assert not MasterRecord.objects.exists()


# --- polling ------------------------------------------------------------------------------------


def test_polling_reads_each_list_page_by_page_since_its_own_cursor_and_moves_each_cursor(
    api_connection, fake_st
):
    api_connection.source_settings["page_limit"] = 2
    api_connection.save(update_fields=["source_settings"])
    companies = [fake_st.add_company(name=f"Company {n}") for n in range(5)]
    fake_st.add_location(company_id=companies[0]["id"])
    fake_st.add_contact()
    result = sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert result.master.read == {"company": 5, "location": 1, "contact": 1}
    assert (result.master.taken, result.master.errors) == (7, [])
    first = str(to_epoch(NOW - timedelta(days=1)) - 120)
    asked = [(q["updatedAfter"], q["page"], q["limit"]) for q in fake_st.calls("GET", "/company")]
    assert asked == [(first, "1", "2"), (first, "2", "2"), (first, "3", "2")]
    cursors = SourceCursor.objects.filter(entity__in=KINDS, mode=SourceCursor.Mode.POLL)
    assert {(c.entity, c.position_epoch, c.items_read) for c in cursors} == {
        ("company", to_epoch(NOW), 5), ("location", to_epoch(NOW), 1),
        ("contact", to_epoch(NOW), 1),
    }  # fmt: skip
    assert MasterRecord.objects.count() == 7

    later = NOW + timedelta(minutes=10)
    fake_st.clock = at(NOW + timedelta(minutes=5))
    fake_st.change("company", companies[3]["id"], email="billing@co3.example")
    result = sync.servicetrade_poll(connection=api_connection, now=later)
    assert result.master.read == {"company": 1, "location": 0, "contact": 0}
    asked = {q["updatedAfter"] for kind in KINDS for q in fake_st.calls("GET", f"/{kind}")[-1:]}
    assert asked == {str(to_epoch(NOW) - 120)}
    assert kept(Entity.CUSTOMER, companies[3]["id"]).values["email"] == "billing@co3.example"


def test_an_overlapping_poll_reads_the_same_records_again_and_changes_nothing(
    api_connection, fake_st
):
    fake_st.clock = at(NOW - timedelta(seconds=30))  # inside the next poll's overlap
    fake_st.add_company()
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    changes = MasterChange.objects.count()
    result = sync.servicetrade_poll(connection=api_connection, now=NOW + timedelta(minutes=5))
    assert result.master.read["company"] == 1
    assert MasterChange.objects.count() == changes
    assert MasterRecord.objects.count() == 1


def test_a_429_during_a_poll_is_waited_out_and_a_5xx_that_lasts_keeps_that_lists_cursor(
    api_connection, fake_st
):
    fake_st.add_company()
    contact = fake_st.add_contact()
    fake_st.fail("GET", "/location", 429, retry_after="0")
    fake_st.fail("GET", "/contact", 502, times=10)
    with pytest.raises(ServiceTradeError):
        sync.servicetrade_poll(connection=api_connection, now=NOW)
    cursors = {c.entity: c for c in SourceCursor.objects.filter(mode=SourceCursor.Mode.POLL)}
    assert cursors["company"].position_epoch == cursors["location"].position_epoch == to_epoch(NOW)
    assert cursors["contact"].position_epoch == to_epoch(NOW - timedelta(days=1))
    assert "502" in cursors["contact"].last_error
    assert len(fake_st.calls("GET", "/location")) == 2
    fake_st.heal()
    later = NOW + timedelta(minutes=10)
    sync.servicetrade_poll(connection=api_connection, now=later)
    assert fake_st.calls("GET", "/contact")[-1]["updatedAfter"] == str(
        to_epoch(NOW - timedelta(days=1)) - 120
    )
    assert kept(Entity.CONTACT, contact["id"]).values["last_name"] == "Reyes"
    cursors["contact"].refresh_from_db()
    assert (cursors["contact"].position_epoch, cursors["contact"].last_error) == (
        to_epoch(later), "",
    )  # fmt: skip


def test_polling_leaves_master_data_alone_while_the_setting_is_off(connection, fake_st):
    connection = st_connection(connection, fake_st)
    fake_st.add_company()
    result = sync.servicetrade_poll(connection=connection, now=NOW)
    assert result.master.records == 0
    assert fake_st.calls("GET", "/company") == []
    assert not SourceCursor.objects.filter(entity__in=KINDS).exists()


# --- backfill -----------------------------------------------------------------------------------


def seed(fake, count, *, updated):
    """`count` companies, locations and contacts each, last updated at `updated`."""
    fake.clock = lambda: updated
    for n in range(count):
        company = fake.add_company(name=f"Company {n}")
        fake.add_location(company_id=company["id"], name=f"Site {n}")
        fake.add_contact(first_name=f"First{n}", last_name=f"Last{n}")


def test_a_master_data_backfill_interrupted_by_an_outage_resumes_at_the_first_page_not_taken(
    api_connection, fake_st
):
    api_connection.source_settings["page_limit"] = 3
    api_connection.save(update_fields=["source_settings"])
    seed(fake_st, 2, updated=to_epoch(SINCE) - 86400)  # before the date: left out
    seed(fake_st, 10, updated=to_epoch(SINCE) + 86400)
    fake_st.break_after("/location", 2)  # ServiceTrade goes down after two pages of locations
    with pytest.raises(ServiceTradeError):
        sync.servicetrade_backfill(connection=api_connection, since=SINCE, now=NOW,
                                   invoices=False)  # fmt: skip
    cursors = {c.entity: c for c in SourceCursor.objects.filter(
        entity__in=KINDS, mode=SourceCursor.Mode.BACKFILL)}  # fmt: skip
    assert (cursors["company"].finished_at, cursors["company"].items_read) == (NOW, 10)
    location = cursors["location"]
    assert (location.page, location.items_read, location.finished_at) == (3, 6, None)
    assert "500" in location.last_error
    assert MasterRecord.objects.filter(entity=Entity.LOCATION).count() == 6

    fake_st.heal()
    before = {kind: len(fake_st.calls("GET", f"/{kind}")) for kind in KINDS}
    result = sync.servicetrade_backfill(connection=api_connection, since=SINCE, now=NOW,
                                        invoices=False)  # fmt: skip
    asked = {kind: [q["page"] for q in fake_st.calls("GET", f"/{kind}")[before[kind]:]]
             for kind in KINDS}  # fmt: skip
    assert asked == {"company": [], "location": ["3", "4"], "contact": ["1", "2", "3", "4"]}
    assert result.master.read == {"location": 4, "contact": 10}
    assert {q["updatedAfter"] for q in fake_st.calls("GET", "/contact")} == {str(to_epoch(SINCE))}
    assert {e: MasterRecord.objects.filter(entity=e).count() for e in Entity.values} == {
        Entity.CUSTOMER: 10, Entity.LOCATION: 10, Entity.CONTACT: 10,
    }  # fmt: skip
    # Each record was taken once: one APPLIED change per field, no repeats.
    assert MasterChange.objects.filter(field="name", record__entity=Entity.LOCATION).count() == 10
    assert not SourceDocument.objects.exists()  # master data only: no invoices read
    polls = SourceCursor.objects.filter(entity__in=KINDS, mode=SourceCursor.Mode.POLL)
    assert {c.position_epoch for c in polls} == {to_epoch(NOW)}


def test_a_finished_master_data_backfill_run_again_reads_again_and_changes_nothing(
    api_connection, fake_st
):
    seed(fake_st, 3, updated=to_epoch(SINCE) + 60)
    fake_st.fail("GET", "/company", 429, retry_after="0")
    fake_st.fail("GET", "/contact", 503)
    sync.servicetrade_backfill(connection=api_connection, since=SINCE, now=NOW, invoices=False)
    changes = MasterChange.objects.count()
    result = sync.servicetrade_backfill(connection=api_connection, since=SINCE,
                                        now=NOW + timedelta(hours=1), invoices=False)  # fmt: skip
    assert result.master.read == {"company": 3, "location": 3, "contact": 3}
    assert MasterChange.objects.count() == changes == 3 * (7 + 8 + 4)


def test_a_master_data_backfill_is_refused_while_the_setting_is_off(connection, fake_st):
    connection = st_connection(connection, fake_st)
    with pytest.raises(sync.MasterDataOff, match="Master data is off for demo"):
        sync.servicetrade_backfill(connection=connection, since=SINCE, now=NOW, master_data=True)
    assert fake_st.requests == []
    with pytest.raises(CommandError, match='Turn on "master_data"'):
        call_command("servicetrade", "backfill", "--since", "2026-10-01", "--master-data-only",
                     "--connection", "demo")  # fmt: skip


def test_the_command_backfills_invoices_then_master_data_and_continues_after_an_interruption(
    api_connection, fake_st, capsys
):
    api_connection.source_settings["page_limit"] = 2
    api_connection.save(update_fields=["source_settings"])
    fake_st.clock = at(NOW - timedelta(days=2))
    fake_st.add_invoice()
    seed(fake_st, 3, updated=to_epoch(SINCE) + 60)
    fake_st.break_after("/contact", 1)
    args = ("servicetrade", "backfill", "--since", "2026-10-01", "--master-data",
            "--connection", "demo")  # fmt: skip
    with pytest.raises(CommandError, match="run the same command again to continue"):
        call_command(*args)
    assert "Backfilling contacts" in capsys.readouterr().err
    fake_st.heal()
    call_command(*args)
    out = capsys.readouterr()
    assert out.out.strip() == (
        "Backfill done: 0 invoice(s) read, 0 new or changed, 0 already up to date, 0 problem(s); "
        "master data: 0 company(s), 0 location(s), 1 contact(s) read, 0 problem(s)."
    )
    assert SourceDocument.objects.count() == 1
    assert MasterRecord.objects.filter(entity=Entity.CONTACT).count() == 3


# --- subscriptions ------------------------------------------------------------------------------


def test_with_master_data_on_subscribe_asks_for_company_location_and_contact_events(
    client, api_connection, fake_st
):
    subscription = sync.webhook_subscribe(
        connection=api_connection, base_url="https://crosswalk.example", now=NOW
    )
    hook = fake_st.entities["webhook"][int(subscription.remote_id)]
    assert [e["entityType"] for e in hook["entityEvents"]] == [3, 5, 11, 22]
    assert sync.webhook_check(connection=api_connection, now=NOW) == []
    contact = fake_st.add_contact()
    fake_st.notify("contact", contact["id"], send=django_sender(client))
    assert kept(Entity.CONTACT, contact["id"]).values["email"] == "dana@harbor.example"
    fake_st.change("webhook", int(subscription.remote_id),
                   entityEvents=[{"entityType": 3, "actions": ["updated"]}])  # fmt: skip
    problems = sync.webhook_check(connection=api_connection, now=NOW)
    assert [p.split(" ", 2)[2] for p in problems] == [
        "does not send company, location, contact events."
    ]


def test_the_demo_fake_serves_the_company_and_location_its_invoices_name():
    from syncengine.sources.servicetrade_api.fake import demo_fake

    fake = demo_fake()
    invoices = list(fake.entities["invoice"].values())
    assert invoices
    for invoice in invoices:
        company = fake.entities["company"][invoice["customer"]["id"]]
        location = fake.entities["location"][invoice["location"]["id"]]
        assert company["name"] == invoice["customer"]["name"]
        assert location["companyId"] == company["id"]
    assert len(fake.entities["contact"]) == 1
