"""Records: the filtered, keyset-paged list, one record with its events, and "did it land?"."""

from __future__ import annotations

import pytest

from console.access import Role
from syncengine import services
from syncengine.models import SyncRecord
from tests.api.conftest import BLOCKING_ITEMS, auth, token_for
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def headers(make_user, connection):
    return auth(token_for(make_user(Role.AR, connection)))


def test_the_record_list_pages_newest_first_by_keyset_without_repeats(client, connection, headers):
    for number in range(120):
        ingest(connection, envelope(id=1000 + number, invoiceNumber=f"P-{number:03d}"))
    seen: list[int] = []
    url: str | None = "/api/v1/records/"
    pages = 0
    while url:
        body = client.get(url, headers=headers).json()
        assert len(body["results"]) <= 50
        seen += [record["id"] for record in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == SyncRecord.objects.count() == 120


def test_the_next_link_keeps_the_filters(client, connection, headers):
    for number in range(55):
        ingest(connection, envelope(id=1000 + number, invoiceNumber=f"P-{number:03d}"))
    body = client.get("/api/v1/records/?q=P-&connection=demo", headers=headers).json()
    assert "q=P-" in body["next"] and "connection=demo" in body["next"]
    assert "before=" in body["next"]
    assert body["next"].startswith("http://testserver/api/v1/records/")


def test_the_record_list_filters_by_state_cause_text_and_connection(
    client, headers, posted, blocked
):
    def ids(query: str) -> list[int]:
        return [r["id"] for r in client.get(f"/api/v1/records/?{query}", headers=headers).json()[
            "results"]]  # fmt: skip

    assert ids("state=POSTED") == [posted.pk]
    assert ids("state=BLOCKED") == [blocked.pk]
    assert ids(f"cause={blocked.failure_cause}") == [blocked.pk]
    assert ids("q=10482") == [posted.pk]
    assert ids("connection=demo") == [blocked.pk, posted.pk]
    assert ids("connection=other") == []


def test_an_unknown_state_or_cursor_is_a_validation_problem(client, headers):
    response = client.get("/api/v1/records/?state=NOPE&before=x", headers=headers)
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"state", "before"}


def test_a_record_shows_its_events_in_order(client, headers, posted):
    body = client.get(f"/api/v1/records/{posted.pk}/", headers=headers).json()
    assert body["state"] == "POSTED" and body["erp_document_number"]
    assert [e["to_state"] for e in body["events"]][-1] == "POSTED"
    assert [e["id"] for e in body["events"]] == sorted(e["id"] for e in body["events"])


def test_search_lists_exact_document_numbers_before_partial_matches(
    client, connection, headers, posted
):
    ingest(connection, envelope(id=4243, invoiceNumber="104821", items=BLOCKING_ITEMS))
    services.sync_run_until_idle(now=lambda: NOW)
    body = client.get("/api/v1/search/?q=10482", headers=headers).json()
    assert [r["document"]["number"] for r in body["exact"]] == ["10482"]
    assert [r["document"]["number"] for r in body["partial"]] == ["104821"]
    landed = body["exact"][0]
    assert landed["state"] == "POSTED"
    assert landed["erp_document_number"] == posted.erp_document_number
    assert landed["erp_document_url"] == posted.erp_document_url
    assert body["partial"][0]["state"] == "BLOCKED" and body["partial"][0]["message"]


def test_search_needs_text(client, headers):
    response = client.get("/api/v1/search/?q=", headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "q"


def test_a_connection_reports_its_circuit_and_counts_by_state(client, headers, posted, blocked):
    body = client.get("/api/v1/connections/demo/", headers=headers).json()
    assert body["health"]["circuit"]["state"] == "closed"
    assert body["health"]["counts"] == {"POSTED": 1, "BLOCKED": 1}


def test_rule_versions_show_their_content_and_diff(client, connection, headers):
    versions = client.get("/api/v1/connections/demo/rules/versions/", headers=headers).json()
    assert [v["number"] for v in versions] == [1]
    content = client.get("/api/v1/connections/demo/rules/versions/1/", headers=headers).json()
    assert "maps" in content["content"]
    diff = client.get("/api/v1/connections/demo/rules/diff/?a=1&b=1", headers=headers).json()
    assert diff == {"a": 1, "b": 1, "changes": []}
    missing = client.get("/api/v1/connections/demo/rules/diff/?a=1&b=9", headers=headers)
    assert missing.status_code == 404
