"""Signed webhook deliveries (HMAC-SHA256 over "<timestamp>." + body, 300-second window) and the
Admin action that issues the shared secret; the ServiceTrade hook keeps its secret URL."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from console.access import Role
from syncengine import webhooks
from syncengine.models import Connection, ConnectionAudit, SourceReceipt, SyncRecord
from tests.conftest import envelope

pytestmark = pytest.mark.django_db

URL = "/hooks/signed/demo/"


@pytest.fixture
def secret(client, make_user, connection) -> str:
    client.force_login(make_user(Role.ADMIN, connection))
    response = client.post("/api/v1/connections/demo/webhook-secret/")
    assert response.status_code == 201
    client.logout()
    return response.json()["webhook_hmac_secret"]


def deliver(client, body: bytes, *, secret: str, timestamp: int | None = None, **headers: str):
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = {
        webhooks.TIMESTAMP_HEADER: stamp,
        webhooks.SIGNATURE_HEADER: webhooks.webhook_signature(
            secret=secret, timestamp=stamp, body=body
        ),
    }
    signed.update(headers)
    sent = {name: value for name, value in signed.items() if value != "omit"}
    return client.post(URL, body, content_type="application/json", headers=sent)


def test_a_correctly_signed_delivery_is_stored_and_accepted(client, secret):
    response = deliver(client, envelope(), secret=secret)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert SourceReceipt.objects.get().outcome == SourceReceipt.Outcome.ACCEPTED


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_raw_body(client, secret):
    import hashlib
    import hmac

    body, stamp = envelope(), str(int(time.time()))
    by_hand = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    response = client.post(URL, body, content_type="application/json", headers={
        "X-Crosswalk-Timestamp": stamp, "X-Crosswalk-Signature": f"sha256={by_hand}",
    })  # fmt: skip
    assert response.status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {webhooks.SIGNATURE_HEADER: "sha256=" + "0" * 64},
        {webhooks.SIGNATURE_HEADER: "sha256=not-hex-at-all"},
        {webhooks.SIGNATURE_HEADER: "md5=whatever"},
        {webhooks.SIGNATURE_HEADER: "sha256=é"},
    ],
)
def test_a_wrong_signature_is_refused_with_problem_json_and_nothing_is_stored(
    client, secret, headers
):
    response = deliver(client, envelope(), secret=secret, **headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "signature_invalid"
    assert not SourceReceipt.objects.exists()


def test_a_body_changed_after_signing_is_refused(client, secret):
    stamp = str(int(time.time()))
    signature = webhooks.webhook_signature(secret=secret, timestamp=stamp, body=envelope())
    response = client.post(URL, envelope(invoiceNumber="FORGED"), content_type="application/json",
                           headers={webhooks.TIMESTAMP_HEADER: stamp,
                                    webhooks.SIGNATURE_HEADER: signature})  # fmt: skip
    assert response.json()["code"] == "signature_invalid"


def test_a_signature_made_with_another_secret_is_refused(client, secret):
    response = deliver(client, envelope(), secret="not-" + secret)
    assert response.status_code == 401


@pytest.mark.parametrize("missing", [webhooks.TIMESTAMP_HEADER, webhooks.SIGNATURE_HEADER])
def test_a_delivery_without_either_header_is_refused(client, secret, missing):
    response = deliver(client, envelope(), secret=secret, **{missing: "omit"})
    assert response.status_code == 401
    assert response.json()["code"] == "signature_missing"
    assert missing in response.json()["detail"]


@pytest.mark.parametrize("offset", [-310, 310, -86_400])
def test_a_delivery_signed_outside_the_300_second_window_is_refused(client, secret, offset):
    response = deliver(client, envelope(), secret=secret, timestamp=int(time.time()) + offset)
    assert response.status_code == 401
    assert response.json()["code"] == "timestamp_outside_window"
    assert not SourceReceipt.objects.exists()


@pytest.mark.parametrize("offset", [-290, 290])
def test_a_delivery_signed_inside_the_window_either_way_is_accepted(client, secret, offset):
    response = deliver(client, envelope(), secret=secret, timestamp=int(time.time()) + offset)
    assert response.status_code == 202


@pytest.mark.parametrize("stamp", ["soon", "1.5", "-100", "9" * 20, "１２３"])
def test_a_timestamp_that_is_not_whole_unix_seconds_is_refused(client, secret, stamp):
    body = envelope()
    signature = webhooks.webhook_signature(secret=secret, timestamp=stamp, body=body)
    response = client.post(URL, body, content_type="application/json",
                           headers={webhooks.TIMESTAMP_HEADER: stamp,
                                    webhooks.SIGNATURE_HEADER: signature})  # fmt: skip
    assert response.status_code == 401
    assert response.json()["code"] == "timestamp_invalid"


def test_a_duplicate_delivery_inside_the_window_is_harmless(client, secret):
    stamp = int(time.time())
    first = deliver(client, envelope(), secret=secret, timestamp=stamp)
    again = deliver(client, envelope(), secret=secret, timestamp=stamp)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["unchanged"] == 1
    assert SyncRecord.objects.count() == 1


def test_a_malformed_body_is_stored_and_answered_with_problem_json(client, secret):
    response = deliver(client, b'{"data": {"id": 1}', secret=secret)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_payload"
    assert response.json()["receipt"] == SourceReceipt.objects.get().pk


def test_an_oversized_body_is_refused_before_it_is_stored(client, secret, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = deliver(client, b'{"data": "' + b"x" * 2000 + b'"}', secret=secret)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert not SourceReceipt.objects.exists()


def test_a_connection_without_a_secret_accepts_no_signed_deliveries(client, connection):
    response = deliver(client, envelope(), secret="")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_unknown_connection_is_not_found(client, secret):
    response = client.post("/hooks/signed/nope/", envelope(), content_type="application/json")
    assert response.status_code == 404


def test_the_servicetrade_hook_with_its_url_secret_still_works_beside_hmac(client, secret):
    connection = Connection.objects.get(slug="demo")
    connection.webhook_secret_hash = connection.hash_secret("url-secret")
    connection.save(update_fields=["webhook_secret_hash"])
    url = reverse("hooks:servicetrade", args=["demo", "url-secret"])
    assert client.post(url, envelope(), content_type="application/json").status_code == 202


# --- the secret ---------------------------------------------------------------------------------


def test_the_secret_is_shown_once_stored_encrypted_and_audited_without_its_value(client, secret):
    connection = Connection.objects.get(slug="demo")
    assert webhooks.webhook_hmac_secret_of(connection) == secret
    assert secret not in connection.source_credentials
    audit = ConnectionAudit.objects.get(action="source_credentials_changed")
    assert audit.after["changed"] == ["webhook_hmac_secret"]
    assert secret not in str(audit.before) + str(audit.after)


def test_a_new_secret_replaces_the_old_one(client, make_user, connection, secret):
    client.force_login(make_user(Role.ADMIN, connection))
    response = client.post("/api/v1/connections/demo/webhook-secret/")
    assert response["Cache-Control"] == "no-store"
    assert response.json()["url"] == "http://testserver/hooks/signed/demo/"
    assert deliver(client, envelope(), secret=secret).status_code == 401
    new = response.json()["webhook_hmac_secret"]
    assert deliver(client, envelope(), secret=new).status_code == 202


def test_clearing_the_secret_turns_signed_deliveries_off(client, make_user, connection, secret):
    client.force_login(make_user(Role.ADMIN, connection))
    assert client.delete("/api/v1/connections/demo/webhook-secret/").status_code == 204
    assert deliver(client, envelope(), secret=secret).status_code == 404


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AR])
def test_only_an_admin_may_issue_or_clear_the_secret(client, make_user, connection, role):
    client.force_login(make_user(role, connection))
    assert client.post("/api/v1/connections/demo/webhook-secret/").status_code == 403
    assert client.delete("/api/v1/connections/demo/webhook-secret/").status_code == 403
    assert webhooks.webhook_hmac_secret_of(Connection.objects.get(slug="demo")) == ""
