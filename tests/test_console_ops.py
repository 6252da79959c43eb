"""The operations pages: the ERP catalog, reconciliation runs and findings, and API tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from console.access import Role
from console.api.models import ApiToken, hash_token
from mappings.models import CatalogEntry
from syncengine import services
from syncengine.erps.base import ConnectorError
from syncengine.models import Connection, ReconciliationRun
from syncengine.reconcile import reconciliation_run
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ops_urls(settings):
    settings.ROOT_URLCONF = "tests.ops_urlconf"


@pytest.fixture
def other_connection(db):
    return Connection.objects.create(name="Other company", slug="other")


def user_with(role: str | None, *connections: Connection, name: str = "user") -> User:
    user = User.objects.create_user(username=name, password="pw")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    for connection in connections:
        connection.members.add(user)
    return user


def page(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def a_run(connection) -> ReconciliationRun:
    return reconciliation_run(connection=connection, actor="test", now=NOW + timedelta(hours=1))


# --- access -------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(client, connection):
    run = a_run(connection)
    for url in [
        reverse("ops:catalog", args=[connection.slug]),
        reverse("ops:reconciliation", args=[connection.slug]),
        reverse("ops:reconciliation-run", args=[connection.slug, run.pk]),
        reverse("ops:tokens"),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("role", Role.ALL)
def test_every_role_on_the_connection_can_read_the_pages(client, connection, role):
    run = a_run(connection)
    client.force_login(user_with(role, connection))
    for url in [
        reverse("ops:catalog", args=[connection.slug]),
        reverse("ops:reconciliation", args=[connection.slug]),
        reverse("ops:reconciliation-run", args=[connection.slug, run.pk]),
        reverse("ops:tokens"),
    ]:
        assert client.get(url).status_code == 200, url


def test_a_user_without_a_role_is_refused(client, connection):
    client.force_login(user_with(None, connection))
    assert client.get(reverse("ops:tokens")).status_code == 403
    assert client.get(reverse("ops:catalog", args=[connection.slug])).status_code == 403


def test_another_connection_is_not_found(client, connection, other_connection):
    run = a_run(connection)
    client.force_login(user_with(Role.ADMIN, other_connection))
    for method, url in [
        ("get", reverse("ops:catalog", args=[connection.slug])),
        ("post", reverse("ops:catalog-refresh", args=[connection.slug])),
        ("post", reverse("ops:catalog-import", args=[connection.slug])),
        ("get", reverse("ops:reconciliation", args=[connection.slug])),
        ("get", reverse("ops:reconciliation-run", args=[connection.slug, run.pk])),
        ("post", reverse("ops:reconciliation-run-now", args=[connection.slug])),
    ]:
        assert getattr(client, method)(url).status_code == 404, url


def test_a_run_of_another_connection_is_not_found_under_this_one(
    client, connection, other_connection
):
    run = a_run(connection)
    other_connection.members.add(user := user_with(Role.ADMIN, connection))
    client.force_login(user)
    url = reverse("ops:reconciliation-run", args=[other_connection.slug, run.pk])
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AR])
def test_only_admins_may_refresh_import_or_run(client, connection, role):
    client.force_login(user_with(role, connection))
    for url in [
        reverse("ops:catalog-refresh", args=[connection.slug]),
        reverse("ops:catalog-import", args=[connection.slug]),
        reverse("ops:reconciliation-run-now", args=[connection.slug]),
    ]:
        assert client.post(url).status_code == 403, url
    assert not ReconciliationRun.objects.exists()


def test_non_admins_do_not_see_the_admin_buttons(client, connection):
    client.force_login(user_with(Role.FINANCE, connection))
    assert "Refresh from the ERP</button>" not in page(
        client.get(reverse("ops:catalog", args=[connection.slug]))
    )
    assert "Run now" not in page(client.get(reverse("ops:reconciliation", args=[connection.slug])))


# --- catalog ------------------------------------------------------------------------------------


def test_the_refresh_reports_its_counts_and_the_page_lists_the_values(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    CatalogEntry.objects.filter(connection=connection).delete()
    response = client.post(reverse("ops:catalog-refresh", args=[connection.slug]), follow=True)
    assert response.status_code == 200
    returned = CatalogEntry.objects.filter(connection=connection).count()
    assert returned > 0
    assert any(
        f"{returned} values listed: {returned} added, 0 changed, 0 newly missing." in message
        for message in messages_of(response)
    )
    account = CatalogEntry.objects.filter(connection=connection, kind="ACCOUNT").first()
    assert account.code in page(response) and "Last refreshed:" in page(response)


def test_a_value_the_erp_no_longer_lists_is_flagged_with_the_date(client, connection):
    client.force_login(user_with(Role.AR, connection))
    entry = CatalogEntry.objects.create(
        connection=connection, kind="ACCOUNT", code="9999", name="Old", refreshed_at=NOW
    )
    CatalogEntry.objects.filter(pk=entry.pk).update(missing_since=NOW)
    response = client.get(reverse("ops:catalog", args=[connection.slug]), {"kind": "ACCOUNT"})
    assert "No longer in the ERP since 2026-11-20 15:00 UTC" in page(response)


def test_an_unreachable_erp_is_shown_as_an_error(client, connection, monkeypatch):
    from syncengine.erps import registry

    class Unreachable:
        def catalog_lists(self):
            raise ConnectorError("connection refused", category="CONNECTION", transient=True)

    monkeypatch.setattr(registry, "connector_for", lambda target: Unreachable())
    client.force_login(user_with(Role.ADMIN, connection))
    response = client.post(reverse("ops:catalog-refresh", args=[connection.slug]), follow=True)
    assert "alert-error" in page(response) and "connection refused" in page(response)


def test_an_import_replaces_one_list_and_reports_its_counts(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    upload = SimpleUploadedFile("terms.csv", b"code,name\nNET30,Net 30\nNET60,Net 60\n")
    response = client.post(
        reverse("ops:catalog-import", args=[connection.slug]),
        {"kind": "PAYMENT_TERM", "file": upload, "reason": "ERP export"},
        follow=True,
    )
    assert response.status_code == 200
    assert any("2 values listed" in message for message in messages_of(response))
    assert "NET60" in page(response)
    codes = CatalogEntry.objects.filter(
        connection=connection, kind="PAYMENT_TERM", missing_since=None
    )
    assert set(codes.values_list("code", flat=True)) == {"NET30", "NET60"}


def test_a_refused_import_names_the_row_and_column_of_each_problem(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    before = CatalogEntry.objects.count()
    upload = SimpleUploadedFile("bad.csv", b"code,name,active\nA1,One,maybe\n,Two,yes\n")
    response = client.post(
        reverse("ops:catalog-import", args=[connection.slug]),
        {"kind": "ACCOUNT", "file": upload, "reason": ""},
    )
    assert response.status_code == 400
    text = page(response)
    assert "Row 2, column active:" in text and "Row 3, column code: required." in text
    assert CatalogEntry.objects.count() == before


def test_an_import_without_a_file_or_with_an_unknown_kind_is_refused(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    url = reverse("ops:catalog-import", args=[connection.slug])
    assert "Choose a CSV file" in page(client.post(url, {"kind": "ACCOUNT"}))
    upload = SimpleUploadedFile("x.csv", b"code\nA\n")
    assert "Unknown catalog kind" in page(client.post(url, {"kind": "NOPE", "file": upload}))


# --- reconciliation -----------------------------------------------------------------------------


def test_a_run_shows_a_one_cent_difference_down_to_the_finding(client, connection):
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    ingest(connection, envelope(totalTax="9.46", totalPrice="414.75"), now=NOW + timedelta(1))
    client.force_login(user_with(Role.ADMIN, connection))

    response = client.post(
        reverse("ops:reconciliation-run-now", args=[connection.slug]), follow=True
    )
    assert response.status_code == 200
    run = ReconciliationRun.objects.get()
    assert response.redirect_chain[-1][0] == reverse(
        "ops:reconciliation-run", args=[connection.slug, run.pk]
    )
    text = page(response)
    assert "Amount differs" in text and "ST-INV-4242" in text
    assert "414.75" in text and "414.74" in text and "-0.01" in text
    finding = run.findings.get()
    assert reverse("console:record-detail", args=[finding.record_id]) in text
    assert any("1 finding" in message for message in messages_of(response))

    listing = page(client.get(reverse("ops:reconciliation", args=[connection.slug])))
    assert "Amount differs: 1" in listing and "user:user" in listing


def test_the_list_shows_the_latest_twenty_runs_newest_first(client, connection):
    for hour in range(22):
        ReconciliationRun.objects.create(
            connection=connection, actor=f"run-{hour}", started_at=NOW + timedelta(hours=hour)
        )
    client.force_login(user_with(Role.AR, connection))
    response = client.get(reverse("ops:reconciliation", args=[connection.slug]))
    rows = response.context["rows"]
    assert len(rows) == 20 and rows[0].run.actor == "run-21" and rows[-1].run.actor == "run-2"


def test_a_clean_run_says_everything_ties_out(client, connection):
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    client.force_login(user_with(Role.ADMIN, connection))
    response = client.post(
        reverse("ops:reconciliation-run-now", args=[connection.slug]), follow=True
    )
    assert "Everything ties out" in page(response) and "+0.00" in page(response)


# --- API tokens ---------------------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_never_in_the_list(client, connection):
    user = user_with(Role.AR, connection)
    client.force_login(user)
    response = client.post(reverse("ops:token-create"), {"name": "Export script"})
    assert response.status_code == 200
    secret = response.context["secret"]
    text = page(response)
    assert secret in text and "cannot be shown again" in text
    assert "no-store" in response.get("Cache-Control", "")
    token = ApiToken.objects.get(user=user)
    assert token.name == "Export script" and token.key_hash == hash_token(secret)

    listing = page(client.get(reverse("ops:tokens")))
    assert "Export script" in listing and token.prefix in listing and secret not in listing


def test_a_token_needs_a_name(client, connection):
    client.force_login(user_with(Role.AR, connection))
    response = client.post(reverse("ops:token-create"), {"name": "  "})
    assert response.status_code == 400 and "Give the token a name" in page(response)
    assert not ApiToken.objects.exists()


def test_the_list_shows_only_the_users_own_tokens(client, connection):
    ApiToken.issue(user=user_with(Role.AR, connection, name="someone"), name="Theirs")
    ApiToken.issue(user=(me := user_with(Role.AR, connection)), name="Mine")
    client.force_login(me)
    text = page(client.get(reverse("ops:tokens")))
    assert "Mine" in text and "Theirs" not in text


def test_revoking_asks_first_then_revokes(client, connection):
    user = user_with(Role.AR, connection)
    token, _secret = ApiToken.issue(user=user, name="Old script")
    client.force_login(user)
    url = reverse("ops:token-revoke", args=[token.pk])
    confirm = client.get(url)
    assert confirm.status_code == 200 and "cannot be undone" in page(confirm)
    token.refresh_from_db()
    assert token.revoked_at is None

    response = client.post(url, follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert any("revoked" in message for message in messages_of(response))
    assert "Revoked" in page(response)


def test_someone_elses_token_cannot_be_revoked(client, connection):
    token, _secret = ApiToken.issue(user=user_with(Role.AR, connection, name="owner"), name="X")
    client.force_login(user_with(Role.ADMIN, connection))
    assert client.post(reverse("ops:token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
