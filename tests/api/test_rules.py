"""Posting rules through the API: the same draft, checks, publish and history as the console's
editor, with the services' own words in problem JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from console.access import Role
from mappings.models import RuleAudit, RuleDraft, RuleVersion
from syncengine.models import SourceDocument, SyncState

pytestmark = pytest.mark.django_db

RULES = "/api/v1/connections/demo/rules"
BACKFLOW = {
    "source": "Backflow Testing",
    "reason": "Map the new line",
    "targets": {"revenue_account": "4060", "cost_code": "600"},
}


@pytest.fixture
def finance(client, make_user, connection):
    client.force_login(make_user(Role.FINANCE, connection, name="fran"))
    return client


def send(client, method: str, url: str, body: Any = None):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method)(url, data, content_type="application/json")


def test_starting_a_draft_copies_the_latest_version_and_then_returns_the_same_draft(finance):
    first = send(finance, "post", f"{RULES}/draft/")
    again = send(finance, "post", f"{RULES}/draft/")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["base_version"] == 1
    assert first.json()["updated_by"] == "user:fran"
    assert first.json()["content"] == RuleVersion.objects.get(number=1).content
    assert finance.get(f"{RULES}/draft/").json() == again.json()


def test_without_a_draft_its_resources_are_not_found(finance):
    for path in ("draft/", "draft/validate/", "draft/preview/", "draft/impact/", "export/"):
        response = finance.get(f"{RULES}/{path}")
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/problem+json"


def test_a_map_row_is_set_in_the_draft_with_its_audit_row(finance):
    response = send(finance, "put", f"{RULES}/draft/maps/SERVICE_LINE/rows/", BACKFLOW)
    assert response.status_code == 200
    row = response.json()["content"]["maps"]["SERVICE_LINE"]["Backflow Testing"]
    assert row == {"revenue_account": "4060", "cost_code": "600"}
    audit = RuleAudit.objects.get(action=RuleAudit.Action.MAP_ROW_SET)
    assert (audit.subject, audit.actor, audit.reason) == (
        "maps.SERVICE_LINE.Backflow Testing",
        "user:fran",
        "Map the new line",
    )


def test_an_unknown_map_is_not_found_and_a_bad_row_names_the_field(finance):
    unknown = send(finance, "put", f"{RULES}/draft/maps/NOPE/rows/", BACKFLOW)
    assert unknown.status_code == 404
    bad = send(
        finance,
        "put",
        f"{RULES}/draft/maps/SERVICE_LINE/rows/",
        {**BACKFLOW, "targets": {"colour": "red"}},
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "rules_invalid"
    assert "colour" in bad.json()["detail"]


def test_a_map_row_is_deleted_and_deleting_it_again_says_it_is_not_mapped(finance):
    url = f"{RULES}/draft/maps/SERVICE_LINE/rows/delete/"
    removed = send(finance, "post", url, {"source": "hvac"})
    assert removed.status_code == 200
    assert "HVAC" not in removed.json()["content"]["maps"]["SERVICE_LINE"]
    again = send(finance, "post", url, {"source": "HVAC"})
    assert again.status_code == 400
    assert "is not in the SERVICE_LINE map" in again.json()["detail"]


def test_routing_rules_are_added_replaced_and_deleted(finance):
    added = send(
        finance,
        "post",
        f"{RULES}/draft/routing/",
        {"conditions": {"office": "Raleigh"}, "account": "4011", "priority": 5},
    )
    assert added.status_code == 201
    new = max(added.json()["content"]["routing"], key=lambda rule: rule["id"])
    assert (new["conditions"], new["account"], new["priority"]) == (
        {"office": "Raleigh"},
        "4011",
        5,
    )
    replaced = send(
        finance,
        "put",
        f"{RULES}/draft/routing/{new['id']}/",
        {"conditions": {"office": "Raleigh"}, "account": "4010"},
    )
    accounts = {rule["id"]: rule["account"] for rule in replaced.json()["content"]["routing"]}
    assert accounts[new["id"]] == "4010"
    deleted = send(finance, "post", f"{RULES}/draft/routing/{new['id']}/delete/", {})
    assert new["id"] not in [rule["id"] for rule in deleted.json()["content"]["routing"]]
    missing = send(finance, "put", f"{RULES}/draft/routing/9999/", {"account": "4010"})
    assert missing.status_code == 400
    assert missing.json()["detail"] == "There is no routing rule 9999."


def test_defaults_change_only_the_fields_sent(finance):
    before = RuleVersion.objects.get(number=1).content["defaults"]
    response = send(finance, "patch", f"{RULES}/draft/defaults/", {"revenue_account": "4011"})
    assert response.status_code == 200
    assert response.json()["content"]["defaults"] == {**before, "revenue_account": "4011"}


def test_the_whole_rule_set_is_replaced_and_a_bad_shape_changes_nothing(finance):
    content = RuleVersion.objects.get(number=1).content
    content["maps"]["SERVICE_LINE"]["Backflow Testing"] = BACKFLOW["targets"]
    assert send(finance, "put", f"{RULES}/draft/", {"content": content}).status_code == 200
    bad = send(finance, "put", f"{RULES}/draft/", {"content": {"maps": {"NOPE": {}}}})
    assert bad.status_code == 400
    assert "NOPE" in bad.json()["detail"]
    assert "Backflow Testing" in RuleDraft.objects.get().content["maps"]["SERVICE_LINE"]


def test_validate_names_the_subject_of_each_issue(finance):
    send(
        finance,
        "put",
        f"{RULES}/draft/maps/SERVICE_LINE/rows/",
        {**BACKFLOW, "targets": {"revenue_account": "9999"}},
    )
    issues = finance.get(f"{RULES}/draft/validate/").json()
    unknown = [issue for issue in issues if issue["code"] == "UNKNOWN_TARGET"]
    assert unknown[0]["subject"] == "maps.SERVICE_LINE.Backflow Testing.revenue_account"
    assert unknown[0]["severity"] == "ERROR"


def test_preview_and_impact_show_the_blocked_invoice_the_draft_fixes(finance, blocked):
    send(finance, "put", f"{RULES}/draft/maps/SERVICE_LINE/rows/", BACKFLOW)
    one = finance.get(f"{RULES}/draft/preview/?document={blocked.document_id}").json()
    assert [d["outcome"] for d in one["documents"]] == ["newly_fixed"]
    assert one["summary"]["newly_fixed"] == 1
    recent = finance.get(f"{RULES}/draft/preview/?last=5").json()
    assert blocked.document_id in [d["document_id"] for d in recent["documents"]]
    impact = finance.get(f"{RULES}/draft/impact/").json()
    assert [record["record_id"] for record in impact["fixed"]] == [blocked.pk]
    assert impact["counts"]["fixed"] == 1


def test_previewing_another_connections_document_is_not_found(finance, other_connection):
    from tests.conftest import envelope, ingest

    ingest(other_connection, envelope(id=31337, invoiceNumber="ELSEWHERE"))
    send(finance, "post", f"{RULES}/draft/")
    foreign = SourceDocument.objects.get(connection=other_connection).pk
    assert finance.get(f"{RULES}/draft/preview/?document={foreign}").status_code == 404


def test_publishing_needs_a_reason_and_an_effective_date(finance):
    send(finance, "post", f"{RULES}/draft/")
    response = send(finance, "post", f"{RULES}/draft/publish/", {})
    assert response.status_code == 400
    assert {error["field"] for error in response.json()["errors"]} == {"reason", "effective_from"}
    assert RuleVersion.objects.count() == 1


def test_publishing_a_draft_with_errors_is_refused_with_each_error_by_subject(finance):
    send(
        finance,
        "put",
        f"{RULES}/draft/maps/SERVICE_LINE/rows/",
        {**BACKFLOW, "targets": {"revenue_account": "9999"}},
    )
    response = send(
        finance, "post", f"{RULES}/draft/publish/", {"reason": "Go", "effective_from": "2025-12-01"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "publish_refused"
    assert {
        "field": "maps.SERVICE_LINE.Backflow Testing.revenue_account",
        "message": "Account 9999 does not exist in the ERP.",
        "code": "UNKNOWN_TARGET",
    } in response.json()["errors"]
    assert RuleDraft.objects.exists()


def test_publishing_makes_version_2_and_its_fixed_records_can_be_retried(finance, blocked):
    send(finance, "put", f"{RULES}/draft/maps/SERVICE_LINE/rows/", BACKFLOW)
    response = send(
        finance,
        "post",
        f"{RULES}/draft/publish/",
        {"reason": "Backflow mapped", "effective_from": "2025-01-01"},
    )
    assert response.status_code == 201
    assert (response.json()["number"], response.json()["effective_from"]) == (2, "2025-01-01")
    assert not RuleDraft.objects.exists()
    assert finance.get(f"{RULES}/versions/2/fixed/").json() == {
        "version": 2,
        "records": [blocked.pk],
    }
    assert send(finance, "post", f"{RULES}/versions/2/retry-fixed/").json() == {"queued": 1}
    blocked.refresh_from_db()
    assert blocked.state == SyncState.READY


def test_rollback_publishes_an_earlier_versions_rules_as_a_new_version(finance):
    send(finance, "patch", f"{RULES}/draft/defaults/", {"revenue_account": "4011"})
    send(
        finance,
        "post",
        f"{RULES}/draft/publish/",
        {"reason": "Try 4011", "effective_from": "2025-06-01"},
    )
    response = send(
        finance,
        "post",
        f"{RULES}/versions/1/rollback/",
        {"reason": "Back to 1", "effective_from": "2025-07-01"},
    )
    assert response.status_code == 201
    assert (response.json()["number"], response.json()["rolled_back_from"]) == (3, 1)
    diff = finance.get(f"{RULES}/diff/?a=1&b=3").json()
    assert diff["changes"] == []
    missing = send(
        finance,
        "post",
        f"{RULES}/versions/99/rollback/",
        {"reason": "x", "effective_from": "2025-07-01"},
    )
    assert missing.status_code == 404


def test_export_then_import_gives_the_same_rules_file(finance):
    exported = finance.get(f"{RULES}/export/?version=1")
    assert exported["Content-Type"] == "application/json"
    assert json.loads(exported.content)["version"] == 1
    imported = finance.post(
        f"{RULES}/draft/import/?reason=Restore", exported.content, content_type="application/json"
    )
    assert imported.status_code == 200
    again = finance.get(f"{RULES}/export/")
    assert json.loads(again.content)["rules"] == json.loads(exported.content)["rules"]
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.DRAFT_REPLACED, reason="Restore")
    assert audit.exists()


def test_an_import_names_the_line_and_column_or_the_path_of_every_problem(finance):
    broken = b'{\n  "format": "crosswalk-rules",\n  "format_version": 1,\n  "rules": {,}\n}'
    response = finance.post(f"{RULES}/draft/import/", broken, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "import_invalid"
    assert response.json()["errors"][0]["field"] == "line 4, column 13"
    wrong = {
        "format": "crosswalk-rules",
        "format_version": 1,
        "rules": {"maps": {"SERVICE_LINE": {"HVAC": {"revenue_account": ["4010"]}}}},
    }
    response = finance.post(
        f"{RULES}/draft/import/", json.dumps(wrong), content_type="application/json"
    )
    assert response.json()["errors"] == [
        {
            "field": "rules.maps.SERVICE_LINE.HVAC.revenue_account",
            "message": "expected text",
            "code": "invalid",
        }
    ]
    assert not RuleDraft.objects.exists()


def test_a_map_exports_as_csv(finance):
    response = finance.get(f"{RULES}/export/?version=1&map=SERVICE_LINE")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert lines[0] == "source_value,revenue_account,cost_code,cost_center"
    assert "HVAC,4010,100," in lines


def test_ar_reads_the_rules_but_cannot_change_them(client, make_user, connection):
    client.force_login(make_user(Role.AR, connection))
    assert send(client, "post", f"{RULES}/draft/").status_code == 403
    edit = send(client, "put", f"{RULES}/draft/maps/SERVICE_LINE/rows/", BACKFLOW)
    assert edit.status_code == 403
    assert not RuleDraft.objects.exists()
    assert client.get(f"{RULES}/export/?version=1").status_code == 200


def test_a_repeated_publish_with_the_same_key_publishes_once(finance):
    send(finance, "post", f"{RULES}/draft/")
    body = json.dumps({"reason": "Once", "effective_from": "2025-12-01"})
    headers = {"Idempotency-Key": "publish-1"}
    first = finance.post(
        f"{RULES}/draft/publish/", body, content_type="application/json", headers=headers
    )
    second = finance.post(
        f"{RULES}/draft/publish/", body, content_type="application/json", headers=headers
    )
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert RuleVersion.objects.count() == 2


def test_a_nul_character_anywhere_in_a_replaced_rule_set_is_a_validation_problem(finance):
    content = {"maps": {"SERVICE_LINE": {"Fire\x00": {"revenue_account": "4020"}}}}
    response = send(finance, "put", f"{RULES}/draft/", {"content": content})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "content"
    assert "NUL" in response.json()["errors"][0]["message"]
    assert not RuleDraft.objects.exists()
