"""ERP purchase orders become job items on the matching ServiceTrade job, each line once; against
the fake Business Central, the fake ServiceTrade and a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from syncengine.erps.business_central.client import BusinessCentral
from syncengine.erps.business_central.http import forget_cached_state
from syncengine.models import PurchaseOrderJobItem, SourceCursor
from syncengine.sources.servicetrade_api import purchase_orders
from syncengine.sources.servicetrade_api.client import to_epoch
from tests.conftest import NOW
from tests.fakes.business_central import _stamp_time
from tests.fakes.servicetrade import st_connection

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade", "tests.fakes.business_central"]

State = PurchaseOrderJobItem.State
MOTOR = {"description": "Condenser fan motor", "quantity": 1, "directUnitCost": "142.10",
         "lineObjectNumber": "1996-S"}  # fmt: skip
CAPACITOR = {"description": "Capacitor", "quantity": 2, "directUnitCost": "9.95"}


@pytest.fixture
def bc_st(fake_bc, fake_st):
    """A Business Central connection whose ServiceTrade side is the fake ServiceTrade."""
    fake_bc.clock = lambda: NOW - timedelta(hours=2)
    fake_st.add("job", id=7001, number="J-7001", status="scheduled")
    connection = st_connection(fake_bc.connection(), fake_st, purchase_order_job_items=True)
    yield connection
    forget_cached_state()


def run(connection, at=NOW):
    return purchase_orders.purchase_orders_to_job_items(connection=connection, now=at)


def job_items(fake_st):
    return sorted(fake_st.entities["jobitem"].values(), key=lambda item: item["id"])


def test_business_central_reads_purchase_orders_changed_since_a_time_with_their_lines(
    fake_bc, bc_st
):
    fake_bc.add_purchase_order(number="106001", shipToContact="J-7001", vendorName="Ferguson",
                               lines=[MOTOR, CAPACITOR])  # fmt: skip
    fake_bc.clock = lambda: NOW + timedelta(hours=1)
    fake_bc.add_purchase_order(number="106002", shipToContact=" J-7002 ", lines=[CAPACITOR],
                               yourReference="J-7003")  # fmt: skip
    bc = BusinessCentral(connection=bc_st)
    every = list(bc.purchase_orders(since=None))
    assert [(o.number, o.job_number, o.vendor) for o in every] == [
        ("106001", "J-7001", "Ferguson"),
        ("106002", "J-7002", ""),
    ]
    assert [(line.description, line.quantity, line.unit_cost, line.item)
            for line in every[0].lines] == [
        ("Condenser fan motor", Decimal("1"), Decimal("142.10"), "1996-S"),
        ("Capacitor", Decimal("2"), Decimal("9.95"), ""),
    ]  # fmt: skip
    assert [o.number for o in bc.purchase_orders(since=NOW)] == ["106002"]
    # The order field holding the job number is a setting of the connection.
    bc_st.erp_settings["purchase_order_job_field"] = "yourReference"
    assert [o.job_number for o in BusinessCentral(connection=bc_st).purchase_orders(since=NOW)] == [
        "J-7003"
    ]
    assert {sent.method for sent in fake_bc.sent if "purchaseOrder" in sent.path} == {"GET"}


def test_each_new_purchase_order_line_becomes_one_job_item_on_the_matching_job(
    fake_bc, fake_st, bc_st
):
    order = fake_bc.add_purchase_order(number="106001", shipToContact="J-7001",
                                       lines=[MOTOR, CAPACITOR])  # fmt: skip
    result = run(bc_st)
    assert (result.orders, result.new_lines, result.written) == (1, 2, 1 + 1)
    assert [(i["jobId"], i["name"], i["quantity"], i["cost"], i["source"]) for i in
            job_items(fake_st)] == [
        (7001, "Condenser fan motor", Decimal("1"), Decimal("142.10"),
         {"type": "refnumber", "value": "PO 106001"}),
        (7001, "Capacitor", Decimal("2"), Decimal("9.95"),
         {"type": "refnumber", "value": "PO 106001"}),
    ]  # fmt: skip
    rows = PurchaseOrderJobItem.objects.order_by("pk")
    assert [(r.state, r.st_job_id, r.erp_order_id) for r in rows] == [
        (State.WRITTEN, "7001", order["id"]),
        (State.WRITTEN, "7001", order["id"]),
    ]
    assert {r.st_job_item_id for r in rows} == {str(i["id"]) for i in job_items(fake_st)}
    # The order changes in the ERP and is read again; its lines are already written.
    fake_bc.clock = lambda: NOW + timedelta(minutes=30)
    order["lastModifiedDateTime"] = _stamp_time(NOW + timedelta(minutes=30))
    again = run(bc_st, NOW + timedelta(hours=1))
    assert (again.orders, again.new_lines, again.written) == (1, 0, 0)
    assert len(fake_st.calls("POST", "/jobitem")) == 2
    cursor = SourceCursor.objects.get(entity=purchase_orders.CURSOR_ENTITY)
    assert cursor.position_epoch == to_epoch(NOW + timedelta(minutes=30))


def test_an_order_for_an_unknown_job_is_recorded_and_written_once_the_job_exists(
    fake_bc, fake_st, bc_st
):
    fake_bc.add_purchase_order(number="106003", shipToContact="J-9999", lines=[MOTOR])
    no_job = fake_bc.add_purchase_order(number="106004", lines=[CAPACITOR])
    fake_bc.add_purchase_order(number="106001", shipToContact="J-7001", lines=[CAPACITOR])
    result = run(bc_st)
    assert (result.written, result.unknown_job, result.failed) == (1, 2, 0)
    messages = dict(PurchaseOrderJobItem.objects.exclude(state=State.WRITTEN)
                    .values_list("po_number", "message"))  # fmt: skip
    assert messages == {
        "106003": "No ServiceTrade job numbered 'J-9999' (purchase order 106003).",
        "106004": "Purchase order 106004 names no ServiceTrade job.",
    }
    fake_st.add("job", id=9999, number="J-9999", status="scheduled")
    later = run(bc_st, NOW + timedelta(minutes=15))
    assert (later.written, later.unknown_job) == (1, 1)
    assert [i["jobId"] for i in job_items(fake_st)] == [7001, 9999]
    # The buyer fills in the missing job number in the ERP: the changed order is read again.
    no_job.update(shipToContact="J-7001",
                  lastModifiedDateTime=_stamp_time(NOW + timedelta(minutes=20)))  # fmt: skip
    fixed = run(bc_st, NOW + timedelta(minutes=30))
    assert (fixed.written, fixed.unknown_job) == (1, 0)
    assert [i["jobId"] for i in job_items(fake_st)] == [7001, 9999, 7001]


def test_a_line_whose_answer_was_lost_is_looked_up_on_the_job_before_it_is_sent_again(
    fake_bc, fake_st, bc_st
):
    fake_bc.add_purchase_order(number="106001", shipToContact="J-7001", lines=[MOTOR, CAPACITOR])
    fake_st.fail("POST", "/jobitem", 503, times=2)  # a create is never re-sent by the client
    first = run(bc_st)
    assert (first.written, first.failed) == (0, 2)
    assert set(PurchaseOrderJobItem.objects.values_list("state", flat=True)) == {State.SENDING}
    # One of the two had in fact landed in ServiceTrade before the answer was lost.
    landed = fake_st.add("jobitem", jobId=7001, job={"id": 7001}, name="Condenser fan motor",
                         quantity=Decimal("1"), cost=Decimal("142.10"),
                         source={"type": "refnumber", "value": "PO 106001"})  # fmt: skip
    second = run(bc_st, NOW + timedelta(minutes=15))
    assert second.written == 2
    assert len(fake_st.calls("POST", "/jobitem")) == 3  # two lost, one for the capacitor
    assert len(job_items(fake_st)) == 2
    motor = PurchaseOrderJobItem.objects.get(name="Condenser fan motor")
    assert (motor.state, motor.st_job_item_id, motor.attempts) == (
        State.WRITTEN,
        str(landed["id"]),
        2,
    )


def test_a_refused_line_is_failed_with_servicetrade_s_reason_and_the_others_still_go(
    fake_bc, fake_st, bc_st
):
    fake_bc.add_purchase_order(number="106001", shipToContact="J-7001",
                               lines=[{**MOTOR, "description": ""}, CAPACITOR])  # fmt: skip
    fake_st.fail("POST", "/jobitem", 400, times=1)
    result = run(bc_st)
    assert (result.written, result.failed) == (1, 1)
    failed = PurchaseOrderJobItem.objects.get(state=State.FAILED)
    assert failed.name == "1996-S"  # no description: the item number names the job item
    assert "400" in failed.message and "Injected 400" in failed.message
    assert run(bc_st, NOW + timedelta(minutes=15)).written == 1  # tried again next run


def test_the_sandbox_ledger_keeps_no_purchase_orders_so_nothing_is_written(connection, fake_st):
    connection = st_connection(connection, fake_st, purchase_order_job_items=True)
    result = run(connection)
    assert (result.orders, result.written) == (0, 0)
    assert fake_st.requests == []


def test_beat_runs_only_connections_that_turn_purchase_orders_on(fake_bc, fake_st, bc_st):
    fake_bc.add_purchase_order(number="106001", shipToContact="J-7001", lines=[MOTOR])
    bc_st.source_settings["purchase_order_job_items"] = False
    bc_st.save(update_fields=["source_settings"])
    assert purchase_orders.purchase_orders_due(now=NOW) == 0
    bc_st.source_settings["purchase_order_job_items"] = True
    bc_st.save(update_fields=["source_settings"])
    assert purchase_orders.purchase_orders_due(now=NOW) == 1
    assert len(job_items(fake_st)) == 1


def test_the_command_writes_purchase_orders_and_says_what_waits(fake_bc, bc_st):
    fake_bc.clock = lambda: datetime.now(UTC)  # the command reads from the real clock's now
    fake_bc.add_purchase_order(number="106001", shipToContact="J-7001", lines=[MOTOR])
    fake_bc.add_purchase_order(number="106003", shipToContact="J-9999", lines=[MOTOR])
    out, err = StringIO(), StringIO()
    call_command("servicetrade", "purchase-orders", "--connection", bc_st.slug, stdout=out,
                 stderr=err)  # fmt: skip
    assert out.getvalue().strip() == (
        "2 purchase order(s) read, 2 new line(s); 1 job item(s) written, 1 waiting for an "
        "unknown job, 0 failed."
    )
