"""Who may call what: every endpoint × role × own or other connection."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from console.access import Role
from syncengine.models import ReconciliationFinding, ReconciliationRun, SyncRecord
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db

ROLES = [Role.ADMIN, Role.FINANCE, Role.AR, "no role", "anonymous"]


def _run(connection: Any) -> ReconciliationRun:
    run = ReconciliationRun.objects.create(
        connection=connection, actor="test", started_at=NOW, finished_at=NOW,
        counts={"NOT_POSTED": 1}, posted_source_total="414.74", erp_invoice_total="414.74",
    )  # fmt: skip
    ReconciliationFinding.objects.create(
        run=run, kind=ReconciliationFinding.Kind.NOT_POSTED, key="ST-1", detail="Not posted."
    )
    return run


@pytest.fixture
def world(connection, other_connection, posted) -> dict[str, Any]:
    ingest(other_connection, envelope(id=777, invoiceNumber="OTHER-1"))
    return {
        "posted": posted.pk,
        "run": _run(connection).pk,
        "other_record": SyncRecord.objects.get(connection=other_connection).pk,
        "other_run": _run(other_connection).pk,
    }


def own_endpoints(w: dict[str, Any]) -> list[tuple[str, str, Any, int, int]]:
    """(method, url, body, status for any role, status for Admin)."""
    p, run = w["posted"], w["run"]
    return [
        ("get", "/api/v1/connections/", None, 200, 200),
        ("get", "/api/v1/connections/demo/", None, 200, 200),
        ("get", "/api/v1/records/", None, 200, 200),
        ("get", f"/api/v1/records/{p}/", None, 200, 200),
        ("get", "/api/v1/search/?q=10482", None, 200, 200),
        ("get", "/api/v1/connections/demo/reconciliations/", None, 200, 200),
        ("get", f"/api/v1/connections/demo/reconciliations/{run}/", None, 200, 200),
        ("get", "/api/v1/connections/demo/rules/versions/", None, 200, 200),
        ("get", "/api/v1/connections/demo/rules/versions/1/", None, 200, 200),
        ("get", "/api/v1/connections/demo/rules/diff/?a=1&b=1", None, 200, 200),
        ("get", "/api/v1/tokens/", None, 200, 200),
        ("post", "/api/v1/tokens/", {"name": "matrix"}, 201, 201),
        ("delete", "/api/v1/tokens/999999/", None, 404, 404),
        # Actions reach the service only for Admin: a posted record cannot be retried (409).
        ("post", f"/api/v1/records/{p}/retry/", {}, 403, 409),
        ("post", f"/api/v1/records/{p}/cancel/", {"reason": "x"}, 403, 409),
        ("post", f"/api/v1/records/{p}/resolve/", {"reason": "x"}, 403, 409),
        ("post", "/api/v1/connections/demo/retry/", {"cause": "NONE"}, 403, 200),
    ]


def other_endpoints(w: dict[str, Any]) -> list[tuple[str, str, Any]]:
    r, run = w["other_record"], w["other_run"]
    return [
        ("get", "/api/v1/connections/other/", None),
        ("get", f"/api/v1/records/{r}/", None),
        ("get", "/api/v1/connections/other/reconciliations/", None),
        ("get", f"/api/v1/connections/other/reconciliations/{run}/", None),
        ("get", f"/api/v1/connections/demo/reconciliations/{run}/", None),
        ("get", "/api/v1/connections/other/rules/versions/", None),
        ("get", "/api/v1/connections/other/rules/versions/1/", None),
        ("get", "/api/v1/connections/other/rules/diff/?a=1&b=1", None),
        ("post", f"/api/v1/records/{r}/retry/", {}),
        ("post", f"/api/v1/records/{r}/cancel/", {"reason": "x"}),
        ("post", f"/api/v1/records/{r}/resolve/", {"reason": "x"}),
        ("post", "/api/v1/connections/other/retry/", {"cause": "NONE"}),
    ]


def call(client, method: str, url: str, body: Any):
    if method == "post":
        return client.post(url, body, content_type="application/json")
    return getattr(client, method)(url)


def login(client, make_user, role: str, connection) -> User | None:
    if role == "anonymous":
        return None
    user = make_user(None if role == "no role" else role, connection)
    client.force_login(user)
    return user


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_on_the_users_own_connection_answers_as_the_role_allows(
    client, make_user, connection, world, role
):
    login(client, make_user, role, connection)
    for method, url, body, for_role, for_admin in own_endpoints(world):
        expected = {"anonymous": 401, "no role": 403, Role.ADMIN: for_admin}.get(role, for_role)
        response = call(client, method, url, body)
        assert response.status_code == expected, (role, method, url, response.content)


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_on_another_connection_is_not_found_for_every_role(
    client, make_user, connection, world, role
):
    login(client, make_user, role, connection)
    for method, url, body in other_endpoints(world):
        expected = {"anonymous": 401, "no role": 403}.get(role, 404)
        response = call(client, method, url, body)
        assert response.status_code == expected, (role, method, url, response.content)


def test_lists_show_only_the_users_connections_and_their_records(
    client, make_user, connection, world
):
    client.force_login(make_user(Role.FINANCE, connection))
    assert [c["slug"] for c in client.get("/api/v1/connections/").json()] == ["demo"]
    records = client.get("/api/v1/records/").json()["results"]
    assert {r["connection"] for r in records} == {"demo"}
    assert client.get("/api/v1/search/?q=OTHER-1").json() == {
        "q": "OTHER-1", "exact": [], "partial": []
    }  # fmt: skip


def test_a_superuser_sees_every_connection(client, connection, world):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    assert {c["slug"] for c in client.get("/api/v1/connections/").json()} == {"demo", "other"}
    assert client.get(f"/api/v1/records/{world['other_record']}/").status_code == 200


def test_a_finance_users_action_changes_nothing(client, make_user, connection, blocked):
    client.force_login(make_user(Role.FINANCE, connection))
    response = client.post(f"/api/v1/records/{blocked.pk}/retry/", content_type="application/json")
    assert response.status_code == 403
    blocked.refresh_from_db()
    assert blocked.state == "BLOCKED"
