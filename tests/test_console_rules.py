"""The posting-rules pages: who may read and change them, inline map and routing edits with htmx,
review and publish with the records a draft fixes, versions, rollback and history."""

from __future__ import annotations

import json
from datetime import date

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from console.access import Role
from mappings import services as rules
from mappings.models import CatalogEntry, RuleAudit, RuleDraft, RuleVersion
from syncengine import services
from syncengine.models import Connection, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rules_urls(settings):
    # console.urls mounts console.rules_urls at the same place; until then this urlconf does.
    settings.ROOT_URLCONF = "tests.rules_urlconf"


def user_with(role: str | None, *connections: Connection, name: str = "user") -> User:
    user = User.objects.create_user(username=name, password="pw")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    for connection in connections:
        connection.members.add(user)
    return user


@pytest.fixture
def finance(client, connection):
    client.force_login(user_with(Role.FINANCE, connection, name="fin"))
    return client


@pytest.fixture
def ar(client, connection):
    client.force_login(user_with(Role.AR, connection, name="arclerk"))
    return client


def url(name: str, **kwargs) -> str:
    return reverse(f"rules:{name}", kwargs={"slug": "demo", **kwargs})


HTMX = {"HX-Request": "true"}


def draft_rows(connection, kind="SERVICE_LINE"):
    return RuleDraft.objects.get(connection=connection).content["maps"].get(kind, {})


def blocked_invoice(connection, *, number: str, source_id: int, service_line: str) -> SyncRecord:
    items = [
        {
            "id": 1,
            "itemType": "labor",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": service_line},
        }
    ]
    ingest(connection, envelope(id=source_id, invoiceNumber=number, items=items))
    services.sync_run_until_idle(now=lambda: NOW)
    record = SyncRecord.objects.get(document__number=number)
    assert record.state == SyncState.BLOCKED
    return record


def publish_draft(connection, *, reason="test", effective_from=date(2025, 1, 1)) -> RuleVersion:
    return rules.draft_publish(
        connection=connection,
        effective_from=effective_from,
        reason=reason,
        actor="user:fin",
        now=NOW,
    )


def read_pages() -> list[str]:
    return [
        url("overview"),
        url("status"),
        url("map", kind="SERVICE_LINE"),
        url("map", kind="TAX_RATE"),
        url("map", kind="OFFICE"),
        url("routing"),
        url("defaults"),
        url("review"),
        url("versions"),
        url("versions") + "?a=1&b=1",
        url("published", number=1),
        url("history"),
        url("history") + "?subject=maps.SERVICE_LINE.HVAC",
    ]


def write_requests() -> list[tuple[str, dict[str, str]]]:
    return [
        (url("map-row-add", kind="SERVICE_LINE"), {"source": "X", "revenue_account": "4010"}),
        (url("map-row-save", kind="SERVICE_LINE"), {"source": "HVAC", "revenue_account": "4020"}),
        (url("map-row-delete", kind="SERVICE_LINE"), {"source": "HVAC"}),
        (url("routing-add"), {"account": "4010", "cond_office": "Raleigh"}),
        (url("routing-save", rule_id=1), {"account": "4010"}),
        (url("routing-delete", rule_id=1), {}),
        (url("defaults-save"), {"receivable_account": "1200", "tax_code_source": "RATE"}),
        (url("publish"), {"effective_from": "2025-01-01", "reason": "r"}),
        (url("discard"), {"reason": "r"}),
        (url("retry-fixed", number=1), {}),
        (url("rollback", number=1), {"effective_from": "2025-01-01", "reason": "r"}),
    ]


# --- access ---------------------------------------------------------------------------------------


def test_every_rules_page_answers_finance(finance, connection):
    for page in read_pages():
        assert finance.get(page).status_code == 200, page
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="HVAC",
        targets={"revenue_account": "4020"},
        actor="user:fin",
        now=NOW,
    )
    for page in read_pages():
        assert finance.get(page).status_code == 200, page


def test_ar_reads_every_rules_page_without_edit_controls(ar, connection):
    for page in read_pages():
        assert ar.get(page).status_code == 200, page
    page = ar.get(url("map", kind="SERVICE_LINE")).content.decode()
    assert "HVAC" in page and "Finance and Admin change them" in page
    assert "Add a row" not in page and "map-row-edit" not in page


def test_ar_may_not_change_anything(ar, connection):
    for target, data in write_requests():
        assert ar.post(target, data).status_code == 403, target
    assert ar.get(url("map-row-edit", kind="SERVICE_LINE") + "?source=HVAC").status_code == 403
    assert not RuleDraft.objects.exists()
    assert RuleVersion.objects.count() == 1


def test_another_connections_rules_are_not_found(client, connection):
    other = Connection.objects.create(name="Other company", slug="other")
    client.force_login(user_with(Role.FINANCE, other, name="elsewhere"))
    for page in read_pages():
        assert client.get(page).status_code == 404, page
    for target, data in write_requests():
        assert client.post(target, data).status_code == 404, target


def test_anonymous_visitors_are_sent_to_the_login_page(client, connection):
    for page in [*read_pages(), *(target for target, _ in write_requests())]:
        method = client.get if page in read_pages() else client.post
        response = method(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/login/")


def test_an_unknown_map_is_not_found(finance):
    assert finance.get(url("map", kind="NOPE")).status_code == 404


# --- overview ---------------------------------------------------------------------------------


def test_the_overview_shows_the_version_in_force_and_the_draft_with_its_change_count(
    finance, connection
):
    page = finance.get(url("overview")).content.decode()
    assert "Demo rules as set up at implementation" in page and "No draft is open" in page
    for source in ("Backflow Testing", "Kitchen Exhaust"):
        rules.draft_map_row_set(
            connection=connection,
            map_kind="SERVICE_LINE",
            source_value=source,
            targets={"revenue_account": "4060"},
            actor="user:fin",
            now=NOW,
        )
    response = finance.get(url("overview"))
    assert response.context["page"].change_count == 2
    page = response.content.decode()
    assert "2 changes" in page and "started from version 1" in page and "user:fin" in page


# --- the map editor ---------------------------------------------------------------------------


def test_the_map_shows_the_version_in_force_read_only_until_the_first_edit(finance, connection):
    response = finance.get(url("map", kind="SERVICE_LINE"))
    page = response.content.decode()
    assert "No draft." in page and "HVAC Service Revenue" in page
    assert [row.source for row in response.context["page"].rows][:2] == [
        "Fire Alarm",
        "Fire Sprinkler",
    ]
    assert not RuleDraft.objects.exists()


def test_the_map_offers_catalog_values_and_recent_source_values_as_pickers(finance, connection):
    blocked_invoice(connection, number="B-1", source_id=1, service_line="Backflow Testing")
    page = finance.get(url("map", kind="SERVICE_LINE")).content.decode()
    assert '<datalist id="catalog-ACCOUNT">' in page
    assert '<option value="4060">4060 · Backflow Testing Revenue</option>' in page
    assert '<datalist id="catalog-COST_CODE">' in page
    assert '<option value="Backflow Testing">' in page
    assert "Service line &#x27;Backflow Testing&#x27; has no mapping" in page


def test_the_edit_link_answers_htmx_with_only_the_row_as_a_form(finance, connection):
    response = finance.get(url("map-row-edit", kind="SERVICE_LINE") + "?source=HVAC", headers=HTMX)
    page = response.content.decode()
    assert response.status_code == 200
    assert page.strip().startswith("<tr") and "<html" not in page
    assert 'name="revenue_account" value="4010"' in page and 'list="catalog-ACCOUNT"' in page
    assert response["Vary"] == "HX-Request" or "HX-Request" in response["Vary"]


def test_the_edit_link_without_htmx_opens_the_form_in_the_page(finance, connection):
    response = finance.get(url("map-row-edit", kind="SERVICE_LINE") + "?source=HVAC")
    assert response.status_code == 302
    page = finance.get(response["Location"]).content.decode()
    assert "<html" in page and 'class="row-editing"' in page


def test_saving_a_row_answers_htmx_with_the_row_and_starts_a_draft(finance, connection):
    response = finance.post(
        url("map-row-save", kind="SERVICE_LINE"),
        {"source": "HVAC", "revenue_account": "4011", "cost_code": "100", "reason": "Parts"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith("<tr") and "<html" not in page
    assert "<code>4011</code>" in page and "HVAC Parts Revenue" in page and "OK" in page
    assert draft_rows(connection)["HVAC"] == {"revenue_account": "4011", "cost_code": "100"}
    assert json.loads(response["HX-Trigger"]) == {"rules-changed": {}}  # the banner reloads
    audit = RuleAudit.objects.filter(subject="maps.SERVICE_LINE.HVAC").get()
    assert (audit.actor, audit.reason) == ("user:fin", "Parts")


def test_saving_an_unknown_target_account_shows_the_validation_message_next_to_the_row(
    finance, connection
):
    response = finance.post(
        url("map-row-save", kind="SERVICE_LINE"),
        {"source": "HVAC", "revenue_account": "9999"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith("<tr") and "row-has-errors" in page
    assert "Account 9999 does not exist in the ERP." in page
    assert draft_rows(connection)["HVAC"] == {"revenue_account": "9999"}


def test_saving_a_row_that_maps_to_nothing_shows_the_form_again_with_the_error(finance, connection):
    response = finance.post(
        url("map-row-save", kind="SERVICE_LINE"), {"source": "HVAC"}, headers=HTMX
    )
    page = response.content.decode()
    assert 'class="row-editing"' in page and 'role="alert"' in page
    assert "maps to nothing" in page
    assert not RuleDraft.objects.exists()


def test_without_htmx_a_failed_save_comes_back_to_the_form_with_the_message(finance, connection):
    response = finance.post(url("map-row-save", kind="SERVICE_LINE"), {"source": "HVAC"})
    assert response.status_code == 302
    page = finance.get(response["Location"]).content.decode()
    assert 'class="row-editing"' in page and "maps to nothing" in page


def test_adding_a_row_answers_htmx_with_the_table_and_an_empty_form(finance, connection):
    response = finance.post(
        url("map-row-add", kind="SERVICE_LINE"),
        {"source": "Backflow Testing", "revenue_account": "4060", "cost_code": "600"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith('<div id="map-body">') and "<html" not in page
    assert "Backflow Testing Revenue" in page and "row-saved" in page
    assert 'id="add-source" name="source" value=""' in page
    assert draft_rows(connection)["Backflow Testing"] == {
        "cost_code": "600",
        "revenue_account": "4060",
    }


def test_adding_a_row_without_a_target_keeps_what_was_typed_and_says_why(finance, connection):
    response = finance.post(
        url("map-row-add", kind="SERVICE_LINE"), {"source": "Elevators"}, headers=HTMX
    )
    page = response.content.decode()
    assert 'id="add-source" name="source" value="Elevators"' in page
    assert "maps to nothing" in page


def test_adding_a_row_without_htmx_redirects_back_to_the_map(finance, connection):
    response = finance.post(
        url("map-row-add", kind="SERVICE_LINE"),
        {"source": "Elevators", "revenue_account": "4060"},
    )
    assert response.status_code == 302
    assert response["Location"] == url("map", kind="SERVICE_LINE")
    assert "Elevators" in draft_rows(connection)


def test_deleting_a_row_removes_it_from_the_draft(finance, connection):
    response = finance.post(
        url("map-row-delete", kind="SERVICE_LINE"), {"source": "hvac"}, headers=HTMX
    )
    assert response.status_code == 200 and response.content == b""
    assert "HVAC" not in draft_rows(connection)
    response = finance.post(url("map-row-delete", kind="SERVICE_LINE"), {"source": "Plumbing"})
    assert response.status_code == 302
    assert "Plumbing" not in draft_rows(connection)


def test_the_draft_banner_reloads_alone_and_says_who_opened_the_draft(finance, connection):
    page = finance.get(url("status"), headers=HTMX).content.decode()
    assert page.strip().startswith('<p class="draft-status"') and "No draft." in page
    finance.post(url("map-row-delete", kind="SERVICE_LINE"), {"source": "HVAC"}, headers=HTMX)
    page = finance.get(url("status"), headers=HTMX).content.decode()
    assert "<html" not in page and "Draft open." in page and "user:fin" in page


def test_cancelling_an_edit_answers_with_the_row_as_shown(finance, connection):
    response = finance.get(url("map-row", kind="SERVICE_LINE") + "?source=HVAC", headers=HTMX)
    page = response.content.decode()
    assert page.strip().startswith("<tr") and "row-editing" not in page and "4010" in page


# --- routing and defaults ---------------------------------------------------------------------


def test_routing_rules_can_be_added_edited_and_deleted(finance, connection):
    page = finance.get(url("routing")).content.decode()
    assert "HVAC parts sales" in page
    response = finance.post(
        url("routing-add"),
        {"cond_office": "Raleigh", "cond_line_kind": "labor", "account": "4010", "priority": "5"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith('<div id="routing-body">') and 'id="rule-2"' in page
    routing = RuleDraft.objects.get().content["routing"]
    assert routing[1] == {
        "id": 2,
        "conditions": {"line_kind": "labor", "office": "Raleigh"},
        "account": "4010",
        "priority": 5,
        "note": "",
    }
    edit = finance.get(url("routing-edit", rule_id=2), headers=HTMX).content.decode()
    assert edit.strip().startswith("<tr") and 'value="Raleigh"' in edit
    saved = finance.post(
        url("routing-save", rule_id=2),
        {"cond_office": "Charlotte", "account": "4040", "note": "CLT labor"},
        headers=HTMX,
    ).content.decode()
    assert saved.strip().startswith("<tr") and "Charlotte" in saved and "Plumbing Revenue" in saved
    finance.post(url("routing-delete", rule_id=1), headers=HTMX)
    assert [rule["id"] for rule in RuleDraft.objects.get().content["routing"]] == [2]


def test_a_routing_rule_with_a_bad_priority_shows_the_form_again(finance, connection):
    response = finance.post(
        url("routing-save", rule_id=1), {"account": "4011", "priority": "high"}, headers=HTMX
    )
    page = response.content.decode()
    assert "row-editing" in page and "The priority is a whole number" in page


def test_the_defaults_form_saves_into_the_draft_and_shows_their_checks(finance, connection):
    response = finance.post(
        url("defaults-save"),
        {
            "receivable_account": "1200",
            "revenue_account": "9999",
            "tax_account": "2300",
            "tax_code_source": "RATE",
            "reason": "Catch-all revenue",
        },
    )
    assert response.status_code == 302
    assert RuleDraft.objects.get().content["defaults"]["revenue_account"] == "9999"
    page = finance.get(url("defaults")).content.decode()
    assert "Account 9999 does not exist in the ERP." in page


def test_a_bad_tax_code_source_is_refused_with_the_reason(finance, connection):
    response = finance.post(
        url("defaults-save"), {"receivable_account": "1200", "tax_code_source": "GUESS"}
    )
    assert response.status_code == 200
    assert "is not one of RATE, STATE" in response.content.decode()
    assert not RuleDraft.objects.exists()


# --- review and publish -----------------------------------------------------------------------


def test_the_review_page_without_a_draft_says_there_is_nothing_to_publish(finance):
    page = finance.get(url("review")).content.decode()
    assert "There is no draft to review." in page


def test_the_review_page_shows_the_changes_the_checks_and_the_records_it_would_fix(
    finance, connection
):
    record = blocked_invoice(connection, number="B-1", source_id=1, service_line="Backflow Testing")
    blocked_invoice(connection, number="E-1", source_id=2, service_line="Elevators")
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Backflow Testing",
        targets={"revenue_account": "4060"},
        actor="user:fin",
        now=NOW,
    )
    response = finance.get(url("review"))
    page = response.content.decode()
    assert "maps.SERVICE_LINE.Backflow Testing" in page and "revenue_account: 4060" in page
    assert "Service line &#x27;Elevators&#x27; has no mapping" in page
    assert "Publishing this draft would fix 1 blocked or failed record." in page
    assert "1 would stay blocked." in page
    assert reverse("console:record-detail", args=[record.pk]) in page
    assert "on or before <strong>2025-11-20</strong>" in page
    assert response.context["form"]["effective_from"] == response.context["state"].today.isoformat()


def test_publishing_without_a_reason_is_refused_and_keeps_the_draft(finance, connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Elevators",
        targets={"revenue_account": "4060"},
        actor="user:fin",
        now=NOW,
    )
    response = finance.post(url("publish"), {"effective_from": "2025-01-01", "reason": " "})
    assert response.status_code == 200
    assert "Say why: publishing needs a reason." in response.content.decode()
    assert RuleVersion.objects.count() == 1 and RuleDraft.objects.exists()


def test_publishing_with_a_reason_makes_the_next_version(finance, connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Elevators",
        targets={"revenue_account": "4060"},
        actor="user:fin",
        now=NOW,
    )
    response = finance.post(
        url("publish"), {"effective_from": "2025-06-01", "reason": "Map elevators"}
    )
    assert response.status_code == 302
    assert response["Location"] == url("published", number=2)
    version = RuleVersion.objects.get(number=2)
    assert (version.effective_from, version.reason, version.published_by) == (
        date(2025, 6, 1),
        "Map elevators",
        "user:fin",
    )
    assert not RuleDraft.objects.exists()
    page = finance.get(response["Location"]).content.decode()
    assert "Version 2 is published" in page
    assert "No blocked or failed record waits for this version." in page


def test_a_publish_refused_by_the_checks_shows_the_errors(finance, connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="HVAC",
        targets={"revenue_account": "9999"},
        actor="user:fin",
        now=NOW,
    )
    response = finance.post(url("publish"), {"effective_from": "2025-01-01", "reason": "Oops"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Publishing was refused." in page and "1 error(s) stop publishing" in page
    assert "Account 9999 does not exist in the ERP." in page
    assert 'name="reason"' in page and ">Oops</textarea>" in page
    assert RuleVersion.objects.count() == 1


def test_a_publish_with_a_bad_date_says_so(finance, connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Elevators",
        targets={"revenue_account": "4060"},
        actor="user:fin",
        now=NOW,
    )
    response = finance.post(url("publish"), {"effective_from": "soon", "reason": "r"})
    assert "is not a date" in response.content.decode()
    assert RuleVersion.objects.count() == 1


def test_publishing_then_retrying_the_records_it_fixes_queues_exactly_those(finance, connection):
    fixed = blocked_invoice(connection, number="B-1", source_id=1, service_line="Backflow Testing")
    still = blocked_invoice(connection, number="E-1", source_id=2, service_line="Elevators")
    finance.post(
        url("map-row-add", kind="SERVICE_LINE"),
        {"source": "Backflow Testing", "revenue_account": "4060"},
        headers=HTMX,
    )
    response = finance.post(
        url("publish"), {"effective_from": "2025-01-01", "reason": "Map backflow testing"}
    )
    page = finance.get(response["Location"]).content.decode()
    assert "Retry the 1 record this fixes" in page
    assert reverse("console:record-detail", args=[fixed.pk]) in page

    response = finance.post(url("retry-fixed", number=2), follow=True)
    assert "Queued 1 record for another attempt." in response.content.decode()
    fixed.refresh_from_db()
    still.refresh_from_db()
    assert fixed.state == SyncState.READY and fixed.events.last().actor == "user:fin"
    assert still.state == SyncState.BLOCKED
    # The view queued the retry at the real clock's time.
    services.sync_run_until_idle(now=timezone.now)
    fixed.refresh_from_db()
    assert fixed.state == SyncState.POSTED and fixed.rule_version == 2


def test_a_draft_can_be_discarded_with_a_reason(finance, connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Elevators",
        targets={"revenue_account": "4060"},
        actor="user:fin",
        now=NOW,
    )
    response = finance.post(url("discard"), {"reason": ""})
    assert response["Location"] == url("review") and RuleDraft.objects.exists()
    response = finance.post(url("discard"), {"reason": "Wrong account"})
    assert response["Location"] == url("overview")
    assert not RuleDraft.objects.exists()
    assert RuleAudit.objects.filter(action="DRAFT_DISCARDED", reason="Wrong account").exists()


# --- versions and history ---------------------------------------------------------------------


@pytest.fixture
def version_2(connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="HVAC",
        targets={"revenue_account": "4011", "cost_code": "100"},
        actor="user:fin",
        now=NOW,
        reason="HVAC is parts now",
    )
    return publish_draft(connection, reason="Move HVAC")


def test_the_version_history_lists_versions_and_diffs_any_two(finance, connection, version_2):
    response = finance.get(url("versions"), {"a": "1", "b": "2"})
    page = response.content.decode()
    assert "Move HVAC" in page and "Demo rules as set up at implementation" in page
    assert [(row.path, row.before, row.after) for row in response.context["page"].changes] == [
        ("maps.SERVICE_LINE.HVAC.revenue_account", "4010", "4011")
    ]
    assert "From version 1 to version 2" in page


def test_rolling_back_publishes_the_earlier_rules_as_a_new_version(finance, connection, version_2):
    response = finance.post(url("rollback", number=1), {"effective_from": "2025-01-01"})
    assert response.status_code == 200
    assert "Say why: a rollback needs a reason." in response.content.decode()
    response = finance.post(
        url("rollback", number=1), {"effective_from": "2025-01-01", "reason": "Back to 4010"}
    )
    assert response.status_code == 302
    version = RuleVersion.objects.get(number=3)
    assert (
        version.rolled_back_from == 1
        and version.content == RuleVersion.objects.get(number=1).content
    )
    page = finance.get(url("versions")).content.decode()
    assert "rollback to 1" in page and "Back to 4010" in page


def test_a_map_row_history_lists_who_changed_it_when_and_why(finance, connection, version_2):
    finance.post(
        url("map-row-save", kind="SERVICE_LINE"),
        {"source": "hvac", "revenue_account": "4010", "cost_code": "100", "reason": "Undo"},
        headers=HTMX,
    )
    response = finance.get(url("history"), {"subject": "maps.SERVICE_LINE.HVAC"})
    rows = response.context["rows"]
    assert [(row.actor, row.before, row.after, row.reason) for row in rows] == [
        ("user:fin", "cost_code: 100, revenue_account: 4011",
         "cost_code: 100, revenue_account: 4010", "Undo"),
        ("user:fin", "cost_code: 100, revenue_account: 4010",
         "cost_code: 100, revenue_account: 4011", "HVAC is parts now"),
    ]  # fmt: skip
    assert "HVAC is parts now" in response.content.decode()


def test_a_subject_without_history_says_so(finance):
    page = finance.get(url("history"), {"subject": "maps.OFFICE.Nowhere"}).content.decode()
    assert "Nothing recorded for" in page


def check_target(client, *, kind="ACCOUNT", field="revenue_account", code="", slug="demo"):
    query = {"kind": kind, "field": field, field: code, "target": "r1-check"}
    return client.get(reverse("rules:check-target", kwargs={"slug": slug}), query, headers=HTMX)


def test_a_target_is_checked_against_the_erp_catalog_as_it_is_typed(finance, connection):
    edit = finance.get(url("map-row-edit", kind="SERVICE_LINE") + "?source=HVAC", headers=HTMX)
    assert 'hx-get="/connections/demo/rules/check-target/"' in edit.content.decode()
    known = check_target(finance, code="4010").content.decode()
    assert known.startswith('<span id="r1-check" class="field-check field-check-ok"')
    assert "✓ 4010 HVAC Service Revenue" in known
    unknown = check_target(finance, code="9999").content.decode()
    assert "✗ 9999 is not in the ERP&#x27;s account list. Pick one from the list." in unknown
    assert 'aria-live="polite"></span>' in check_target(finance, code="  ").content.decode()


def test_an_inactive_or_closed_target_is_flagged_while_typing(finance, connection):
    CatalogEntry.objects.filter(connection=connection, kind="ACCOUNT", code="4010").update(
        active=False
    )
    assert "4010 HVAC Service Revenue: inactive in the ERP." in (
        check_target(finance, code="4010").content.decode()
    )
    CatalogEntry.objects.filter(connection=connection, kind="ACCOUNT", code="4011").update(
        accepts_postings=False
    )
    assert "takes no postings" in check_target(finance, code="4011").content.decode()


def test_checking_a_target_of_another_connection_is_not_found(client, connection):
    other = Connection.objects.create(name="Other", slug="other")
    client.force_login(user_with(Role.FINANCE, other, name="stranger"))
    assert check_target(client, code="4010").status_code == 404
