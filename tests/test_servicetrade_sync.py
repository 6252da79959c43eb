"""The ways in from ServiceTrade's API (webhooks that re-fetch, polling with a cursor), webhook
subscriptions, and write-back, against the fake ServiceTrade and a real database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from syncengine import services
from syncengine.models import (
    ConnectionAudit,
    SourceCursor,
    SourceDocument,
    SourceReceipt,
    SourceWriteBack,
    SyncRecord,
    SyncState,
    WebhookSubscription,
)
from syncengine.sources.servicetrade_api import sync
from syncengine.sources.servicetrade_api.client import ServiceTradeError, to_epoch
from syncengine.sources.servicetrade_api.fake import DEMO_CLOCK_EVENTS, DEMO_INVOICES
from tests.conftest import NOW, envelope, ingest
from tests.fakes.servicetrade import make_client, st_connection

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade"]

SECRET = "hook-secret-for-tests"


@pytest.fixture
def api_connection(connection, fake_st):
    fake_st.clock = lambda: to_epoch(NOW) - 3600
    connection = st_connection(connection, fake_st)
    connection.webhook_secret_hash = connection.hash_secret(SECRET)
    connection.save(update_fields=["webhook_secret_hash"])
    return connection


def hook_path(connection, secret=SECRET):
    return reverse("hooks:servicetrade", args=[connection.slug, secret])


def django_sender(client):
    """How the fake's webhook delivery reaches Crosswalk in tests: through Django's client."""

    def send(url, body):
        path = url.split("://", 1)[-1]
        path = path[path.index("/") :] if "://" in url else url
        return client.post(path, data=body, content_type="application/json").status_code

    return send


def document_of(invoice):
    return SourceDocument.objects.get(source_id=str(invoice["id"]))


# --- webhooks -----------------------------------------------------------------------------------


def test_a_job_event_re_fetches_the_invoices_on_the_job_and_ingests_them(
    client, api_connection, fake_st
):
    invoice = fake_st.add_invoice(job_id=7001)
    fake_st.add_invoice(job_id=7002)
    delivery = fake_st.deliver(hook_path(api_connection), [("job", 7001, "updated")],
                               send=django_sender(client))  # fmt: skip
    assert delivery.attempts == [202]
    assert list(SyncRecord.objects.values_list("document__source_id", flat=True)) == [
        str(invoice["id"])
    ]
    stored = SourceReceipt.objects.get(channel=SourceReceipt.Channel.WEBHOOK)
    assert stored.outcome == SourceReceipt.Outcome.ACCEPTED
    assert '"entity"' in stored.body
    fetched = SourceReceipt.objects.get(channel=SourceReceipt.Channel.API)
    assert fetched.origin.startswith(f"webhook receipt {stored.pk}: job 7001")
    assert fake_st.calls("GET", "/invoice")[0]["jobId"] == "7001"


def test_an_invoice_event_re_fetches_that_invoice(client, api_connection, fake_st):
    invoice = fake_st.add_invoice()
    fake_st.deliver(hook_path(api_connection), [("invoice", invoice["id"], "created")],
                    send=django_sender(client))  # fmt: skip
    assert document_of(invoice).number == invoice["invoiceNumber"]
    assert SyncRecord.objects.get().state == SyncState.READY


def test_repeated_and_out_of_order_deliveries_leave_one_record_at_the_current_state(
    client, api_connection, fake_st
):
    invoice = fake_st.add_invoice(job_id=7001)
    send = django_sender(client)
    created = [("job", 7001, "created")]
    updated = [("job", 7001, "updated")]
    fake_st.deliver(hook_path(api_connection), created, send=send)
    items = [dict(invoice["items"][0], quantity=Decimal("4"))]
    fake_st.change("invoice", invoice["id"], items=items)
    fake_st.deliver(hook_path(api_connection), updated, send=send)
    fake_st.deliver(hook_path(api_connection), created, send=send)  # late, older event
    fake_st.deliver(hook_path(api_connection), updated, send=send)  # repeat
    record = SyncRecord.objects.get()
    assert record.document.total == Decimal("440.00")  # 4 × 110.00, labor untaxed
    assert SourceDocument.objects.count() == 1
    # One creation event, one change; the late and repeated deliveries changed nothing.
    assert list(record.events.values_list("to_state", flat=True)) == ["READY", "READY"]


def test_a_delivery_that_cannot_be_re_fetched_is_kept_and_the_next_poll_ingests_it(
    client, api_connection, fake_st
):
    invoice = fake_st.add_invoice()
    fake_st.fail("GET", "/invoice", 503, times=3)
    fake_st.deliver(hook_path(api_connection), [("invoice", invoice["id"], "updated")],
                    send=django_sender(client))  # fmt: skip
    stored = SourceReceipt.objects.get(channel=SourceReceipt.Channel.WEBHOOK)
    assert stored.outcome == SourceReceipt.Outcome.REJECTED
    assert "503" in stored.errors[0]
    assert not SyncRecord.objects.exists()
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert document_of(invoice).number == invoice["invoiceNumber"]


def test_a_delivery_dropped_after_three_attempts_is_caught_by_the_next_poll(
    api_connection, fake_st
):
    invoice = fake_st.add_invoice()
    delivery = fake_st.deliver("http://crosswalk.invalid/hook/", [("invoice", invoice["id"],
                               "created")], send=lambda url, body: 503)  # fmt: skip
    assert delivery.attempts == [503, 503, 503]
    assert not delivery.delivered
    assert not SyncRecord.objects.exists()
    result = sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert result.accepted == 1
    assert document_of(invoice).number == invoice["invoiceNumber"]


def test_a_delivery_answered_4xx_counts_as_delivered_and_is_not_retried(fake_st):
    delivery = fake_st.deliver("http://x.invalid/", [("job", 1, "updated")],
                               send=lambda url, body: 404)  # fmt: skip
    assert delivery.attempts == [404]
    assert delivery.delivered


def test_with_workers_the_delivery_is_stored_and_acknowledged_before_anything_is_fetched(
    client, api_connection, fake_st, settings, django_capture_on_commit_callbacks
):
    settings.CROSSWALK_NUDGE_WORKERS = True
    invoice = fake_st.add_invoice()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        fake_st.deliver(hook_path(api_connection), [("invoice", invoice["id"], "created")],
                        send=django_sender(client))  # fmt: skip
    assert len(callbacks) == 1
    stored = SourceReceipt.objects.get()
    assert stored.outcome == SourceReceipt.Outcome.PENDING
    assert fake_st.calls("GET", f"/invoice/{invoice['id']}") == []
    sync.webhook_message_process(receipt=stored, now=NOW)
    assert document_of(invoice).number == invoice["invoiceNumber"]


def test_a_webhook_with_the_wrong_secret_stores_nothing_and_fetches_nothing(
    client, api_connection, fake_st
):
    delivery = fake_st.deliver(hook_path(api_connection, "wrong"), [("job", 1, "updated")],
                               send=django_sender(client))  # fmt: skip
    assert delivery.attempts == [404]
    assert not SourceReceipt.objects.exists()
    assert fake_st.requests == []


def test_events_about_entities_without_documents_are_stored_and_fetch_nothing(
    client, api_connection, fake_st
):
    fake_st.deliver(hook_path(api_connection), [("location", 11, "updated")],
                    send=django_sender(client))  # fmt: skip
    assert SourceReceipt.objects.get().outcome == SourceReceipt.Outcome.ACCEPTED
    assert fake_st.requests == []


# --- polling ------------------------------------------------------------------------------------


def test_polling_reads_what_changed_since_its_cursor_and_moves_the_cursor(api_connection, fake_st):
    first = fake_st.add_invoice()
    result = sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert result.accepted == 1
    cursor = SourceCursor.objects.get(entity="invoice", mode=SourceCursor.Mode.POLL)
    assert cursor.position_epoch == to_epoch(NOW)
    later = NOW + timedelta(minutes=10)
    fake_st.clock = lambda: to_epoch(NOW) + 60
    second = fake_st.add_invoice()
    result = sync.servicetrade_poll(connection=api_connection, now=later)
    assert result.accepted == 1
    assert result.invoices == 1  # the first invoice is older than cursor minus overlap
    asked = fake_st.calls("GET", "/invoice")[-1]["updatedAfter"]
    assert asked == str(to_epoch(NOW) - 120)
    assert {d.source_id for d in SourceDocument.objects.all()} == {
        str(first["id"]),
        str(second["id"]),
    }
    cursor.refresh_from_db()
    assert cursor.position_epoch == to_epoch(later)


def test_a_vendor_bill_is_skipped_with_the_reason_and_never_posts_as_an_invoice(
    api_connection, fake_st
):
    bill = fake_st.add_invoice(type="vendorbill")
    invoice = fake_st.add_invoice()
    result = sync.servicetrade_poll(connection=api_connection, now=NOW)
    assert result.accepted == 1
    assert list(SyncRecord.objects.values_list("document__source_id", flat=True)) == [
        str(invoice["id"])
    ]
    reason = (
        "data.type: 'vendorbill' is a ServiceTrade vendor bill (money owed to a vendor), not a "
        "customer invoice: skipped, nothing is posted to accounts receivable"
    )
    assert result.errors == [f"invoice 1 of 2 (INV-{bill['id']}): {reason}"]
    receipt = SourceReceipt.objects.get(channel=SourceReceipt.Channel.API)
    assert receipt.outcome == SourceReceipt.Outcome.PARTLY_ACCEPTED
    # The same from a file: refused with the reason, no record.
    alone = ingest(api_connection, envelope(type="vendorbill", id=99))
    assert (alone.errors, alone.receipt.outcome) == ([reason], SourceReceipt.Outcome.REJECTED)
    assert SyncRecord.objects.count() == 1


def test_a_failed_poll_keeps_its_cursor_and_says_why(api_connection, fake_st):
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    fake_st.fail("GET", "/invoice", 500, times=10)
    with pytest.raises(ServiceTradeError):
        sync.servicetrade_poll(connection=api_connection, now=NOW + timedelta(hours=1))
    cursor = SourceCursor.objects.get(entity="invoice", mode=SourceCursor.Mode.POLL)
    assert cursor.position_epoch == to_epoch(NOW)
    assert "500" in cursor.last_error


def test_beat_polls_api_connections_when_their_interval_has_passed(api_connection, fake_st):
    fake_st.add_invoice()
    assert sync.servicetrade_poll_due(now=NOW) == 1
    assert sync.servicetrade_poll_due(now=NOW + timedelta(seconds=60)) == 0
    assert sync.servicetrade_poll_due(now=NOW + timedelta(seconds=301)) == 1
    assert SyncRecord.objects.count() == 1


def test_a_rotated_refresh_token_is_stored_encrypted_and_audited(connection, fake_st):
    connection = st_connection(connection, fake_st, auth_mode="oauth2_refresh_token")
    with sync.client_for(connection) as st:
        st.companies()
    connection.refresh_from_db()
    stored = connection.source_secrets()["refresh_token"]
    assert stored in fake_st.refresh_tokens
    assert stored not in connection.source_credentials
    audit = ConnectionAudit.objects.filter(actor="servicetrade oauth2").get()
    assert stored not in str(audit.after)


# --- subscriptions ------------------------------------------------------------------------------


def test_subscribe_registers_job_events_with_a_new_secret_that_check_finds_current(
    client, api_connection, fake_st
):
    subscription = sync.webhook_subscribe(
        connection=api_connection, base_url="https://crosswalk.example", now=NOW
    )
    hook = fake_st.entities["webhook"][int(subscription.remote_id)]
    assert hook["hookUrl"].startswith("https://crosswalk.example/hooks/servicetrade/demo/")
    assert hook["entityEvents"] == [{"entityType": 3, "actions": ["created", "updated",
                                                                  "deleted"]}]  # fmt: skip
    assert sync.webhook_check(connection=api_connection, now=NOW) == []
    # The registered URL works: ServiceTrade's delivery of a job event reaches the invoice.
    invoice = fake_st.add_invoice(job_id=7005)
    fake_st.notify("job", 7005, send=django_sender(client))
    assert document_of(invoice).number == invoice["invoiceNumber"]
    # The old secret no longer works.
    assert client.post(hook_path(api_connection), data=b"{}",
                       content_type="application/json").status_code == 404  # fmt: skip


def test_subscribing_again_re_points_the_same_webhook_instead_of_adding_one(
    api_connection, fake_st
):
    first = sync.webhook_subscribe(connection=api_connection, base_url="https://a.example",
                                   now=NOW)  # fmt: skip
    second = sync.webhook_subscribe(connection=api_connection, base_url="https://a.example",
                                    now=NOW)  # fmt: skip
    assert first.remote_id == second.remote_id
    assert len(fake_st.entities["webhook"]) == 1
    assert WebhookSubscription.objects.count() == 1


def test_a_failed_subscribe_leaves_the_working_secret_alone(api_connection, fake_st):
    fake_st.fail("POST", "/webhook", 400, times=1)
    with pytest.raises(ServiceTradeError):
        sync.webhook_subscribe(connection=api_connection, base_url="https://a.example", now=NOW)
    api_connection.refresh_from_db()
    assert api_connection.webhook_secret_hash == api_connection.hash_secret(SECRET)
    assert not WebhookSubscription.objects.exists()


def test_check_names_a_missing_a_disabled_and_a_stale_webhook(api_connection, fake_st):
    assert "No Crosswalk webhook" in sync.webhook_check(connection=api_connection, now=NOW)[0]
    subscription = sync.webhook_subscribe(connection=api_connection,
                                          base_url="https://a.example", now=NOW)  # fmt: skip
    fake_st.change("webhook", int(subscription.remote_id), enabled=False, entityEvents=[])
    api_connection.webhook_secret_hash = api_connection.hash_secret("rotated-elsewhere")
    api_connection.save(update_fields=["webhook_secret_hash"])
    problems = sync.webhook_check(connection=api_connection, now=NOW)
    assert [p.split(" ", 2)[2] for p in problems] == [
        "is disabled in ServiceTrade.",
        "does not send job events.",
        "uses an old hook secret: its deliveries are refused. Run `manage.py servicetrade "
        "subscribe` again.",
    ]
    subscription.refresh_from_db()
    assert subscription.problems == problems


# --- write-back ---------------------------------------------------------------------------------


def test_write_back_marks_posted_invoices_processed_with_the_erp_number_on_the_job(
    api_connection, fake_st
):
    api_connection.source_settings["write_back"] = True
    api_connection.save(update_fields=["source_settings"])
    invoice = fake_st.add_invoice(job_id=7010)
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    services.sync_run_until_idle(now=lambda: NOW)
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 1
    assert fake_st.entities["invoice"][invoice["id"]]["status"] == "processed"
    assert fake_st.external_ids[("job", 7010)] == {"crosswalk": record.erp_document_number}
    # Told once: a second run sends nothing.
    calls = len(fake_st.requests)
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 0
    assert len(fake_st.requests) == calls
    assert SourceWriteBack.objects.get().outcome == SyncState.POSTED


def test_write_back_marks_failed_invoices_failed_and_adds_the_reason_to_their_notes(
    api_connection, fake_st
):
    api_connection.source_settings["write_back"] = True
    api_connection.save(update_fields=["source_settings"])
    invoice = fake_st.add_invoice(notes="Customer asked for a copy.")
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    SyncRecord.objects.update(state=SyncState.FAILED,
                              message="Account 4010 is blocked in the ERP.")  # fmt: skip
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 1
    stored = fake_st.entities["invoice"][invoice["id"]]
    assert stored["status"] == "failed"
    assert stored["notes"] == (
        "Customer asked for a copy.\n\nCrosswalk could not post this invoice to the ERP: "
        "Account 4010 is blocked in the ERP."
    )


def test_write_back_uses_a_comment_when_the_comment_entity_type_is_configured(
    api_connection, fake_st
):
    api_connection.source_settings.update(write_back=True, invoice_comment_entity_type=9)
    api_connection.save(update_fields=["source_settings"])
    invoice = fake_st.add_invoice()
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    SyncRecord.objects.update(state=SyncState.FAILED, message="Unmapped service line.")
    sync.servicetrade_write_back(connection=api_connection, now=NOW)
    comment = next(iter(fake_st.entities["comment"].values()))
    assert (comment["entityType"], comment["entityId"]) == (9, invoice["id"])
    assert comment["content"].endswith("Unmapped service line.")


def test_write_back_is_off_unless_the_connection_turns_it_on(api_connection, fake_st):
    fake_st.add_invoice()
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    services.sync_run_until_idle(now=lambda: NOW)
    before = len(fake_st.requests)
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 0
    assert len(fake_st.requests) == before


def test_a_write_back_that_fails_is_tried_again_on_the_next_run(api_connection, fake_st):
    api_connection.source_settings["write_back"] = True
    api_connection.save(update_fields=["source_settings"])
    invoice = fake_st.add_invoice()
    sync.servicetrade_poll(connection=api_connection, now=NOW)
    services.sync_run_until_idle(now=lambda: NOW)
    fake_st.fail("PUT", f"/invoice/{invoice['id']}", 400, times=1)
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 0
    kept = SourceWriteBack.objects.get()
    assert (kept.told, kept.attempts) == (False, 1)
    assert kept.error.startswith(f"PUT /invoice/{invoice['id']}: ServiceTrade answered 400")
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 1
    assert fake_st.entities["invoice"][invoice["id"]]["status"] == "processed"
    kept.refresh_from_db()
    assert (kept.told, kept.attempts, kept.error) == (True, 2, "")
    assert sync.servicetrade_write_back(connection=api_connection, now=NOW) == 0  # told once


def test_a_full_payment_marks_the_invoice_paid_and_a_part_payment_says_how_much(fake_st):
    paid = fake_st.add_invoice(status="processed")
    part = fake_st.add_invoice(status="processed")
    client, _ = make_client(fake_st)
    with client:
        assert sync.invoice_payment_write_back(client=client, invoice_id=str(paid["id"]),
                                               paid=Decimal("414.74"),
                                               total=Decimal("414.74")) == "paid"  # fmt: skip
        assert (
            sync.invoice_payment_write_back(
                client=client,
                invoice_id=str(part["id"]),
                paid=Decimal("100.00"),
                total=Decimal("414.74"),
            )
            == "partially paid"
        )
    assert fake_st.entities["invoice"][paid["id"]]["status"] == "paid"
    assert fake_st.entities["invoice"][part["id"]]["status"] == "processed"
    assert fake_st.entities["invoice"][part["id"]]["notes"] == (
        "Partially paid in the ERP: 100.00 of 414.74."
    )


def test_a_purchase_order_becomes_job_items_sourced_to_it_and_is_never_added_twice(fake_st):
    job = fake_st.add("job", number="J-20482")
    lines = [sync.PurchaseOrderLine(name="Condenser fan motor", quantity=Decimal("1"),
                                    cost=Decimal("142.10")),
             sync.PurchaseOrderLine(name="Capacitor", quantity=Decimal("2"),
                                    cost=Decimal("9.95"), service_line_id=1)]  # fmt: skip
    client, _ = make_client(fake_st)
    with client:
        first = sync.purchase_order_job_items(client=client, job_id=str(job["id"]),
                                              po_number="4471", lines=lines)  # fmt: skip
        again = sync.purchase_order_job_items(client=client, job_id=str(job["id"]),
                                              po_number="4471", lines=lines)  # fmt: skip
    assert len(first) == 2
    assert again == []
    stored = sorted(fake_st.entities["jobitem"].values(), key=lambda i: i["name"])
    assert [(i["name"], i["cost"], i["source"]["value"]) for i in stored] == [
        ("Capacitor", Decimal("9.95"), "PO 4471"),
        ("Condenser fan motor", Decimal("142.10"), "PO 4471"),
    ]


def test_the_demo_setting_reads_from_the_in_process_fake_servicetrade(connection, settings):
    settings.CROSSWALK_SERVICETRADE_FAKE = True
    connection.source_settings = {"api": True, "base_url": "https://servicetrade.invalid/api"}
    connection.save(update_fields=["source_settings"])
    result = sync.servicetrade_poll(connection=connection, now=timezone.now())
    assert result.accepted == DEMO_INVOICES
    assert SyncRecord.objects.filter(document__kind="INVOICE").count() == DEMO_INVOICES
    # A technician clocked on each of the first few jobs: one weekly card each.
    assert result.clock.cards == DEMO_CLOCK_EVENTS
