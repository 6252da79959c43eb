"""`Idempotency-Key`: a repeat returns the first result and has no second effect; the same key
with another body is a conflict."""

from __future__ import annotations

import pytest

from console.access import Role
from console.api.models import IdempotentRequest
from syncengine.models import SyncEvent
from tests.api.conftest import auth, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(make_user, connection):
    return make_user(Role.ADMIN, connection)


def post(client, url, body, user, key):
    headers = {**auth(token_for(user)), "Idempotency-Key": key}
    return client.post(url, body, content_type="application/json", headers=headers)


def test_the_same_key_and_body_return_the_first_result_with_one_effect(client, user, blocked):
    url = f"/api/v1/records/{blocked.pk}/retry/"
    first = post(client, url, {}, user, "k-1")
    events = SyncEvent.objects.filter(record=blocked).count()
    second = post(client, url, {}, user, "k-1")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert SyncEvent.objects.filter(record=blocked).count() == events
    # Without the key the retry really runs again, and a READY record cannot be retried.
    assert client.post(url, {}, content_type="application/json", headers=auth(token_for(user))
                       ).status_code == 409  # fmt: skip


def test_the_body_is_compared_as_json_not_as_bytes(client, user, blocked):
    url = f"/api/v1/records/{blocked.pk}/cancel/"
    headers = {**auth(token_for(user)), "Idempotency-Key": "k-2"}
    first = client.post(url, '{"reason": "Dupe"}', content_type="application/json", headers=headers)
    again = client.post(
        url, '{ "reason":"Dupe" }', content_type="application/json", headers=headers
    )
    assert first.status_code == again.status_code == 200


def test_the_same_key_with_another_body_is_a_conflict(client, user, blocked):
    url = f"/api/v1/records/{blocked.pk}/cancel/"
    assert post(client, url, {"reason": "Dupe"}, user, "k-3").status_code == 200
    response = post(client, url, {"reason": "Other"}, user, "k-3")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "idempotency_key_reused"


def test_the_same_key_on_another_endpoint_is_a_conflict(client, user, blocked):
    assert post(client, f"/api/v1/records/{blocked.pk}/retry/", {}, user, "k-4").status_code == 200
    response = post(client, f"/api/v1/records/{blocked.pk}/cancel/", {}, user, "k-4")
    assert response.status_code == 409


def test_keys_belong_to_one_user(client, user, make_user, connection, blocked):
    other = make_user(Role.ADMIN, connection)
    url = "/api/v1/connections/demo/retry/"
    body = {"cause": blocked.failure_cause}
    assert post(client, url, body, user, "shared").json() == {"queued": 1}
    assert post(client, url, body, other, "shared").json() == {"queued": 0}
    assert IdempotentRequest.objects.filter(key="shared").count() == 2


def test_a_refused_request_is_not_remembered(client, make_user, connection, blocked):
    finance = make_user(Role.FINANCE, connection)
    assert (
        post(client, f"/api/v1/records/{blocked.pk}/retry/", {}, finance, "k-5").status_code == 403
    )
    assert not IdempotentRequest.objects.exists()


def test_a_key_that_is_too_long_is_a_validation_problem(client, user, blocked):
    response = post(client, f"/api/v1/records/{blocked.pk}/retry/", {}, user, "k" * 256)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


def test_a_refusal_quoting_a_nul_character_is_stored_and_replayed_without_it(
    client, user, connection
):
    # PostgreSQL cannot store a NUL in JSON: the stored outcome holds U+FFFD in its place.
    url = "/api/v1/connections/demo/rules/draft/routing/import/"
    headers = {**auth(token_for(user)), "Idempotency-Key": "nul-1"}
    body = "id,account,b\x00d\n1,4010,x\n"
    first = client.post(url, body, content_type="text/csv", headers=headers)
    second = client.post(url, body, content_type="text/csv", headers=headers)
    assert (first.status_code, second.status_code) == (400, 400)
    assert "b\x00d" in first.json()["errors"][0]["field"]
    assert second["Idempotent-Replayed"] == "true"
    assert second.json()["errors"][0]["field"] == first.json()["errors"][0]["field"].replace(
        "\x00", "\ufffd"
    )
    assert IdempotentRequest.objects.get(key="nul-1").status == 400
