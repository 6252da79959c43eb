"""Who may call what: every endpoint × role × own or other connection."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from console.access import Role
from mappings import services as rules
from mappings.models import RuleVersion
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


def _rules(connection: Any, *, published: bool) -> None:
    """A draft (and for the other connection a version 1), so a 404 there means "not yours"."""
    content = RuleVersion.objects.filter(number=1).values_list("content", flat=True).first()
    if published:
        RuleVersion.objects.create(
            connection=connection, number=1, content=content, content_hash="x",
            effective_from=NOW.date(), reason="test", published_by="test", published_at=NOW,
        )  # fmt: skip
    rules.draft_replace(connection=connection, content=content, actor="test", now=NOW, reason="")


@pytest.fixture
def world(connection, other_connection, posted) -> dict[str, Any]:
    ingest(other_connection, envelope(id=777, invoiceNumber="OTHER-1"))
    _rules(connection, published=False)
    _rules(other_connection, published=True)
    return {
        "posted": posted.pk,
        "run": _run(connection).pk,
        "other_record": SyncRecord.objects.get(connection=other_connection).pk,
        "other_run": _run(other_connection).pk,
    }


# (method, path under /api/v1/connections/<slug>/, body, AR, Finance, Admin). Bodies of writes
# that would change the world for the next row are invalid on purpose: the status proves the
# request got past access checks into validation or the service.
CONNECTION_ENDPOINTS: list[tuple[str, str, Any, int, int, int]] = [
    ("get", "", None, 200, 200, 200),
    ("get", "reconciliations/", None, 200, 200, 200),
    ("get", "rules/versions/", None, 200, 200, 200),
    ("get", "rules/versions/1/", None, 200, 200, 200),
    ("get", "rules/diff/?a=1&b=1", None, 200, 200, 200),
    ("post", "retry/", {"cause": "NONE"}, 403, 403, 200),
    # rules: everyone reads, Admin and Finance edit
    ("get", "rules/draft/", None, 200, 200, 200),
    ("post", "rules/draft/", {}, 403, 200, 200),
    ("put", "rules/draft/", {"content": {"maps": {"NOPE": {}}}}, 403, 400, 400),
    ("post", "rules/draft/discard/", {}, 403, 400, 400),
    ("put", "rules/draft/maps/SERVICE_LINE/rows/",
     {"source": "Kitchen Hood", "targets": {"revenue_account": "4050"}}, 403, 200, 200),
    ("post", "rules/draft/maps/SERVICE_LINE/rows/delete/", {"source": "unmapped"}, 403, 400, 400),
    ("post", "rules/draft/routing/", {"account": "4010"}, 403, 201, 201),
    ("put", "rules/draft/routing/9999/", {"account": "4010"}, 403, 400, 400),
    ("post", "rules/draft/routing/9999/delete/", {}, 403, 400, 400),
    ("patch", "rules/draft/defaults/", {}, 403, 200, 200),
    ("get", "rules/draft/validate/", None, 200, 200, 200),
    ("get", "rules/draft/preview/?last=3", None, 200, 200, 200),
    ("get", "rules/draft/impact/", None, 200, 200, 200),
    ("post", "rules/draft/publish/", {}, 403, 400, 400),
    ("post", "rules/draft/import/", {}, 403, 400, 400),
    ("get", "rules/export/", None, 200, 200, 200),
    ("get", "rules/export/?version=1&map=SERVICE_LINE", None, 200, 200, 200),
    ("post", "rules/versions/1/rollback/", {}, 403, 400, 400),
    ("get", "rules/versions/1/fixed/", None, 200, 200, 200),
    ("post", "rules/versions/1/retry-fixed/", {}, 403, 200, 200),
    # CSV imports (a str body is sent as text/csv): a file with no rows is refused, all or nothing
    ("post", "rules/draft/maps/SERVICE_LINE/import/", "", 403, 400, 400),
    ("post", "rules/draft/routing/import/", "", 403, 400, 400),
    ("get", "rules/export/?routing=true", None, 200, 200, 200),
    ("get", "rules/draft/diff/", None, 200, 200, 200),
    ("get", "rules/history/?subject=maps.SERVICE_LINE.HVAC", None, 200, 200, 200),
    # per-item edits: setting the same item again is harmless; deleting an absent one is a 400
    ("put", "rules/draft/dimensions/", {"dimension": "AREA", "source": "office"}, 403, 200, 200),
    ("post", "rules/draft/dimensions/delete/", {"dimension": "NOPE"}, 403, 400, 400),
    ("put", "rules/draft/numbering/", {"entity": "SITE", "start": 1, "end": 99}, 403, 200, 200),
    ("post", "rules/draft/numbering/delete/", {"entity": "JOB"}, 403, 400, 400),
    ("put", "rules/draft/ownership/", {"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"},
     403, 200, 200),
    ("post", "rules/draft/ownership/delete/", {"entity": "CONTACT", "field": "nope"},
     403, 400, 400),
    # reconciliation: everyone reads, Admin runs one
    ("post", "reconciliations/", {}, 403, 403, 201),
    # catalog: everyone reads, Admin refreshes
    ("get", "catalog/?kind=ACCOUNT", None, 200, 200, 200),
    ("post", "catalog/refresh/", {}, 403, 403, 200),
    ("post", "catalog/import/?kind=TAX_CODE", "code\n", 403, 403, 400),
    # sandbox ledger: read only
    ("get", "ledger/accounts/", None, 200, 200, 200),
    ("get", "ledger/invoices/", None, 200, 200, 200),
    ("get", "ledger/entries/", None, 200, 200, 200),
    ("get", "ledger/time-entries/", None, 200, 200, 200),
    # the webhook HMAC secret: Admin
    ("post", "webhook-secret/", {}, 403, 403, 201),
    ("delete", "webhook-secret/", None, 403, 403, 204),
    # two-way master data: Admin only
    ("get", "master-data/", None, 403, 403, 200),
    ("post", "master-data/changes/", {"side": "CRM"}, 403, 403, 400),
    ("post", "master-data/send/", {}, 403, 403, 200),
]  # fmt: skip


def own_endpoints(w: dict[str, Any]) -> list[tuple[str, str, Any, int, int, int]]:
    """(method, url, body, status for AR, for Finance, for Admin)."""
    p, run = w["posted"], w["run"]
    return [
        ("get", "/api/v1/connections/", None, 200, 200, 200),
        ("get", "/api/v1/records/", None, 200, 200, 200),
        ("get", f"/api/v1/records/{p}/", None, 200, 200, 200),
        ("get", "/api/v1/search/?q=10482", None, 200, 200, 200),
        ("get", f"/api/v1/connections/demo/reconciliations/{run}/", None, 200, 200, 200),
        ("get", "/api/v1/tokens/", None, 200, 200, 200),
        ("post", "/api/v1/tokens/", {"name": "matrix"}, 201, 201, 201),
        ("delete", "/api/v1/tokens/999999/", None, 404, 404, 404),
        # Actions reach the service only for Admin: a posted record cannot be retried (409).
        ("post", f"/api/v1/records/{p}/retry/", {}, 403, 403, 409),
        ("post", f"/api/v1/records/{p}/cancel/", {"reason": "x"}, 403, 403, 409),
        ("post", f"/api/v1/records/{p}/resolve/", {"reason": "x"}, 403, 403, 409),
        # a posted record with no edit waiting: nothing to decide (409)
        ("post", f"/api/v1/records/{p}/change/reissue/", {}, 403, 403, 409),
        ("post", f"/api/v1/records/{p}/change/ignore/", {"reason": "x"}, 403, 403, 409),
        *((m, f"/api/v1/connections/demo/{path}", body, ar, finance, admin)
          for m, path, body, ar, finance, admin in CONNECTION_ENDPOINTS),
    ]  # fmt: skip


def other_endpoints(w: dict[str, Any]) -> list[tuple[str, str, Any]]:
    r, run = w["other_record"], w["other_run"]
    return [
        ("get", f"/api/v1/records/{r}/", None),
        ("get", f"/api/v1/connections/other/reconciliations/{run}/", None),
        ("get", f"/api/v1/connections/demo/reconciliations/{run}/", None),
        ("post", f"/api/v1/records/{r}/retry/", {}),
        ("post", f"/api/v1/records/{r}/cancel/", {"reason": "x"}),
        ("post", f"/api/v1/records/{r}/resolve/", {"reason": "x"}),
        ("post", f"/api/v1/records/{r}/change/reissue/", {}),
        ("post", f"/api/v1/records/{r}/change/ignore/", {"reason": "x"}),
        *((m, f"/api/v1/connections/other/{path}", body)
          for m, path, body, *_ in CONNECTION_ENDPOINTS),
    ]  # fmt: skip


def call(client, method: str, url: str, body: Any):
    if isinstance(body, str):
        return getattr(client, method)(url, body, content_type="text/csv")
    if method in ("post", "put", "patch"):
        return getattr(client, method)(url, body, content_type="application/json")
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
    for method, url, body, ar, finance, admin in own_endpoints(world):
        expected = {"anonymous": 401, "no role": 403, Role.ADMIN: admin, Role.FINANCE: finance,
                    Role.AR: ar}[role]  # fmt: skip
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
