"""Posting rules through the API, beyond single rows: CSV imports of a map or the routing rules
(the same `draft_import` as `manage.py rules import`), the routing export, the draft against the
rules in force, a rule's history, and per-item edits of dimensions, numbering and field owners."""

from __future__ import annotations

import json
from typing import Any

import pytest

from console.access import Role
from mappings import services
from mappings.models import RuleAudit, RuleDraft, RuleVersion
from tests.api.conftest import auth, token_for
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

RULES = "/api/v1/connections/demo/rules"
LINES_CSV = (
    "source_value,revenue_account,cost_code,cost_center\nFire Alarm,4030,300,\nHVAC,4011,100,\n"
)


@pytest.fixture
def finance(client, make_user, connection):
    client.force_login(make_user(Role.FINANCE, connection, name="fran"))
    return client


def send(client, method: str, url: str, body: Any = None):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method)(url, data, content_type="application/json")


def csv_post(client, url: str, text: str | bytes, **headers: str):
    return client.post(url, text, content_type="text/csv", headers=headers)


def draft_content(connection) -> dict[str, Any] | None:
    draft = RuleDraft.objects.filter(connection=connection).first()
    return draft.content if draft else None


def audits(connection) -> int:
    return RuleAudit.objects.filter(connection=connection).count()


# --- CSV imports and the routing export ---------------------------------------------------------


def test_a_map_imported_as_csv_replaces_that_map_and_keeps_the_rest_of_the_draft(
    finance, connection
):
    version = RuleVersion.objects.get(connection=connection, number=1).content
    response = csv_post(
        finance, f"{RULES}/draft/maps/SERVICE_LINE/import/?reason=New%20lines", LINES_CSV
    )
    assert response.status_code == 200, response.content
    content = response.json()["content"]
    assert content["maps"]["SERVICE_LINE"] == {
        "Fire Alarm": {"revenue_account": "4030", "cost_code": "300"},
        "HVAC": {"revenue_account": "4011", "cost_code": "100"},
    }
    assert {**content, "maps": None} == {**version, "maps": None}
    assert content["maps"]["TAX_RATE"] == version["maps"]["TAX_RATE"]
    audit = RuleAudit.objects.filter(connection=connection).latest("id")
    assert (audit.action, audit.subject, audit.actor, audit.reason) == (
        RuleAudit.Action.DRAFT_REPLACED, "maps.SERVICE_LINE", "user:fran", "New lines",
    )  # fmt: skip
    assert audit.before == version["maps"]["SERVICE_LINE"]
    assert audit.after == content["maps"]["SERVICE_LINE"]


def test_an_import_without_a_reason_says_it_came_through_the_api(finance, connection):
    csv_post(finance, f"{RULES}/draft/maps/TAX_RATE/import/", "source_value,tax_code\n7.25,X\n")
    audit = RuleAudit.objects.filter(connection=connection).latest("id")
    assert audit.reason == "Imported through the API"


def test_a_bad_map_file_names_each_row_and_column_and_imports_nothing(finance, connection):
    services.draft_map_row_set(connection=connection, map_kind="OFFICE", source_value="Macon",
                               targets={"department": "MAC"}, actor="test", now=NOW)  # fmt: skip
    before, count = draft_content(connection), audits(connection)
    bad = "source_value,revenue_account,colour\nHVAC,4010,red\n,4020,\nhvac ,4030,\n"
    response = csv_post(finance, f"{RULES}/draft/maps/SERVICE_LINE/import/", bad)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "import_invalid"
    fields = [error["field"] for error in problem["errors"]]
    assert fields == ["row 1, column colour", "row 3, column source_value",
                      "row 4, column source_value"]  # fmt: skip
    assert draft_content(connection) == before
    assert audits(connection) == count


def test_an_unknown_map_is_not_found_and_a_json_body_is_an_unsupported_media_type(finance):
    unknown = csv_post(finance, f"{RULES}/draft/maps/PLANETS/import/", LINES_CSV)
    assert unknown.status_code == 404
    as_json = send(finance, "post", f"{RULES}/draft/maps/SERVICE_LINE/import/", {"a": 1})
    assert as_json.status_code == 415
    assert as_json.json()["code"] == "unsupported_media_type"


def test_routing_exported_as_csv_imports_and_exports_again_byte_for_byte(finance, connection):
    services.draft_routing_rule_set(connection=connection, conditions={"office": "Raleigh, NC"},
                                    account="4011", note='The "north" office', actor="test",
                                    now=NOW)  # fmt: skip
    exported = finance.get(f"{RULES}/export/?routing=true")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    text = exported.content.decode()
    assert text.startswith("id,priority,account,note,document_kind,")
    assert '"Raleigh, NC"' in text and '"The ""north"" office"' in text
    services.draft_discard(connection=connection, actor="test", now=NOW)

    imported = csv_post(finance, f"{RULES}/draft/routing/import/", exported.content)
    assert imported.status_code == 200, imported.content
    assert finance.get(f"{RULES}/export/?routing=true").content == exported.content
    audit = RuleAudit.objects.filter(connection=connection).latest("id")
    assert (audit.action, audit.subject) == (RuleAudit.Action.DRAFT_REPLACED, "routing")


def test_a_routing_file_with_a_repeated_id_is_refused_by_row_and_column(finance, connection):
    text = "id,account,office\n1,4010,Raleigh\n1,4020,Atlanta\nx,4030,\n"
    response = csv_post(finance, f"{RULES}/draft/routing/import/", text)
    assert response.status_code == 400
    fields = [error["field"] for error in response.json()["errors"]]
    assert fields == ["row 3, column id", "row 4, column id"]
    assert draft_content(connection) is None


def test_exporting_a_map_and_the_routing_at_once_is_a_validation_problem(finance):
    response = finance.get(f"{RULES}/export/?version=1&map=OFFICE&routing=true")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "routing"


def test_a_repeated_import_with_the_same_idempotency_key_is_replayed_not_imported_twice(
    client, make_user, connection
):
    headers = {**auth(token_for(make_user(Role.ADMIN, connection))), "Idempotency-Key": "imp-1"}
    url = f"{RULES}/draft/maps/SERVICE_LINE/import/"
    first = csv_post(client, url, LINES_CSV, **headers)
    count = audits(connection)
    second = csv_post(client, url, LINES_CSV, **headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert audits(connection) == count
    other = csv_post(client, url, LINES_CSV.replace("4011", "4012"), **headers)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"


# --- the draft against the rules in force, and history ------------------------------------------


def test_the_draft_diff_shows_what_publishing_would_change_against_the_version_in_force(
    finance, connection
):
    assert finance.get(f"{RULES}/draft/diff/").status_code == 404
    row = {"source": "HVAC", "targets": {"revenue_account": "4011", "cost_code": "100"}}
    send(finance, "put", f"{RULES}/draft/maps/SERVICE_LINE/rows/", row)
    response = finance.get(f"{RULES}/draft/diff/")
    assert response.status_code == 200
    body = response.json()
    old = RuleVersion.objects.get(connection=connection, number=1).content
    assert (body["in_force"], body["base_version"]) == (1, 1)
    assert body["changes"] == [{
        "path": "maps.SERVICE_LINE.HVAC.revenue_account", "change": "changed",
        "before": old["maps"]["SERVICE_LINE"]["HVAC"]["revenue_account"], "after": "4011",
    }]  # fmt: skip


def test_a_rules_history_lists_its_changes_newest_first_whatever_the_case_asked(
    finance, connection
):
    url = f"{RULES}/draft/maps/SERVICE_LINE/rows/"
    for account, why in (("4060", "New line"), ("4061", "Moved")):
        send(finance, "put", url, {"source": "Backflow Testing", "reason": why,
                                   "targets": {"revenue_account": account}})  # fmt: skip
    send(finance, "put", url, {"source": "Other", "targets": {"revenue_account": "4010"}})
    response = finance.get(f"{RULES}/history/?subject=maps.service_line.backflow%20testing")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(row["reason"], row["before"], row["after"], row["actor"]) for row in rows] == [
        ("Moved", {"revenue_account": "4060"}, {"revenue_account": "4061"}, "user:fran"),
        ("New line", None, {"revenue_account": "4060"}, "user:fran"),
    ]
    assert {row["action"] for row in rows} == {RuleAudit.Action.MAP_ROW_SET}
    assert response.json()["next"] is None


def test_the_whole_history_pages_by_id_until_every_change_was_listed(finance, connection):
    from console.api import rules_views

    for number in range(5):
        services.draft_defaults_set(connection=connection, defaults={"tax_account": str(number)},
                                    actor="test", now=NOW)  # fmt: skip
    rules_views.HISTORY_PAGE_SIZE, size = 2, rules_views.HISTORY_PAGE_SIZE
    try:
        seen: list[int] = []
        url: str | None = f"{RULES}/history/"
        while url:
            page = finance.get(url).json()
            assert len(page["results"]) <= 2
            seen += [row["id"] for row in page["results"]]
            url = page["next"]
    finally:
        rules_views.HISTORY_PAGE_SIZE = size
    expected = RuleAudit.objects.filter(connection=connection).order_by("-id")
    assert seen == list(expected.values_list("id", flat=True))


# --- dimensions, numbering, field owners --------------------------------------------------------


def test_a_dimension_setting_is_added_replaced_and_removed_each_with_its_audit_row(
    finance, connection
):
    url = f"{RULES}/draft/dimensions/"
    body = {
        "dimension": "AREA",
        "source": "office",
        "values": {"Raleigh": "EAST"},
        "reason": "Areas",
    }
    added = send(finance, "put", url, body)
    assert added.status_code == 200
    area = {"dimension": "AREA", "source": "office", "values": {"Raleigh": "EAST"},
            "default": "", "pass_through": False, "required": False}  # fmt: skip
    assert area in added.json()["content"]["dimensions"]
    replaced = send(finance, "put", url, {**area, "default": "WEST", "required": True})
    settings = [d for d in replaced.json()["content"]["dimensions"] if d["dimension"] == "AREA"]
    assert settings == [{**area, "default": "WEST", "required": True}]
    removed = send(finance, "post", f"{url}delete/", {"dimension": "AREA", "reason": "Not used"})
    assert "AREA" not in [d["dimension"] for d in removed.json()["content"]["dimensions"]]
    history = RuleAudit.objects.filter(connection=connection, subject="dimensions.AREA")
    assert list(history.order_by("id").values_list("action", "reason")) == [
        (RuleAudit.Action.DIMENSION_SET, "Areas"),
        (RuleAudit.Action.DIMENSION_SET, ""),
        (RuleAudit.Action.DIMENSION_DELETED, "Not used"),
    ]
    assert history.order_by("id").last().before == {**area, "default": "WEST", "required": True}


def test_a_dimension_fed_from_an_unknown_source_names_the_field_and_changes_nothing(
    finance, connection
):
    response = send(finance, "put", f"{RULES}/draft/dimensions/",
                    {"dimension": "AREA", "source": "weather"})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "source"
    missing = send(finance, "post", f"{RULES}/draft/dimensions/delete/", {"dimension": "NOPE"})
    assert missing.status_code == 400
    assert missing.json()["code"] == "rules_invalid"
    assert missing.json()["detail"] == "The draft has no dimension 'NOPE'."
    assert not RuleAudit.objects.filter(connection=connection, subject__startswith="dimensions")


def test_a_numbering_rule_is_set_refused_when_its_range_is_empty_and_removed(finance, connection):
    url = f"{RULES}/draft/numbering/"
    rule = {"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 9999, "width": 5}
    added = send(finance, "put", url, rule)
    assert added.status_code == 200
    assert added.json()["content"]["numbering"] == [rule]
    empty = send(finance, "put", url, {**rule, "start": 50, "end": 10})
    assert empty.status_code == 400
    assert empty.json()["code"] == "rules_invalid"
    assert "empty or negative" in empty.json()["detail"]
    assert draft_content(connection)["numbering"] == [rule]
    removed = send(finance, "post", f"{url}delete/", {"entity": "CUSTOMER"})
    assert removed.json()["content"]["numbering"] == []
    audit = RuleAudit.objects.filter(connection=connection).latest("id")
    assert (audit.action, audit.subject, audit.before, audit.after) == (
        RuleAudit.Action.NUMBERING_SET, "numbering.CUSTOMER", rule, None,
    )  # fmt: skip


def test_a_field_owner_is_set_changed_and_forgotten(finance, connection):
    url = f"{RULES}/draft/ownership/"
    send(finance, "put", url, {"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"})
    send(finance, "put", url, {"entity": "CUSTOMER", "field": "email", "owner": "SOURCE"})
    changed = send(finance, "put", url, {"entity": "CUSTOMER", "field": "tax_code",
                                         "owner": "LATEST"})  # fmt: skip
    assert changed.json()["content"]["ownership"] == [
        {"entity": "CUSTOMER", "field": "email", "owner": "SOURCE"},
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "LATEST"},
    ]
    forgotten = send(finance, "post", f"{url}delete/", {"entity": "CUSTOMER", "field": "email"})
    assert forgotten.json()["content"]["ownership"] == [
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "LATEST"}
    ]
    subjects = RuleAudit.objects.filter(connection=connection, subject__startswith="ownership")
    assert list(subjects.order_by("id").values_list("subject", flat=True)) == [
        "ownership.CUSTOMER.tax_code", "ownership.CUSTOMER.email",
        "ownership.CUSTOMER.tax_code", "ownership.CUSTOMER.email",
    ]  # fmt: skip


def test_an_ar_user_edits_none_of_these_and_nothing_changes(client, make_user, connection):
    client.force_login(make_user(Role.AR, connection))
    for method, path, body in (
        ("put", "draft/numbering/", {"entity": "JOB", "start": 1, "end": 9}),
        ("put", "draft/ownership/", {"entity": "CONTACT", "field": "email", "owner": "ERP"}),
        ("put", "draft/dimensions/", {"dimension": "AREA", "source": "office"}),
    ):
        assert send(client, method, f"{RULES}/{path}", body).status_code == 403
    assert (
        csv_post(client, f"{RULES}/draft/routing/import/", "id,account\n1,4010\n").status_code
        == 403
    )
    assert draft_content(connection) is None
