"""Every error is RFC 9457 problem JSON, and requests are throttled per user."""

from __future__ import annotations

import pytest

from console.access import Role
from tests.api.conftest import auth, token_for

pytestmark = pytest.mark.django_db

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:crosswalk:problem:{code}"
    return body


def test_errors_are_problem_json_for_400_403_404_and_409(client, make_user, connection, posted):
    admin = auth(token_for(make_user(Role.ADMIN, connection)))
    finance = auth(token_for(make_user(Role.FINANCE, connection)))
    body = assert_problem(
        client.get("/api/v1/records/?before=soon", headers=admin), 400, "validation_error"
    )
    assert body["errors"] == [
        {"field": "before", "message": "A valid integer is required.", "code": "invalid"}
    ]
    assert_problem(
        client.post(f"/api/v1/records/{posted.pk}/retry/", headers=finance), 403, "forbidden"
    )
    assert_problem(client.get("/api/v1/records/999999/", headers=admin), 404, "not_found")
    assert_problem(client.get("/api/v1/no-such-endpoint/", headers=admin), 404, "not_found")
    assert_problem(
        client.post(f"/api/v1/records/{posted.pk}/retry/", headers=admin), 409, "invalid_state"
    )


def test_anonymous_requests_get_a_401_problem_that_names_the_scheme(client):
    response = client.get("/api/v1/connections/")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_malformed_json_is_a_400_problem(client, make_user, connection, posted):
    admin = auth(token_for(make_user(Role.ADMIN, connection)))
    response = client.post(
        f"/api/v1/records/{posted.pk}/cancel/", "{", content_type="application/json",
        headers=admin,
    )  # fmt: skip
    assert_problem(response, 400, "parse_error")


def test_a_user_over_the_rate_gets_a_429_problem_with_retry_after(
    client, settings, make_user, connection
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"crosswalk_api": "2/min"}
    }  # fmt: skip
    user = make_user(Role.AR, connection)
    first, second = auth(token_for(user)), auth(token_for(user))
    assert client.get("/api/v1/connections/", headers=first).status_code == 200
    assert client.get("/api/v1/connections/", headers=second).status_code == 200
    response = client.get("/api/v1/connections/", headers=first)
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    # Another user has a budget of their own.
    other = auth(token_for(make_user(Role.AR, connection)))
    assert client.get("/api/v1/connections/", headers=other).status_code == 200
