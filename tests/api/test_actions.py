"""Admin actions through the API: retry, cancel, resolve, and bulk retry by failure cause."""

from __future__ import annotations

import pytest

from console.access import Role
from tests.api.conftest import auth, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client, make_user, connection):
    return auth(token_for(make_user(Role.ADMIN, connection, name="ada")))


def post(client, url, body, headers):
    return client.post(url, body, content_type="application/json", headers=headers)


def test_an_admin_retries_a_blocked_record(client, admin, blocked):
    response = post(client, f"/api/v1/records/{blocked.pk}/retry/", {}, admin)
    assert response.status_code == 200
    assert response.json()["state"] == "READY"
    assert response.json()["events"][-1]["actor"] == "user:ada"


def test_cancelling_needs_a_reason_and_then_stops_the_record(client, admin, blocked):
    missing = post(client, f"/api/v1/records/{blocked.pk}/cancel/", {"reason": "  "}, admin)
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "reason"
    response = post(client, f"/api/v1/records/{blocked.pk}/cancel/", {"reason": "Dupe"}, admin)
    assert response.status_code == 200
    assert response.json()["state"] == "CANCELLED"


def test_resolving_outside_keeps_the_erp_number_given(client, admin, blocked):
    body = {"reason": "Keyed by hand", "erp_document_number": "SI-9"}
    response = post(client, f"/api/v1/records/{blocked.pk}/resolve/", body, admin)
    assert response.status_code == 200
    assert response.json()["state"] == "SKIPPED"
    assert response.json()["erp_document_number"] == "SI-9"


def test_an_erp_number_longer_than_the_record_holds_is_refused(client, admin, blocked):
    body = {"reason": "x", "erp_document_number": "9" * 65}
    response = post(client, f"/api/v1/records/{blocked.pk}/resolve/", body, admin)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "erp_document_number"


def test_an_action_the_records_state_does_not_allow_is_a_conflict(client, admin, posted):
    response = post(client, f"/api/v1/records/{posted.pk}/cancel/", {"reason": "x"}, admin)
    assert response.status_code == 409
    assert "cannot be cancelled" in response.json()["detail"]


def test_bulk_retry_queues_every_record_of_one_cause(client, admin, blocked):
    body = {"cause": blocked.failure_cause, "state": "BLOCKED"}
    response = post(client, "/api/v1/connections/demo/retry/", body, admin)
    assert response.json() == {"queued": 1}
    again = post(client, "/api/v1/connections/demo/retry/", body, admin)
    assert again.json() == {"queued": 0}
