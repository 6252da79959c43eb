"""API tokens: created from a session and shown once, stored hashed, listed without the secret,
revoked for good."""

from __future__ import annotations

import hashlib

import pytest

from console.access import Role
from console.api.models import ApiToken
from tests.api.conftest import auth, token_for

pytestmark = pytest.mark.django_db


def test_a_token_is_shown_once_at_creation_and_only_its_hash_is_stored(
    client, make_user, connection
):
    client.force_login(make_user(Role.AR, connection))
    response = client.post("/api/v1/tokens/", {"name": "ci"}, content_type="application/json")
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("cwk_") and len(token) > 50
    row = ApiToken.objects.get()
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.name, row.prefix, row.key_hash}
    assert row.prefix == token[:8] == response.json()["prefix"]


def test_the_token_list_shows_own_tokens_without_any_secret(client, make_user, connection):
    user = make_user(Role.AR, connection)
    token = token_for(user)
    token_for(make_user(Role.AR, connection))  # someone else's
    client.force_login(user)
    listed = client.get("/api/v1/tokens/").json()
    assert len(listed) == 1
    assert set(listed[0]) == {"id", "name", "prefix", "created_at", "last_used_at", "revoked_at"}
    assert token not in str(listed) and ApiToken.objects.get(user=user).key_hash not in str(listed)


def test_a_token_authenticates_and_records_when_it_was_last_used(client, make_user, connection):
    user = make_user(Role.AR, connection)
    token = token_for(user)
    response = client.get("/api/v1/connections/", headers=auth(token))
    assert response.status_code == 200
    assert ApiToken.objects.get(user=user).last_used_at is not None


def test_a_revoked_token_is_rejected(client, make_user, connection):
    user = make_user(Role.AR, connection)
    token = token_for(user)
    row = ApiToken.objects.get(user=user)
    assert client.delete(f"/api/v1/tokens/{row.pk}/", headers=auth(token)).status_code == 204
    row.refresh_from_db()
    assert row.revoked_at is not None
    response = client.get("/api/v1/connections/", headers=auth(token))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["code"] == "authentication_failed"


def test_an_unknown_or_malformed_token_is_rejected(client):
    assert client.get("/api/v1/records/", headers=auth("cwk_nope")).status_code == 401
    bad = {"Authorization": "Token two parts"}
    assert client.get("/api/v1/records/", headers=bad).status_code == 401


def test_nobody_can_revoke_someone_elses_token(client, make_user, connection):
    owner = make_user(Role.ADMIN, connection)
    token_for(owner)
    client.force_login(make_user(Role.ADMIN, connection))
    response = client.delete(f"/api/v1/tokens/{ApiToken.objects.get(user=owner).pk}/")
    assert response.status_code == 404
    assert ApiToken.objects.get(user=owner).revoked_at is None


def test_a_token_cannot_create_another_token(client, make_user, connection):
    token = token_for(make_user(Role.ADMIN, connection))
    response = client.post(
        "/api/v1/tokens/", {"name": "x"}, content_type="application/json", headers=auth(token)
    )
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


def test_a_token_needs_a_name(client, make_user, connection):
    client.force_login(make_user(Role.AR, connection))
    response = client.post("/api/v1/tokens/", {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"
