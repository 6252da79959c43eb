"""Connection settings in the console: Admins only, credentials write-only and encrypted,
every change audited, and a test-connection button that says what it found."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from console.access import Role
from syncengine.models import Connection, ConnectionAudit
from tests.fakes.business_central import fake_bc  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def user_with(role: str, *connections: Connection, name: str = "pat") -> User:
    user = User.objects.create_user(username=name, password="pw")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    for connection in connections:
        connection.members.add(user)
    return user


def settings_url(slug: str) -> str:
    return reverse("ops:connection-settings", args=[slug])


def save_url(slug: str, side: str) -> str:
    return reverse("ops:connection-settings-save", args=[slug, side])


def test_only_admins_of_the_connection_see_its_settings(client, connection):
    other = Connection.objects.create(name="Other", slug="other")
    for role in (Role.AR, Role.FINANCE):
        client.force_login(user_with(role, connection, name=role))
        assert client.get(settings_url(connection.slug)).status_code == 403
        assert client.post(save_url(connection.slug, "source"), {}).status_code == 403
    client.force_login(user_with(Role.ADMIN, connection))
    assert client.get(settings_url(connection.slug)).status_code == 200
    assert client.get(settings_url(other.slug)).status_code == 404
    assert client.post(save_url(other.slug, "source"), {}).status_code == 404


def test_saved_credentials_are_named_as_set_but_their_values_never_shown(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    response = client.post(
        save_url(connection.slug, "source"),
        {
            "source-secret-client_id": "crosswalk-app",
            "source-secret-client_secret": "super-secret-value",
            "source-base_url": "https://api.servicetrade.example/api",
            "reason": "first setup",
        },
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.source_secrets()["client_secret"] == "super-secret-value"
    assert "super-secret-value" not in connection.source_credentials
    assert connection.source_settings["base_url"] == "https://api.servicetrade.example/api"
    page = client.get(settings_url(connection.slug)).content.decode()
    assert "super-secret-value" not in page and "crosswalk-app" not in page
    assert "Set — type to replace" in page and "Remove the saved client_secret" in page
    actions = set(ConnectionAudit.objects.values_list("action", flat=True))
    assert actions == {"source_settings_changed", "source_credentials_changed"}
    assert "super-secret-value" not in str(list(ConnectionAudit.objects.values()))


def test_a_blank_credential_keeps_the_saved_one_and_remove_deletes_it(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    url = save_url(connection.slug, "source")
    client.post(url, {"source-secret-username": "ops", "source-secret-password": "pw-1"})
    client.post(url, {"source-secret-username": "", "source-secret-password": ""})
    connection.refresh_from_db()
    assert connection.source_secrets() == {"username": "ops", "password": "pw-1"}
    client.post(url, {"source-clear": ["password"]})
    connection.refresh_from_db()
    assert connection.source_secrets() == {"username": "ops"}


def test_an_unreadable_setting_saves_nothing_and_names_the_field(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    response = client.post(
        save_url(connection.slug, "source"),
        {"source-timeout_seconds": "soon", "source-secret-password": "pw", "source-api": "on"},
    )
    assert response.status_code == 400
    assert "&#x27;soon&#x27; is not a number." in response.content.decode()
    connection.refresh_from_db()
    assert connection.source_settings == {} and connection.source_credentials == ""


def test_an_emptied_setting_goes_back_to_its_default(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    url = save_url(connection.slug, "source")
    client.post(url, {"source-timeout_seconds": "12", "source-api": "on"})
    connection.refresh_from_db()
    # A checkbox left out of the form is off, whatever its default.
    assert connection.source_settings == {"timeout_seconds": 12.0, "api": True,
                                          "write_back": False, "clock_events": False,
                                          "purchase_order_job_items": False,
                                          "master_data": False}  # fmt: skip
    client.post(url, {"source-timeout_seconds": ""})
    connection.refresh_from_db()
    assert "timeout_seconds" not in connection.source_settings
    assert connection.source_settings["api"] is False


def test_the_sandbox_has_posting_policies_to_set_but_no_erp_credentials(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    page = client.get(settings_url(connection.slug)).content.decode()
    assert "ServiceTrade" in page and "Dynamics 365 Business Central" not in page
    assert 'name="erp-mixed_sign"' in page and 'name="erp-client_secret"' not in page
    data = {"erp-mixed_sign": "split", "erp-closed_through": "2025-10-31", "reason": "Close Oct"}
    assert client.post(save_url(connection.slug, "erp"), data).status_code == 302
    connection.refresh_from_db()
    assert connection.erp_settings == {"mixed_sign": "split", "closed_through": "2025-10-31"}
    assert ConnectionAudit.objects.get(action="erp_settings_changed").after == (
        connection.erp_settings
    )


def test_testing_the_sandbox_ledger_says_what_it_found(client, connection):
    client.force_login(user_with(Role.ADMIN, connection))
    response = client.post(
        reverse("ops:connection-settings-test", args=[connection.slug, "erp"]),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith('<div id="test-erp"')
    assert "Connected. Sandbox ledger with" in body


def test_business_central_is_tested_with_the_saved_credentials(client, fake_bc):  # noqa: F811
    fake_bc.seed_demo_books()
    bc = fake_bc.connection()
    client.force_login(user_with(Role.ADMIN, bc))
    test_url = reverse("ops:connection-settings-test", args=[bc.slug, "erp"])
    page = client.get(settings_url(bc.slug)).content.decode()
    assert "Tenant id" in page and "client_secret" in page
    ok = client.post(test_url, HTTP_HX_REQUEST="true").content.decode()
    assert "Connected." in ok and fake_bc.company_name in ok
    client.post(save_url(bc.slug, "erp"), {
        "erp-tenant_id": bc.erp_settings["tenant_id"],
        "erp-environment": bc.erp_settings["environment"],
        "erp-company_name": fake_bc.company_name,
        "erp-api_base_url": bc.erp_settings["api_base_url"],
        "erp-login_base_url": bc.erp_settings["login_base_url"],
        "erp-secret-client_secret": "wrong-secret",
    })  # fmt: skip
    refused = client.post(test_url, HTTP_HX_REQUEST="true").content.decode()
    assert "Could not connect:" in refused and "wrong-secret" not in refused
