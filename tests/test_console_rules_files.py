"""The rules editor's import and export page: downloads of the whole rule set (JSON), a map or
the routing rules (CSV) of the draft, the version in force or any version; uploads into the
draft, all or nothing, with every problem by row and column, or what was added, changed and
removed; who may do which, and the htmx answer to an upload."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from console.access import Role
from mappings import services as rules
from mappings.models import RuleAudit, RuleDraft
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


def upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def export(client, **query: str):
    return client.get(url("export"), query)


def tax_rate_csv(client) -> str:
    """The exported tax rate map with its first row's code changed, its last row gone and a
    new rate added: one changed, one removed, one added."""
    header, first, *middle, _last = export(client, part="TAX_RATE").content.decode().splitlines()
    rate = first.split(",")[0]
    return "\n".join([header, f"{rate},CHANGED-1,", *middle, "6.5,NC-7.25,", ""])


# --- access -------------------------------------------------------------------------------------


def test_ar_downloads_the_rules_but_may_not_import(ar, connection):
    page = ar.get(url("files")).content.decode()
    assert "The whole rule set (JSON)" in page and "Finance and Admin import them" in page
    assert 'id="import-form"' not in page
    assert export(ar, part="json").status_code == 200
    response = ar.post(url("import"), {"part": "TAX_RATE", "file": upload("t.csv", "x")})
    assert response.status_code == 403
    assert not RuleDraft.objects.exists()


def test_another_connections_files_are_not_found(client, connection):
    other = Connection.objects.create(name="Other company", slug="other")
    client.force_login(user_with(Role.FINANCE, other, name="elsewhere"))
    assert client.get(url("files")).status_code == 404
    assert export(client, part="json").status_code == 404
    response = client.post(url("import"), {"part": "TAX_RATE", "file": upload("t.csv", "x")})
    assert response.status_code == 404


def test_anonymous_visitors_are_sent_to_log_in_before_a_download(client, connection):
    response = export(client, part="json")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- export -------------------------------------------------------------------------------------


def test_the_whole_rule_set_downloads_as_json_of_the_version_in_force(finance, connection):
    response = export(finance, part="json")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="demo-rules-v1.json"'
    document = json.loads(response.content)
    assert (document["format"], document["version"]) == ("crosswalk-rules", 1)
    assert document["rules"]["maps"]["SERVICE_LINE"]["HVAC"]["revenue_account"] == "4010"


def test_a_map_and_the_routing_download_as_csv_of_the_draft(finance, connection):
    rules.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Elevators",
        targets={"revenue_account": "4060"},
        actor="user:fin",
        now=NOW,
    )
    response = export(finance, part="SERVICE_LINE")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="demo-rules-draft-SERVICE_LINE.csv"' in response["Content-Disposition"]
    rows = {row["source_value"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert rows["Elevators"]["revenue_account"] == "4060" and rows["Elevators"]["cost_code"] == ""
    routing = export(finance, part="routing").content.decode().splitlines()
    assert routing[0].startswith("id,priority,account,note") and routing[1].startswith("1,0,4011")


def test_an_exported_version_is_that_version_and_an_unknown_one_is_not_found(finance, connection):
    response = export(finance, part="TAX_RATE", version="1")
    assert 'filename="demo-rules-v1-TAX_RATE.csv"' in response["Content-Disposition"]
    assert export(finance, part="json", version="9").status_code == 404
    assert export(finance, part="NOPE").status_code == 404


# --- import -------------------------------------------------------------------------------------


def test_importing_a_map_csv_replaces_that_map_and_counts_what_changed(finance, connection):
    response = finance.post(
        url("import"),
        {
            "part": "TAX_RATE",
            "file": upload("rates.csv", tax_rate_csv(finance)),
            "reason": "New rates",
        },
    )
    assert response.status_code == 200
    [count] = response.context["counts"]
    assert (count.label, count.added, count.changed, count.removed) == (
        "Tax rate map rows",
        1,
        1,
        1,
    )
    rows = len(tax_rate_csv(finance).splitlines()) - 1
    page = response.content.decode()
    assert f"Imported the TAX_RATE map ({rows} row(s)) from rates.csv into the draft." in page
    draft = RuleDraft.objects.get(connection=connection).content
    assert draft["maps"]["TAX_RATE"]["6.5"] == {"tax_code": "NC-7.25"}
    assert "HVAC" in draft["maps"]["SERVICE_LINE"]  # the rest of the draft stays
    audit = RuleAudit.objects.get(action="DRAFT_REPLACED", subject="maps.TAX_RATE")
    assert (audit.actor, audit.reason) == ("user:fin", "New rates")


def test_an_upload_with_htmx_answers_with_the_result_alone(finance, connection):
    response = finance.post(
        url("import"),
        {"part": "TAX_RATE", "file": upload("rates.csv", tax_rate_csv(finance))},
        headers=HTMX,
    )
    page = response.content.decode()
    assert page.strip().startswith('<div id="import-result"') and "<html" not in page
    assert json.loads(response["HX-Trigger"]) == {"rules-changed": {}}  # the banner reloads


def test_a_bad_csv_imports_nothing_and_names_each_row_and_column(finance, connection):
    text = "source_value,tax_code,colour\n7.25,NC-7.25,red\n,SC-7.00,\n"
    response = finance.post(
        url("import"), {"part": "TAX_RATE", "file": upload("bad.csv", text)}, headers=HTMX
    )
    page = response.content.decode()
    errors = re.findall(r'<li class="issue issue-error">([^<]*)</li>', page)
    assert len(errors) >= 2 and any("colour" in error for error in errors)
    assert any(error.startswith("row 3") for error in errors)
    assert "Nothing was imported from bad.csv." in page and 'role="alert"' in page
    assert "HX-Trigger" not in response
    assert not RuleDraft.objects.exists()


def test_a_whole_rule_set_round_trips_and_lists_only_the_parts_it_changed(finance, connection):
    document = json.loads(export(finance, part="json").content)
    del document["rules"]["maps"]["OFFICE"]["Raleigh"]
    document["rules"]["numbering"] = [
        {"entity": "JOB", "prefix": "J", "start": 1, "end": 9, "width": 0}
    ]
    body = SimpleUploadedFile("rules.json", json.dumps(document).encode())
    response = finance.post(url("import"), {"part": "json", "file": body})
    counts = {c.label: (c.added, c.changed, c.removed) for c in response.context["counts"]}
    assert counts == {"Office map rows": (0, 0, 1), "Numbering": (1, 0, 0)}
    assert "Parts not listed are unchanged." in response.content.decode()


def test_importing_the_same_rules_says_nothing_changed(finance, connection):
    text = export(finance, part="routing").content.decode()
    response = finance.post(url("import"), {"part": "routing", "file": upload("r.csv", text)})
    [count] = response.context["counts"]
    assert count.unchanged
    assert "Routing rules" in response.content.decode()


def test_a_broken_json_file_names_its_line_and_column(finance, connection):
    body = SimpleUploadedFile("rules.json", b'{"format": "crosswalk-rules",\n  oops}')
    response = finance.post(url("import"), {"part": "json", "file": body})
    assert response.context["errors"][0].startswith("line 2, column 3")
    assert not RuleDraft.objects.exists()


def test_an_import_without_a_file_or_with_an_unknown_part_says_what_to_do(finance, connection):
    response = finance.post(url("import"), {"part": "TAX_RATE"})
    assert response.context["errors"] == ["Choose a file to import: it is missing or empty."]
    response = finance.post(url("import"), {"part": "WIDGETS", "file": upload("w.csv", "a\n")})
    assert "Choose what the file holds" in response.context["errors"][0]
    assert not RuleDraft.objects.exists()


def test_a_file_over_the_size_limit_is_refused(finance, connection, settings):
    settings.CROSSWALK_MAX_PAYLOAD_BYTES = 10
    response = finance.post(url("import"), {"part": "TAX_RATE", "file": upload("t.csv", "x" * 11)})
    assert "larger than 10 bytes" in response.context["errors"][0]
    assert not RuleDraft.objects.exists()


def test_the_page_offers_the_upload_progress_bar_and_its_script(finance, connection):
    page = finance.get(url("files")).content.decode()
    assert 'data-upload-progress="import-progress"' in page
    assert '<progress id="import-progress"' in page and "js/upload-progress.js" in page
    assert 'hx-encoding="multipart/form-data"' in page
