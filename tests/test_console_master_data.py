"""The master data page of a connection (Admins only): what each side has not been told, the
changes that lost with both times, and "send now" (htmx partial or a redirect)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from console.access import Role
from masterdata.models import Entity, MasterRecord, Side
from masterdata.services import master_changes_receive
from syncengine import services
from syncengine.erps.sandbox.models import LedgerCustomer
from syncengine.models import Connection
from tests.conftest import NOW, envelope, ingest
from tests.test_console_ops import user_with

pytestmark = pytest.mark.django_db


def receive(connection, side, values, at, ref="501"):
    return master_changes_receive(
        connection=connection, entity=Entity.CUSTOMER, source_ref=ref, side=side, values=values,
        changed_at=at, actor="test", now=NOW,
    )  # fmt: skip


@pytest.fixture
def changes(connection):
    ingest(connection, envelope())  # creates the sandbox customer for company 501
    services.sync_run_until_idle(now=lambda: NOW)
    receive(connection, Side.SOURCE, {"name": "Harbor Foods Inc.", "phone": "919-555-0100"}, NOW)
    receive(connection, Side.ERP, {"phone": "919-555-0199"}, NOW - timedelta(hours=2))
    return connection


def page_url(connection):
    return reverse("ops:master-data", args=[connection.slug])


def send_url(connection):
    return reverse("ops:master-data-send", args=[connection.slug])


def test_an_admin_sees_what_waits_to_be_told_and_the_change_that_lost(client, changes):
    client.force_login(user_with(Role.ADMIN, changes))
    page = client.get(page_url(changes)).content.decode()
    assert "Waiting to be told (1)" in page
    assert "<code>name</code> = Harbor Foods Inc." in page
    assert "919-555-0199" in page and "Older than the standing change from ServiceTrade" in page


def test_send_now_tells_the_erp_and_answers_the_htmx_panel(client, changes):
    client.force_login(user_with(Role.ADMIN, changes))
    response = client.post(send_url(changes), HTTP_HX_REQUEST="true")
    panel = response.content.decode()
    assert response.status_code == 200 and 'id="waiting"' in panel and "<html" not in panel
    assert "Sent just now: 1 told, 0 could not be told" in panel
    assert "Both sides have been told everything." in panel
    customer = LedgerCustomer.objects.get(source_ref="501")
    assert customer.name == "Harbor Foods Inc." and customer.details["phone"] == "919-555-0100"
    assert not MasterRecord.objects.exclude(outbox={}).exists()


def test_send_now_without_htmx_redirects_with_a_message(client, changes):
    client.force_login(user_with(Role.ADMIN, changes))
    response = client.post(send_url(changes), follow=True)
    assert response.redirect_chain[-1][0] == page_url(changes)
    assert "1 told, 0 could not be told" in response.content.decode()


def test_other_roles_are_refused_and_other_connections_are_not_found(client, changes):
    other = Connection.objects.create(name="Other company", slug="other")
    client.force_login(user_with(Role.FINANCE, changes, name="finance-clerk"))
    assert client.get(page_url(changes)).status_code == 403
    assert client.post(send_url(changes)).status_code == 403
    client.force_login(user_with(Role.ADMIN, other, name="admin-other"))
    assert client.get(page_url(changes)).status_code == 404
    assert client.post(send_url(changes)).status_code == 404
    assert MasterRecord.objects.exclude(outbox={}).count() == 1


def test_sending_is_post_only(client, changes):
    client.force_login(user_with(Role.ADMIN, changes))
    assert client.get(send_url(changes)).status_code == 405
