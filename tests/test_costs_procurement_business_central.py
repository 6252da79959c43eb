"""Job item costs become G/L journal lines and PartsLedger AP invoices purchase invoices in the
fake Business Central: keyed, looked up before any create whose outcome is unknown, tied out to
the cent, and every body sent uses only fields the entity set lists as writable."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from console import demo
from mappings import services as mapping_services
from mappings.catalog import catalog_refresh, catalog_store
from mappings.models import RuleAudit
from syncengine import services, tasks
from syncengine.connections import connection_settings_update
from syncengine.erps.base import CatalogItem, ConnectorError
from syncengine.erps.business_central.client import BusinessCentral
from syncengine.erps.business_central.purchase_orders import order_operations
from syncengine.models import DocumentKind, SyncEvent, SyncRecord, SyncState
from syncengine.services import sync_record_resolve_outside
from syncengine.services.costs import _cost_plan
from tests.conftest import NOW
from tests.test_business_central_engine import assert_writable, writable_fields
from tests.test_costs_procurement import (
    COST_ACCOUNTS,
    ITEM,
    LABOR,
    PROCUREMENT,
    cost_rules,
    ingest_costs,
    ingest_procurement,
    job_items,
    post_due,
)

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]


@pytest.fixture
def bc(fake_bc):
    return cost_books(fake_bc)


@pytest.fixture
def connection(bc):
    return cost_connection(bc)


def cost_books(fake_bc):
    """The demo's books in the fake Business Central, with cost accounts and a cost journal."""
    fake_bc.seed_demo_books()
    for number, name, _ in COST_ACCOUNTS:
        fake_bc.add("accounts", number=number, displayName=name, blocked=False,
                    accountType="Posting", directPosting=True, category="")  # fmt: skip
    fake_bc.add("journals", code="CROSSWALK", displayName="Crosswalk job costs")
    return fake_bc


def cost_connection(bc):
    """A connection to it with the cost rules, its catalog read and the lists BC has no page
    for imported."""
    connection = bc.connection(cost_journal="CROSSWALK", create_vendors=True,
                               vendor_number_prefix="PL")  # fmt: skip
    catalog_refresh(connection=connection, actor="test", now=NOW)
    imported = [CatalogItem(kind="PAY_TYPE", code=code) for code in demo.LABOR_PAY_TYPES.values()]
    imported += [CatalogItem(kind="COST_CODE", code=f"{index + 1}00")
                 for index in range(len(demo.SERVICE_LINES))]  # fmt: skip
    imported += [CatalogItem(kind="DEPARTMENT", code=code) for code in demo.OFFICE_CODES.values()]
    catalog_store(connection=connection, items=imported, actor="test", now=NOW,
                  action=RuleAudit.Action.CATALOG_IMPORTED,
                  kinds={"PAY_TYPE", "COST_CODE", "DEPARTMENT"})  # fmt: skip
    mapping_services.draft_replace(connection=connection, content=cost_rules(), actor="test",
                                   now=NOW, reason="Costs")  # fmt: skip
    # In force before the orders' and receipts' dates (2026-11-02, -05) as well.
    mapping_services.draft_publish(connection=connection, effective_from=demo.RULES_EFFECTIVE_FROM,
                                   reason="Costs", actor="test", now=NOW)  # fmt: skip
    connection.refresh_from_db()
    return connection


def test_job_item_costs_become_gl_journal_lines_with_the_key_and_dimensions(connection, bc):
    ingest_costs(connection, job_items(ITEM, LABOR))
    post_due()
    assert {r.state for r in SyncRecord.objects.all()} == {SyncState.POSTED}
    lines = {row["externalDocumentNumber"]: row for row in bc.rows("journalLines")}
    assert set(lines) == {"ST-JC-88001", "ST-JC-88002"}
    part = lines["ST-JC-88001"]
    assert (part["accountNumber"], part["balancingAccountNumber"], part["amount"]) == (
        "1400", "1300", Decimal("122.25"))  # fmt: skip
    assert part["documentNumber"] == "ST-JC-88001" and part["accountType"] == "G/L Account"
    dimensions = {(d["code"], d["valueCode"]) for d in bc.rows("dimensionSetLines",
                                                              parentId=part["id"])}  # fmt: skip
    assert dimensions == {("BRANCH", "RAL"), ("DEPARTMENT", "HVAC")}
    total = sum((row["amount"] for row in lines.values()), Decimal("0.00"))
    assert total == sum(r.document.total for r in SyncRecord.objects.all()) == Decimal("266.10")


def test_a_journal_line_whose_answer_was_lost_is_found_by_its_key(connection, bc):
    connection.erp_settings["timeout_seconds"] = 0.5
    connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest_costs(connection, job_items(ITEM))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert record.events.last().data["found_by_lookup"] is True
    assert len(bc.rows("journalLines")) == 1


def test_a_purchase_invoice_posts_with_its_vendor_created_first_and_ties_out(connection, bc):
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert record.state == SyncState.POSTED
    [vendor] = bc.rows("vendors")
    assert (vendor["number"], vendor["displayName"]) == ("PLV-100", "Ferguson Supply")
    [invoice] = bc.rows("purchaseInvoices")
    assert invoice["vendorInvoiceNumber"] == "ST-PI-PI-5531" and invoice["status"] == "Open"
    assert invoice["totalAmountIncludingTax"] == record.document.total == Decimal("433.26")
    assert record.erp_document_number == invoice["number"]
    adjustment = bc.rows("journalLines", externalDocumentNumber="ST-IA-IA-3")
    assert sorted((row["accountNumber"], row["balancingAccountNumber"], row["amount"])
                  for row in adjustment) == [("1300", "5020", Decimal("10.00")),
                                             ("5020", "1300", Decimal("61.13"))]  # fmt: skip


def test_a_missing_vendor_blocks_the_invoice_naming_it_when_vendors_may_not_be_created(
    connection, bc
):
    connection.erp_settings["create_vendors"] = False
    connection.save(update_fields=["erp_settings"])
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert (record.state, record.failure_category) == (SyncState.BLOCKED, "MISSING_PREREQUISITE")
    assert "Vendor PLV-100 (Ferguson Supply) does not exist in Business Central" in record.message
    assert bc.rows("purchaseInvoices") == []
    # Allowing Crosswalk to create vendors sends the waiting invoice again by itself.
    connection_settings_update(connection=connection, side="erp", values={"create_vendors": True},
                               actor="admin", now=NOW)  # fmt: skip
    record.refresh_from_db()
    assert record.state == SyncState.READY
    assert record.events.last().detail == "The ERP settings changed: sending again."
    post_due()
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and len(bc.rows("purchaseInvoices")) == 1


def test_a_purchase_invoice_whose_answer_was_lost_is_found_and_posted_once(connection, bc):
    connection.erp_settings["timeout_seconds"] = 0.5
    connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest_procurement(connection, {k: PROCUREMENT[k] for k in ("vendors", "purchaseInvoices")})
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_INVOICE)
    assert record.state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and record.events.last().data["found_by_lookup"]
    [invoice] = bc.rows("purchaseInvoices")
    assert invoice["status"] == "Open"  # the lookup finished the posting


def test_every_cost_and_purchase_body_uses_only_writable_fields(connection, bc):
    ingest_costs(connection, job_items(ITEM, LABOR))
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    fields, parts = writable_fields()
    bodies = [sent for sent in bc.sent if sent.body is not None and sent.method == "POST"]
    assert {sent.entity_set for sent in bodies} >= {
        "journalLines",
        "vendors",
        "purchaseInvoices",
        "purchaseInvoiceLines",
        "dimensionSetLines",
    }
    for sent in bodies:
        assert_writable(sent.entity_set, sent.body, fields, parts)


# --- purchase orders and receipts -----------------------------------------------------------

ORDER_ONLY = {key: PROCUREMENT[key] for key in ("format", "source", "vendors", "purchaseOrders")}
ORDER_KEY = "ST-PO-PO-4411"


def receipt(receipt_id: str, quantity: int) -> dict:
    return {"id": receipt_id, "number": f"R-{receipt_id}", "purchaseOrderNumber": "4411",
            "vendorId": "V-100", "date": "2026-11-05",
            "lines": [{"id": "1", "item": "MTR-22", "quantity": quantity,
                       "unitCost": "61.125"}]}  # fmt: skip


def receipts(*items: dict) -> dict:
    return {"format": "crosswalk-procurement/1", "source": "PartsLedger", "receipts": list(items)}


def lost_answer(bc, path: str) -> None:
    """The next write to `path` is committed by the fake, then the connection drops."""
    bc.inject("drop_after_commit", method="POST", path_contains=path)


def order_record():
    return SyncRecord.objects.get(document__kind=DocumentKind.PURCHASE_ORDER)


def test_a_purchase_order_becomes_an_open_order_with_the_key_on_every_line(connection, bc):
    ingest_procurement(connection, ORDER_ONLY)
    post_due()
    record = order_record()
    assert record.state == SyncState.POSTED, (record.message, record.problems)
    [order] = bc.rows("purchaseOrders")
    assert (order["vendorNumber"], order["orderDate"], order["status"]) == (
        "PLV-100", "2026-11-02", "Draft")  # fmt: skip
    [line] = bc.rows("purchaseOrderLines", _parent=order["id"])
    assert line["description2"] == ORDER_KEY and line["lineObjectNumber"] == "1300"
    assert (line["quantity"], line["directUnitCost"]) == (Decimal(2), Decimal("61.125"))
    # 2 × 61.125 = 122.25 in Business Central as in PartsLedger: tied to the cent.
    assert order["totalAmountIncludingTax"] == record.document.total == Decimal("122.25")
    assert record.erp_document_number == order["number"] and "page=50" in record.erp_document_url
    [batch] = [sent for sent in bc.sent if sent.path == "$batch"]
    assert batch.headers.get("Isolation") == "snapshot"


def test_a_purchase_order_whose_answer_was_lost_is_found_by_its_lines_and_made_once(connection, bc):
    lost_answer(bc, "$batch")
    ingest_procurement(connection, ORDER_ONLY)
    post_due()
    record = order_record()
    assert record.state == SyncState.UNCERTAIN
    assert len(bc.rows("purchaseOrders")) == 1  # committed before the connection dropped
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and record.events.last().data["found_by_lookup"]
    assert len(bc.rows("purchaseOrders")) == 1
    # One lookup (the vendor's orders of that date, with their lines), no second create.
    assert len([s for s in bc.sent if s.method == "GET" and s.entity_set == "purchaseOrders"]) == 1
    assert len([s for s in bc.sent if s.entity_set == "purchaseOrders" and s.method == "POST"]) == 1
    assert record.erp_document_id == bc.rows("purchaseOrders")[0]["id"]


def test_a_purchase_order_for_a_vendor_business_central_lacks_waits_as_a_prerequisite(
    connection, bc
):
    connection.erp_settings["create_vendors"] = False
    connection.save(update_fields=["erp_settings"])
    ingest_procurement(connection, ORDER_ONLY)
    post_due()
    record = order_record()
    assert (record.state, record.failure_category) == (SyncState.BLOCKED, "MISSING_PREREQUISITE")
    assert record.failure_cause == "MISSING_PREREQUISITE:VENDOR:PLV-100"
    assert "Vendor PLV-100 (Ferguson Supply) does not exist in Business Central" in record.message
    assert bc.rows("purchaseOrders") == []


def test_the_fake_refuses_an_order_for_an_unknown_vendor_as_business_central_does(connection, bc):
    # The connector looks the vendor up first; here the order's batch names one that is gone.
    ingest_procurement(connection, ORDER_ONLY)
    plan = _cost_plan(order_record())
    connector = BusinessCentral(connection=connection)
    company = connector.api.company_path()
    operations = order_operations(connector, plan, ORDER_KEY, "GONE-1", company)
    with pytest.raises(ConnectorError) as refused:
        connector.api.batch([op.as_batch() for op in operations], what="create the order")
    assert "The buy-from vendor cannot be found" in refused.value.message
    assert refused.value.category == "VALUE" and not refused.value.transient
    assert bc.rows("purchaseOrders") == []  # the snapshot batch left nothing behind


def test_a_receipt_receives_on_its_order_without_invoicing_it(connection, bc):
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    post_due(NOW + timedelta(days=11))  # a receipt tried before its order waits, then goes
    record = SyncRecord.objects.get(document__kind=DocumentKind.RECEIPT)
    assert record.state == SyncState.POSTED
    [order] = bc.rows("purchaseOrders")
    [line] = bc.rows("purchaseOrderLines", _parent=order["id"])
    assert (line["receivedQuantity"], line["invoicedQuantity"]) == (Decimal(2), Decimal(0))
    [posted] = bc.rows("purchaseReceipts")
    assert (posted["orderNumber"], posted["postingDate"]) == (order["number"], "2026-11-05")
    assert bc.rows("purchaseInvoices", orderNumber=order["number"]) == []  # nothing invoiced
    assert record.erp_document_number == f"{order['number']} receipt R-9"
    assert record.events.last().data["total"] == "122.25" == str(record.document.total)
    # Every quantity write carried the line's ETag.
    patches = [s for s in bc.sent if s.method == "PATCH"]
    assert patches and all(s.headers.get("If-Match", "").startswith('W/"') for s in patches)


def test_a_receipt_whose_answer_was_lost_is_found_received_and_never_received_twice(connection, bc):
    ingest_procurement(connection, ORDER_ONLY)
    post_due()
    lost_answer(bc, "receiveAndInvoice")
    ingest_procurement(connection, receipts(receipt("9", 2)))
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.RECEIPT)
    assert record.state == SyncState.UNCERTAIN
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED and record.events.last().data["found_by_lookup"]
    assert len(bc.rows("purchaseReceipts")) == 1
    [line] = bc.rows("purchaseOrderLines")
    assert line["receivedQuantity"] == Decimal(2)


def test_two_partial_receipts_receive_one_after_the_other_to_the_full_quantity(connection, bc):
    ingest_procurement(connection, ORDER_ONLY)
    post_due()
    ingest_procurement(connection, receipts(receipt("9", 1), receipt("10", 1)))
    post_due()
    post_due(NOW + timedelta(days=11))
    states = set(SyncRecord.objects.filter(document__kind=DocumentKind.RECEIPT)
                 .values_list("state", "message"))  # fmt: skip
    assert {state for state, _ in states} == {SyncState.POSTED}, states
    [line] = bc.rows("purchaseOrderLines")
    assert (line["receivedQuantity"], line["invoicedQuantity"]) == (Decimal(2), Decimal(0))
    assert len(bc.rows("purchaseReceipts")) == 2


def test_a_receipt_for_an_order_never_imported_waits_until_the_order_comes(connection, bc):
    ingest_procurement(connection, {**receipts(receipt("9", 2)), "vendors": PROCUREMENT["vendors"]})
    post_due()
    record = SyncRecord.objects.get(document__kind=DocumentKind.RECEIPT)
    assert (record.state, record.failure_cause) == (SyncState.BLOCKED,
                                                    "UNKNOWN_PURCHASE_ORDER:4411")  # fmt: skip
    ingest_procurement(connection, ORDER_ONLY)
    record.refresh_from_db()
    assert record.state == SyncState.READY
    post_due()
    post_due(NOW + timedelta(days=11))
    record.refresh_from_db()
    assert record.state == SyncState.POSTED


def test_order_and_receipt_bodies_use_only_writable_fields(connection, bc):
    ingest_procurement(connection, PROCUREMENT)
    post_due()
    post_due(NOW + timedelta(days=11))
    fields, parts = writable_fields()
    bodies = [sent for sent in bc.sent if sent.body is not None and sent.method != "GET"]
    assert {(sent.method, sent.entity_set) for sent in bodies} >= {
        ("POST", "purchaseOrders"),
        ("POST", "purchaseOrderLines"),
        ("PATCH", "purchaseOrderLines"),
    }
    for sent in bodies:
        assert_writable(sent.entity_set, sent.body, fields, parts)


def test_the_preview_shows_the_purchase_order_batch_and_sends_nothing(connection, bc, tmp_path):
    path = tmp_path / "partsledger.json"
    path.write_text(json.dumps(ORDER_ONLY))
    out = StringIO()
    sent_before = len(bc.sent)
    call_command("preview_posting", "--connection", connection.slug, "--document", str(path),
                 stdout=out)  # fmt: skip
    assert len(bc.sent) == sent_before and bc.rows("purchaseOrders") == []
    vendor, order = out.getvalue().split("\n", 1)
    assert vendor.startswith("Vendor Ferguson Supply (PartsLedger V-100): A vendor is master data")
    title, body = order.split(":\n", 1)
    assert title.startswith("Purchase order 4411 (PartsLedger PO-4411), total 122.25 USD, key "
                            "ST-PO-PO-4411")  # fmt: skip
    requests = json.loads(body)
    assert [(r["method"], r["url"].rsplit("/", 1)[-1]) for r in requests] == [
        ("GET", "vendors"), ("POST", "vendors"), ("GET", "purchaseOrders"), ("POST", "$batch"),
    ]  # fmt: skip
    assert requests[2]["params"]["$expand"] == "purchaseOrderLines"
    batch = requests[3]["body"]["requests"]
    assert batch[0]["body"] == {"vendorNumber": "PLV-100", "orderDate": "2026-11-02",
                                "postingDate": "2026-11-02"}  # fmt: skip
    assert batch[1]["body"]["description2"] == "ST-PO-PO-4411"
    assert '"directUnitCost": 61.125' in body


# --- orders and receipts kept before the connection's ERP took them --------------------------

OTHER_ORDER = {**PROCUREMENT["purchaseOrders"][0], "id": "PO-4412", "number": "4412"}
OTHER_RECEIPT = {**PROCUREMENT["receipts"][0], "id": "RC-20", "number": "R-20",
                 "purchaseOrderNumber": "4412"}  # fmt: skip
KEPT = ("ST-PO-PO-4411", "ST-RC-RC-9", "ST-RC-RC-20")


def kept_before_business_central_took_them(connection, monkeypatch) -> None:
    """Ingest and post as Crosswalk did before this connector posted orders and receipts: they
    are kept, skipped with the NOT_POSTED reason. Order 4412 is then skipped for another reason:
    blocked (its vendor unknown), settled by hand."""
    with monkeypatch.context() as before:
        before.setattr(BusinessCentral, "posted_procurement", frozenset())
        ingest_procurement(connection, {**PROCUREMENT, "receipts": [*PROCUREMENT["receipts"],
                                                                    OTHER_RECEIPT]})  # fmt: skip
        post_due()
    ingest_procurement(connection, {"purchaseOrders": [{**OTHER_ORDER, "vendorId": "V-404"}]})
    post_due()
    settled = SyncRecord.objects.get(idempotency_key="ST-PO-PO-4412")
    sync_record_resolve_outside(record=settled, actor="finance", now=NOW, reason="Typed in BC")


def states() -> dict[str, str]:
    return dict(SyncRecord.objects.values_list("idempotency_key", "state"))


def test_kept_orders_and_receipts_go_back_to_ready_once_each_with_an_event_and_a_nudge(
    connection, bc, monkeypatch, settings, django_capture_on_commit_callbacks
):
    kept_before_business_central_took_them(connection, monkeypatch)
    assert {key: states()[key] for key in (*KEPT, "ST-PO-PO-4412", "ST-VN-V-100")} == dict.fromkeys(
        (*KEPT, "ST-PO-PO-4412", "ST-VN-V-100"), SyncState.SKIPPED)  # fmt: skip
    events = SyncEvent.objects.count()
    nudged: list[int] = []
    monkeypatch.setattr(tasks.sync_records_post, "apply_async",
                        lambda kwargs: nudged.extend(kwargs["record_ids"]))  # fmt: skip
    settings.CROSSWALK_NUDGE_WORKERS = True
    with django_capture_on_commit_callbacks(execute=True):
        released = services.procurement_kept_release(connection=connection, actor="admin",
                                                     now=NOW)  # fmt: skip
    assert (released.orders, released.receipts) == (1, 1)
    assert released.left == ("Receipt R-20 stays kept: its purchase order 4412 is skipped.",)
    sent = [SyncRecord.objects.get(idempotency_key=key) for key in ("ST-PO-PO-4411", "ST-RC-RC-9")]
    assert [record.state for record in sent] == [SyncState.READY, SyncState.READY]
    assert SyncEvent.objects.count() == events + 2
    order_event = sent[0].events.last()
    assert (order_event.actor, order_event.from_state, order_event.to_state) == (
        "admin", SyncState.SKIPPED, SyncState.READY)  # fmt: skip
    assert order_event.detail == ("Kept unposted when its ERP took no purchase orders; it takes "
                                  "them now: sending it.")  # fmt: skip
    assert sorted(nudged) == sorted(record.pk for record in sent)
    # Skipped for other reasons, or a receipt whose order never posts: left as they are.
    assert {key: states()[key] for key in ("ST-RC-RC-20", "ST-PO-PO-4412", "ST-VN-V-100")} == (
        dict.fromkeys(("ST-RC-RC-20", "ST-PO-PO-4412", "ST-VN-V-100"), SyncState.SKIPPED)
    )


def test_a_second_release_changes_nothing(connection, bc, monkeypatch):
    kept_before_business_central_took_them(connection, monkeypatch)
    services.procurement_kept_release(connection=connection, actor="admin", now=NOW)
    events, before = SyncEvent.objects.count(), states()
    again = services.procurement_kept_release(connection=connection, actor="admin", now=NOW)
    assert (again.orders, again.receipts) == (0, 0)
    assert SyncEvent.objects.count() == events and states() == before


def test_a_released_receipt_is_received_only_after_its_order_posts(connection, bc, monkeypatch):
    kept_before_business_central_took_them(connection, monkeypatch)
    services.procurement_kept_release(connection=connection, actor="admin", now=NOW)
    post_due()
    post_due(NOW + timedelta(days=11))  # the receipt tried with its order waits, then goes
    assert {key: states()[key] for key in KEPT[:2]} == dict.fromkeys(KEPT[:2], SyncState.POSTED)
    [order] = bc.rows("purchaseOrders")
    [line] = bc.rows("purchaseOrderLines", _parent=order["id"])
    assert (line["receivedQuantity"], line["invoicedQuantity"]) == (Decimal(2), Decimal(0))


def test_manage_py_sync_sends_the_kept_records_and_says_how_many(connection, bc, monkeypatch):
    kept_before_business_central_took_them(connection, monkeypatch)
    out, err = StringIO(), StringIO()
    call_command("sync", "--send-kept-procurement", "--connection", connection.slug, stdout=out,
                 stderr=err)  # fmt: skip
    call_command("sync", "--send-kept-procurement", "--connection", connection.slug, stdout=out,
                 stderr=err)  # fmt: skip
    assert out.getvalue().splitlines()[1::2] == [
        "1 purchase order(s) and 1 receipt(s) sent again; 1 receipt(s) left kept.",
        "0 purchase order(s) and 0 receipt(s) sent again; 1 receipt(s) left kept.",
    ]
    assert "Receipt R-20 stays kept: its purchase order 4412 is skipped." in err.getvalue()
    event = SyncRecord.objects.get(idempotency_key="ST-RC-RC-9").events.last()
    assert event.actor == "manage.py sync --send-kept-procurement"


def test_a_connection_whose_erp_keeps_orders_unposted_has_nothing_to_send(db):
    connection = demo.demo_connection_setup()  # the sandbox ledger
    with pytest.raises(CommandError, match="keeps purchase orders and receipts unposted"):
        call_command("sync", "--send-kept-procurement", "--connection", connection.slug,
                     stdout=StringIO())  # fmt: skip
