"""The rules editor's tables for dimensions (settings and each dimension's values), numbering
rules and field owners: who may read and change them, inline htmx edits through the services,
the services' messages next to the field they name, catalog pickers and each row's history."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from console.access import Role
from mappings import services as rules
from mappings.models import RuleAudit, RuleDraft, RuleVersion
from syncengine.models import Connection
from tests.conftest import NOW
from tests.test_console_rules import HTMX, url, user_with

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rules_urls(settings):
    settings.ROOT_URLCONF = "tests.rules_urlconf"  # as in tests/test_console_rules.py


@pytest.fixture
def finance(client, connection):
    client.force_login(user_with(Role.FINANCE, connection, name="fin"))
    return client


@pytest.fixture
def ar(client, connection):
    client.force_login(user_with(Role.AR, connection, name="arclerk"))
    return client


def section_url(name: str, section: str) -> str:
    return url(name, section=section)


def draft_section(connection, section: str) -> list[dict]:
    return RuleDraft.objects.get(connection=connection).content[section]


def draft_dimension(connection, dimension: str) -> dict:
    settings = draft_section(connection, "dimensions")
    return next(setting for setting in settings if setting["dimension"] == dimension)


def read_pages() -> list[str]:
    return [
        section_url("section", "dimensions"),
        section_url("section", "numbering"),
        section_url("section", "ownership"),
        url("dimension") + "?dimension=DEPARTMENT",
        url("dimension-search") + "?dimension=DEPARTMENT&q=hv",
    ]


def write_requests() -> list[tuple[str, dict[str, str]]]:
    return [
        (section_url("section-add", "numbering"),
         {"entity": "CUSTOMER", "prefix": "C", "start": "1000", "end": "1999"}),
        (section_url("section-save", "dimensions"),
         {"dimension": "BRANCH", "source": "office", "required": "on"}),
        (section_url("section-delete", "dimensions"), {"dimension": "BRANCH"}),
        (section_url("section-add", "ownership"),
         {"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"}),
        (url("dimension-value-add"), {"dimension": "BRANCH", "source": "Durham", "code": "RAL"}),
        (url("dimension-value-save"), {"dimension": "BRANCH", "source": "Raleigh", "code": "CLT"}),
        (url("dimension-value-delete"), {"dimension": "BRANCH", "source": "Raleigh"}),
    ]  # fmt: skip


# --- access -------------------------------------------------------------------------------------


def test_every_table_page_answers_finance_and_ar(finance, connection):
    for page in read_pages():
        assert finance.get(page).status_code == 200, page


def test_ar_reads_the_tables_without_edit_controls(ar, connection):
    for page in read_pages():
        assert ar.get(page).status_code == 200, page
    page = ar.get(section_url("section", "dimensions")).content.decode()
    assert "BRANCH" in page and "Finance and Admin change them" in page
    assert "Add a dimension setting" not in page and "section-edit" not in page
    page = ar.get(url("dimension") + "?dimension=BRANCH").content.decode()
    assert "RAL" in page and "Add a value" not in page


def test_ar_may_not_change_a_table(ar, connection):
    for target, data in write_requests():
        assert ar.post(target, data).status_code == 403, target
    edit = section_url("section-edit", "dimensions") + "?dimension=BRANCH"
    assert ar.get(edit, headers=HTMX).status_code == 403
    value_edit = url("dimension-value-edit") + "?dimension=BRANCH&source=Raleigh"
    assert ar.get(value_edit, headers=HTMX).status_code == 403
    assert not RuleDraft.objects.exists()


def test_another_connections_tables_are_not_found(client, connection):
    other = Connection.objects.create(name="Other company", slug="other")
    client.force_login(user_with(Role.FINANCE, other, name="elsewhere"))
    for page in read_pages():
        assert client.get(page).status_code == 404, page
    for target, data in write_requests():
        assert client.post(target, data).status_code == 404, target
    assert not RuleDraft.objects.exists()


def test_an_unknown_section_or_dimension_is_not_found(finance, connection):
    assert finance.get("/connections/demo/rules/widgets/").status_code == 404
    assert finance.get(url("dimension") + "?dimension=NOPE").status_code == 404


# --- dimension settings -------------------------------------------------------------------------


def test_the_dimensions_table_shows_each_setting_with_its_value_count_and_pickers(
    finance, connection
):
    response = finance.get(section_url("section", "dimensions"))
    page = response.content.decode()
    rows = {row.key: row for row in response.context["page"].rows}
    assert rows[("BRANCH",)].value_count == 5 and rows[("DEPARTMENT",)].value_count == 5
    assert '<datalist id="catalog-DIMENSION">' in page
    assert '<option value="RAL">RAL · Raleigh</option>' in page
    assert "?subject=dimensions.BRANCH" in page  # the row's history link
    assert "No draft." in page and not RuleDraft.objects.exists()


def test_editing_a_setting_answers_htmx_with_the_row_and_keeps_its_values(finance, connection):
    edit = finance.get(
        section_url("section-edit", "dimensions") + "?dimension=BRANCH", headers=HTMX
    ).content.decode()
    assert edit.strip().startswith("<tr") and "<html" not in edit
    assert 'name="dimension" value="BRANCH"' in edit and 'class="row-editing"' in edit
    response = finance.post(
        section_url("section-save", "dimensions"),
        {"dimension": "BRANCH", "source": "office", "default": "RAL", "reason": "HQ default"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith("<tr") and "<html" not in page and "row-saved" in page
    assert json.loads(response["HX-Trigger"]) == {"rules-changed": {}}
    setting = draft_dimension(connection, "BRANCH")
    assert (setting["default"], setting["required"], setting["values"]["Raleigh"]) == (
        "RAL",
        False,
        "RAL",
    )
    audit = RuleAudit.objects.get(subject="dimensions.BRANCH")
    assert (audit.action, audit.actor, audit.reason) == ("DIMENSION_SET", "user:fin", "HQ default")


def test_a_refused_setting_shows_the_message_next_to_the_field_it_names(finance, connection):
    response = finance.post(
        section_url("section-save", "dimensions"),
        {"dimension": "BRANCH", "source": "weather"},
        headers=HTMX,
    )
    row = response.context["row"]
    errors = {cell.column.name: cell.errors for cell in row.cells if cell.errors}
    assert list(errors) == ["source"] and "is not one of" in errors["source"][0]
    page = response.content.decode()
    assert 'class="row-editing"' in page and 'aria-invalid="true"' in page
    assert 'id="dimensions-' in page and '-source-error" role="alert"' in page
    assert not RuleDraft.objects.exists()


def test_adding_a_dimension_answers_htmx_with_the_table_and_its_checks(finance, connection):
    response = finance.post(
        section_url("section-add", "dimensions"),
        {"dimension": "REGION", "source": "location_state", "pass_through": "on"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith('<div id="section-body">') and "<html" not in page
    assert "Dimension REGION does not exist in the ERP." in page
    assert draft_dimension(connection, "REGION") == {
        "dimension": "REGION",
        "source": "location_state",
        "values": {},
        "default": "",
        "pass_through": True,
        "required": False,
    }


def test_a_dimension_can_be_made_the_default_of_customers_crosswalk_creates(finance, connection):
    finance.post(
        section_url("section-add", "dimensions"),
        {"dimension": "BRANCH", "source": "office", "customer_default": "on"},
        headers=HTMX,
    )
    assert draft_dimension(connection, "BRANCH")["customer_default"] is True


def test_adding_a_setting_without_its_source_keeps_what_was_typed(finance, connection):
    response = finance.post(
        section_url("section-add", "dimensions"), {"dimension": "REGION"}, headers=HTMX
    )
    add_row = response.context["add_row"]
    assert add_row.cells[0].value == "REGION" and add_row.cells[1].errors == ("required",)
    assert not RuleDraft.objects.exists()


def test_deleting_a_dimension_removes_it_from_the_draft(finance, connection):
    response = finance.post(
        section_url("section-delete", "dimensions"), {"dimension": "BRANCH"}, headers=HTMX
    )
    assert response.status_code == 200 and response.content == b""
    assert [s["dimension"] for s in draft_section(connection, "dimensions")] == ["DEPARTMENT"]
    again = finance.post(section_url("section-delete", "dimensions"), {"dimension": "BRANCH"})
    assert again.status_code == 302
    assert "The draft has no dimension" in finance.get(again["Location"]).content.decode()


def test_without_htmx_the_edit_link_opens_the_form_in_the_page(finance, connection):
    response = finance.get(section_url("section-edit", "ownership") + "?entity=X&field=y")
    assert response.status_code == 302
    assert response["Location"].endswith("?edit=ownership.X.y")


# --- numbering and field owners -----------------------------------------------------------------


def test_numbering_rules_are_added_edited_and_deleted(finance, connection):
    response = finance.post(
        section_url("section-add", "numbering"),
        {"entity": "CUSTOMER", "prefix": "C", "start": "1000", "end": "1999", "width": ""},
        headers=HTMX,
    )
    assert 'id="section-body"' in response.content.decode()
    assert draft_section(connection, "numbering") == [
        {"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 1999, "width": 0}
    ]
    saved = finance.post(
        section_url("section-save", "numbering"),
        {"entity": "CUSTOMER", "prefix": "C", "start": "1000", "end": "2999", "width": "6"},
        headers=HTMX,
    ).content.decode()
    assert saved.strip().startswith("<tr") and "<code>2999</code>" in saved
    assert draft_section(connection, "numbering")[0]["width"] == 6
    finance.post(section_url("section-delete", "numbering"), {"entity": "CUSTOMER"}, headers=HTMX)
    assert draft_section(connection, "numbering") == []


def test_a_number_that_is_not_whole_is_shown_next_to_its_field(finance, connection):
    response = finance.post(
        section_url("section-add", "numbering"),
        {"entity": "SITE", "start": "ten", "end": "99"},
        headers=HTMX,
    )
    cells = {cell.column.name: cell for cell in response.context["add_row"].cells}
    assert cells["start"].errors == ("ten is not a whole number",)
    assert cells["end"].value == "99"
    assert "ten is not a whole number" in response.content.decode()


def test_an_empty_range_is_said_about_the_whole_row(finance, connection):
    response = finance.post(
        section_url("section-save", "numbering"),
        {"entity": "JOB", "prefix": "J", "start": "50", "end": "10"},
        headers=HTMX,
    )
    row = response.context["row"]
    assert row.errors == ("numbering[0]: the range 50–10 is empty or negative",)
    assert 'class="row-editing"' in response.content.decode()


def test_overlapping_numbering_shows_the_check_on_the_row(finance, connection):
    for entity, start in (("CUSTOMER", "1"), ("SITE", "50")):
        finance.post(
            section_url("section-add", "numbering"),
            {"entity": entity, "prefix": "X", "start": start, "end": "100"},
            headers=HTMX,
        )
    page = finance.get(section_url("section", "numbering")).content.decode()
    assert "codes share the prefix &#x27;X&#x27; and overlapping ranges" in page
    assert "row-has-errors" in page


def test_field_owners_are_keyed_by_entity_and_field(finance, connection):
    finance.post(
        section_url("section-add", "ownership"),
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"},
        headers=HTMX,
    )
    edit = finance.get(
        section_url("section-edit", "ownership") + "?entity=CUSTOMER&field=tax_code",
        headers=HTMX,
    ).content.decode()
    assert 'name="field" value="tax_code"' in edit and '<option value="ERP" selected>' in edit
    response = finance.post(
        section_url("section-save", "ownership"),
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "LATEST"},
        headers=HTMX,
    )
    saved = response.content.decode()
    assert "<code>LATEST</code>" in saved and "row-saved" in saved
    assert draft_section(connection, "ownership") == [
        {"entity": "CUSTOMER", "field": "tax_code", "owner": "LATEST"}
    ]
    history = finance.get(url("history"), {"subject": "ownership.CUSTOMER.tax_code"})
    assert [row.after for row in history.context["rows"]] == [
        "entity: CUSTOMER, field: tax_code, owner: LATEST",
        "entity: CUSTOMER, field: tax_code, owner: ERP",
    ]
    finance.post(
        section_url("section-delete", "ownership"),
        {"entity": "CUSTOMER", "field": "tax_code"},
        headers=HTMX,
    )
    assert draft_section(connection, "ownership") == []


def test_an_unknown_owner_is_shown_next_to_the_owner_field(finance, connection):
    response = finance.post(
        section_url("section-add", "ownership"),
        {"entity": "CUSTOMER", "field": "name", "owner": "NOBODY"},
        headers=HTMX,
    )
    cells = {cell.column.name: cell for cell in response.context["add_row"].cells}
    assert cells["owner"].errors and "is not one of ERP, SOURCE, LATEST" in cells["owner"].errors[0]
    assert not cells["entity"].errors


def test_cancelling_an_edit_answers_with_the_row_as_shown(finance, connection):
    response = finance.get(
        section_url("section-row", "dimensions") + "?dimension=DEPARTMENT", headers=HTMX
    )
    page = response.content.decode()
    assert page.strip().startswith("<tr") and "row-editing" not in page
    assert "<code>service_line</code>" in page


# --- one dimension's values ---------------------------------------------------------------------


def test_a_dimension_page_lists_its_values_with_catalog_names(finance, connection):
    response = finance.get(url("dimension"), {"dimension": "DEPARTMENT"})
    page = response.content.decode()
    assert [row.source for row in response.context["page"].rows][:2] == [
        "Fire Alarm",
        "Fire Sprinkler",
    ]
    assert '<code>HVAC</code> <span class="muted">HVAC</span>' in page
    assert '<option value="BKFL">BKFL · Backflow Testing</option>' in page
    assert "?subject=dimensions.DEPARTMENT.values.HVAC" in page


def test_the_value_picker_searches_the_dimensions_catalog_values(finance, connection):
    response = finance.get(url("dimension-search"), {"dimension": "BRANCH", "code": "char"})
    page = response.content.decode().strip()
    assert page == '<option value="CLT">CLT · Charlotte</option>'
    other = finance.get(url("dimension-search"), {"dimension": "DEPARTMENT", "q": "CLT"})
    assert other.content.decode().strip() == ""  # another dimension's values are not offered


def test_adding_a_value_answers_htmx_with_the_table(finance, connection):
    response = finance.post(
        url("dimension-value-add"),
        {"dimension": "BRANCH", "source": "Durham", "code": "RAL", "reason": "Durham is Raleigh"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith('<div id="dimension-body">') and "<html" not in page
    assert "row-saved" in page and 'id="add-value-source" name="source" value=""' in page
    assert draft_dimension(connection, "BRANCH")["values"]["Durham"] == "RAL"
    audit = RuleAudit.objects.get(subject="dimensions.BRANCH.values.Durham")
    assert (audit.before, audit.after, audit.reason) == (None, "RAL", "Durham is Raleigh")


def test_a_value_without_a_code_keeps_what_was_typed_and_says_why(finance, connection):
    response = finance.post(
        url("dimension-value-add"), {"dimension": "BRANCH", "source": "Durham"}, headers=HTMX
    )
    page = response.content.decode()
    assert 'id="add-value-source" name="source" value="Durham"' in page
    assert "code: required" in page
    assert not RuleDraft.objects.exists()


def test_editing_a_value_to_an_unknown_code_shows_the_check_on_the_row(finance, connection):
    edit = finance.get(
        url("dimension-value-edit") + "?dimension=BRANCH&source=raleigh", headers=HTMX
    ).content.decode()
    assert edit.strip().startswith("<tr") and 'name="code" value="RAL"' in edit
    response = finance.post(
        url("dimension-value-save"),
        {"dimension": "BRANCH", "source": "Raleigh", "code": "ZZZ"},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith("<tr") and "row-has-errors" in page and "ZZZ" in page
    assert json.loads(response["HX-Trigger"]) == {"rules-changed": {}}
    dimensions = finance.get(section_url("section", "dimensions")).content.decode()
    assert "1 problem" in dimensions


def test_a_value_cannot_be_set_for_a_dimension_the_rules_do_not_have(finance, connection):
    response = finance.post(
        url("dimension-value-save"),
        {"dimension": "REGION", "source": "NC", "code": "EAST"},
        headers=HTMX,
    )
    assert "add it first" in response.content.decode()
    assert not RuleDraft.objects.exists()


def test_deleting_a_value_removes_it_and_keeps_the_setting(finance, connection):
    response = finance.post(
        url("dimension-value-delete"), {"dimension": "BRANCH", "source": "ATLANTA"}, headers=HTMX
    )
    assert response.content == b""
    setting = draft_dimension(connection, "BRANCH")
    assert "Atlanta" not in setting["values"] and setting["required"] is True
    response = finance.post(
        url("dimension-value-delete"), {"dimension": "BRANCH", "source": "Atlanta"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("rules:dimension", kwargs={"slug": "demo"}) + (
        "?dimension=BRANCH"
    )


def test_without_htmx_a_failed_value_save_comes_back_to_the_form(finance, connection):
    response = finance.post(
        url("dimension-value-save"), {"dimension": "BRANCH", "source": "Raleigh", "code": ""}
    )
    assert response.status_code == 302
    page = finance.get(response["Location"]).content.decode()
    assert 'class="row-editing"' in page and "code: required" in page


def test_published_rules_keep_the_edited_tables(finance, connection):
    finance.post(
        section_url("section-add", "numbering"),
        {"entity": "JOB", "prefix": "J-", "start": "1", "end": "99999", "width": "5"},
        headers=HTMX,
    )
    rules.draft_publish(
        connection=connection,
        effective_from=NOW.date(),
        reason="Number jobs",
        actor="user:fin",
        now=NOW,
    )
    version = RuleVersion.objects.get(number=2)
    assert version.content["numbering"] == [
        {"entity": "JOB", "prefix": "J-", "start": 1, "end": 99999, "width": 5}
    ]
