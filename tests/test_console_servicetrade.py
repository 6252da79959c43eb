"""The ServiceTrade page of a connection (Admins only): cursors, the webhook subscription with a
"check subscriptions now" action, write-backs with their failures, and purchase-order lines
waiting; against the fake ServiceTrade and a real database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from console.access import Role
from syncengine.models import (
    Connection,
    PurchaseOrderJobItem,
    SourceCursor,
    SourceWriteBack,
    SyncRecord,
    SyncState,
    WebhookSubscription,
)
from syncengine.sources.servicetrade_api import sync
from syncengine.sources.servicetrade_api.client import to_epoch
from tests.conftest import NOW, envelope, ingest
from tests.fakes.servicetrade import st_connection
from tests.test_console_ops import user_with

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.servicetrade"]


@pytest.fixture(autouse=True)
def _ops_urls(settings):
    settings.ROOT_URLCONF = "tests.ops_urlconf"


@pytest.fixture
def other_connection(db):
    return Connection.objects.create(name="Other company", slug="other")


@pytest.fixture
def api_connection(connection, fake_st):
    fake_st.clock = lambda: to_epoch(NOW) - 3600
    return st_connection(connection, fake_st, write_back=True)


def page_url(connection):
    return reverse("ops:servicetrade", args=[connection.slug])


def check_url(connection):
    return reverse("ops:servicetrade-check", args=[connection.slug])


def test_an_admin_sees_cursors_the_webhook_failed_write_backs_and_waiting_lines(
    client, api_connection
):
    SourceCursor.objects.create(
        connection=api_connection, entity="invoice", mode=SourceCursor.Mode.POLL,
        position_epoch=to_epoch(NOW), started_at=NOW, moved_at=NOW, items_read=42,
    )  # fmt: skip
    SourceCursor.objects.create(
        connection=api_connection, entity="invoice", mode=SourceCursor.Mode.BACKFILL,
        since_epoch=to_epoch(NOW) - 86400 * 30, position_epoch=to_epoch(NOW) - 86400, page=7,
        started_at=NOW, moved_at=NOW, last_error="GET /invoice: ServiceTrade answered 503.",
    )  # fmt: skip
    WebhookSubscription.objects.create(
        connection=api_connection, remote_id="1042", created_at=NOW, checked_at=NOW,
        hook_url_prefix="https://crosswalk.example/hooks/servicetrade/demo/",
        problems=["Webhook 1042 is disabled in ServiceTrade."],
    )  # fmt: skip
    ingest(api_connection, envelope())
    record = SyncRecord.objects.get()
    SourceWriteBack.objects.create(record=record, outcome=SyncState.POSTED, at=NOW, told=False,
                                   attempts=3, error="PUT /invoice/4242: ServiceTrade answered "
                                   "400: A void invoice cannot change status.")  # fmt: skip
    PurchaseOrderJobItem.objects.create(
        connection=api_connection, erp_order_id="o1", erp_line_id="l1", po_number="106003",
        job_number="J-9999", name="Condenser fan motor", quantity=Decimal(1),
        unit_cost=Decimal("142.10"), state=PurchaseOrderJobItem.State.UNKNOWN_JOB,
        message="No ServiceTrade job numbered 'J-9999' (purchase order 106003).", first_seen_at=NOW,
    )  # fmt: skip
    client.force_login(user_with(Role.ADMIN, api_connection))
    response = client.get(page_url(api_connection))
    assert response.status_code == 200
    text = response.content.decode()
    for expected in [
        "Polling", "2026-11-20 15:00", "42", "Failed: GET /invoice: ServiceTrade answered 503.",
        "Webhook 1042 is disabled in ServiceTrade.", "https://crosswalk.example/hooks/servicetrade/demo/…",
        "Not told yet (1)", "A void invoice cannot change status.", record.idempotency_key,
        "No ServiceTrade job numbered &#x27;J-9999&#x27; (purchase order 106003).",
        "Check subscriptions now",
    ]:  # fmt: skip
        assert expected in text, expected


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AR])
def test_finance_and_ar_are_refused_the_page_and_the_check(client, api_connection, fake_st, role):
    client.force_login(user_with(role, api_connection))
    assert client.get(page_url(api_connection)).status_code == 403
    assert client.post(check_url(api_connection), HTTP_HX_REQUEST="true").status_code == 403
    assert fake_st.requests == []


def test_another_connections_slug_is_not_found_even_for_an_admin(
    client, api_connection, other_connection, fake_st
):
    client.force_login(user_with(Role.ADMIN, other_connection))
    assert client.get(page_url(api_connection)).status_code == 404
    assert client.post(check_url(api_connection)).status_code == 404
    assert client.get(page_url(other_connection)).status_code == 200
    assert fake_st.requests == []


def test_anonymous_visitors_are_sent_to_the_login_page(client, api_connection):
    response = client.get(page_url(api_connection))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_checking_now_with_htmx_asks_servicetrade_and_swaps_in_the_subscriptions_panel(
    client, api_connection, fake_st
):
    subscription = sync.webhook_subscribe(
        connection=api_connection, base_url="https://crosswalk.example", now=NOW
    )
    fake_st.change("webhook", int(subscription.remote_id), enabled=False)
    client.force_login(user_with(Role.ADMIN, api_connection))
    response = client.post(check_url(api_connection), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    text = response.content.decode()
    assert text.lstrip().startswith('<section class="panel" id="subscriptions"')
    assert (
        f"Checked just now: Webhook {subscription.remote_id} is disabled in ServiceTrade." in text
    )
    assert "Polling and backfills" not in text
    subscription.refresh_from_db()
    assert subscription.checked_at > NOW
    assert subscription.problems == [
        f"Webhook {subscription.remote_id} is disabled in ServiceTrade."
    ]


def test_checking_without_htmx_redirects_back_with_the_outcome(client, api_connection, fake_st):
    sync.webhook_subscribe(connection=api_connection, base_url="https://crosswalk.example",
                           now=NOW)  # fmt: skip
    client.force_login(user_with(Role.ADMIN, api_connection))
    response = client.post(check_url(api_connection), follow=True)
    assert response.redirect_chain == [(page_url(api_connection), 302)]
    assert "The webhook is registered, enabled and current." in response.content.decode()


def test_a_servicetrade_that_cannot_be_reached_is_said_plainly(client, api_connection, fake_st):
    fake_st.fail("GET", "/webhook", 403, times=1)
    client.force_login(user_with(Role.ADMIN, api_connection))
    text = client.post(check_url(api_connection), HTTP_HX_REQUEST="true").content.decode()
    assert "ServiceTrade could not be asked: GET /webhook: ServiceTrade answered 403" in text
