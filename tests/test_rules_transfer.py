"""`manage.py rules export / import` and `mappings.transfer`: rule sets as JSON, maps and routing
as CSV, exact round trips, and bad files refused with every problem named by row and column."""

import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings import services, transfer
from mappings.models import RuleAudit, RuleDraft
from mappings.ruleset import MAP_KINDS, norm, parse_ruleset
from syncengine.models import Connection
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

SERVICE_LINE_CSV = (
    "source_value,revenue_account,cost_code,cost_center\n"
    "Fire Alarm,4030,300,\n"
    "Fire Sprinkler,4020,200,\n"
    "HVAC,4010,100,\n"
    "Kitchen Hood,4050,500,\n"
    "Plumbing,4040,400,\n"
)
ROUTING_HEADER = (
    "id,priority,account,note,document_kind,line_kind,service_line,office,job_type,customer_tag,"
    "state\n"
)


def run(*args, stdin=None):
    out, err = StringIO(), StringIO()
    options = {"stdout": out, "stderr": err}
    if stdin is not None:
        options["stdin"] = stdin
    call_command("rules", *args, **options)
    return out.getvalue(), err.getvalue()


def draft_content(connection):
    draft = RuleDraft.objects.filter(connection=connection).first()
    return draft.content if draft else None


def audit_count(connection):
    return RuleAudit.objects.filter(connection=connection).count()


@pytest.fixture
def drafted(connection):
    """The demo connection with a draft that differs from version 1."""
    services.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Backflow Testing",
        targets={"revenue_account": "4060", "cost_code": "600"},
        actor="finance",
        now=NOW,
    )
    return connection


def refused(connection, tmp_path, name, text, *args):
    """Import a bad file; assert nothing changed and return the error message."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    before, audits = draft_content(connection), audit_count(connection)
    with pytest.raises(CommandError) as error:
        run("import", *args, str(path))
    assert draft_content(connection) == before
    assert audit_count(connection) == audits
    return str(error.value)


# --- round trips --------------------------------------------------------------------------------


def test_a_json_export_imported_and_exported_again_gives_the_same_bytes(connection, tmp_path):
    version_file, first, second = (tmp_path / n for n in ("v1.json", "a.json", "b.json"))
    run("export", str(version_file))
    run("import", str(version_file))
    run("export", "--draft", str(first))
    run("import", str(first))
    run("export", "--draft", str(second))

    assert second.read_bytes() == first.read_bytes()
    published, drafted = json.loads(version_file.read_text()), json.loads(first.read_text())
    assert drafted["rules"] == published["rules"]
    assert (drafted["version"], drafted["effective_from"]) == (None, None)


def test_a_json_export_is_canonical_utf8_with_a_header_naming_where_it_came_from(
    connection, tmp_path
):
    services.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="Climatización, «Norte»",
        targets={"revenue_account": "4010"},
        actor="finance",
        now=NOW,
    )
    out, _ = run("export", "--draft", "-")
    document = json.loads(out)
    assert list(document) == [
        "format",
        "format_version",
        "connection",
        "version",
        "effective_from",
        "rules",
    ]
    assert document["format"] == "crosswalk-rules" and document["format_version"] == 1
    assert document["connection"] == "demo"
    assert list(document["rules"]) == [
        "defaults",
        "maps",
        "routing",
        "dimensions",
        "numbering",
        "ownership",
    ]
    assert '"Climatización, «Norte»": {' in out  # not \u-escaped
    assert out.endswith("}\n") and "\r" not in out
    assert out == json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    path = tmp_path / "v1.json"
    run("export", str(path))
    assert json.loads(path.read_text())["version"] == 1
    assert json.loads(path.read_text())["effective_from"] == "2025-01-01"


def test_a_hand_edited_json_file_is_stored_and_exported_in_canonical_order(connection, tmp_path):
    rules = {
        "ownership": [],
        "numbering": [],
        "maps": {"SERVICE_LINE": {"  Zeta ": {"revenue_account": " 4010 "},
                                  "Alpha": {"cost_code": "100"}}},
        "defaults": {"tax_account": "2300", "receivable_account": "1200"},
    }  # fmt: skip
    path = tmp_path / "edited.json"
    path.write_text(json.dumps({"rules": rules, "format_version": 1, "format": "crosswalk-rules"}))
    run("import", str(path))
    out, _ = run("export", "--draft", "--map", "SERVICE_LINE", "-")
    assert out == "source_value,revenue_account,cost_code,cost_center\nAlpha,,100,\nZeta,4010,,\n"


def test_a_map_exported_as_csv_imports_and_exports_again_byte_for_byte(connection, tmp_path):
    first, second = tmp_path / "lines.csv", tmp_path / "again.csv"
    run("export", "--map", "SERVICE_LINE", str(first))
    assert first.read_bytes() == SERVICE_LINE_CSV.encode()
    run("import", "--map", "SERVICE_LINE", str(first))
    run("export", "--draft", "--map", "service_line", str(second))
    assert second.read_bytes() == first.read_bytes()


def test_values_with_commas_quotes_newlines_and_unicode_round_trip_through_csv(
    connection, tmp_path
):
    path = tmp_path / "odd.csv"
    path.write_text(
        "source_value,revenue_account\n"
        '"Hood, kitchen",4050\n'
        '"The ""big"" one",4010\n'
        '"two\nlines",4020\n'
        "Ölbrenner 🔥,4030\n",
        encoding="utf-8",
    )
    run("import", "--map", "SERVICE_LINE", str(path))
    out, _ = run("export", "--draft", "--map", "SERVICE_LINE", "-")
    assert set(parse_ruleset(draft_content(connection)).maps["SERVICE_LINE"]) == {
        "Hood, kitchen",
        'The "big" one',
        "two\nlines",
        "Ölbrenner 🔥",
    }
    again = tmp_path / "again.csv"
    again.write_text(out, encoding="utf-8")
    run("import", "--map", "SERVICE_LINE", str(again))
    assert run("export", "--draft", "--map", "SERVICE_LINE", "-")[0] == out


def test_routing_exported_as_csv_imports_and_exports_again_byte_for_byte(connection, tmp_path):
    services.draft_routing_rule_set(
        connection=connection,
        conditions={"office": "Raleigh", "customer_tag": "national, key", "line_kind": "labor"},
        account="4010",
        priority=5,
        note='Raleigh "national" labour',
        actor="finance",
        now=NOW,
    )
    first, second = tmp_path / "routing.csv", tmp_path / "again.csv"
    run("export", "--draft", "--routing", str(first))
    assert first.read_text(encoding="utf-8") == (
        ROUTING_HEADER + "1,0,4011,HVAC parts sales,,part,HVAC,,,,\n"
        '2,5,4010,"Raleigh ""national"" labour",,labor,,Raleigh,,"national, key",\n'
    )
    run("import", "--routing", str(first))
    run("export", "--draft", "--routing", str(second))
    assert second.read_bytes() == first.read_bytes()


# --- importing into the draft -------------------------------------------------------------------


def test_an_import_replaces_the_draft_and_records_who_why_before_and_after(drafted, tmp_path):
    path = tmp_path / "v1.json"
    run("export", str(path))
    before = draft_content(drafted)
    out, _ = run("import", str(path), "--reason", "Back to version 1", "--actor", "dana")

    assert (
        draft_content(drafted) == parse_ruleset(json.loads(path.read_text())["rules"]).to_content()
    )
    audit = RuleAudit.objects.filter(connection=drafted).latest("id")
    assert audit.action == RuleAudit.Action.DRAFT_REPLACED
    assert (audit.actor, audit.reason) == ("dana", "Back to version 1")
    assert audit.before == before and audit.after == draft_content(drafted)
    assert "Imported the whole rule set from v1.json into the draft of demo." in out


def test_an_import_without_a_reason_says_in_the_audit_which_file_it_came_from(connection, tmp_path):
    path = tmp_path / "rules.json"
    run("export", str(path))
    run("import", str(path))
    audit = RuleAudit.objects.filter(connection=connection).latest("id")
    assert audit.reason == "Imported rules.json (exported from demo version 1)"
    assert audit.actor


def test_importing_one_map_replaces_that_map_and_keeps_the_rest_of_the_draft(drafted, tmp_path):
    before = draft_content(drafted)
    path = tmp_path / "tax.csv"
    path.write_text("source_value,tax_code\n7.25,NC-7.25\n")
    out, _ = run("import", "--map", "TAX_RATE", str(path), "--reason", "NC only")

    after = draft_content(drafted)
    assert after["maps"]["TAX_RATE"] == {"7.25": {"tax_code": "NC-7.25"}}
    assert {**after, "maps": None} == {**before, "maps": None}
    assert after["maps"]["SERVICE_LINE"] == before["maps"]["SERVICE_LINE"]
    assert "Imported the TAX_RATE map (1 row(s)) from tax.csv into the draft of demo." in out


def test_importing_an_empty_map_removes_it_from_the_draft(connection, tmp_path):
    path = tmp_path / "tax.csv"
    path.write_text("source_value,tax_code,tax_account\n")
    run("import", "--map", "TAX_RATE", str(path))
    assert "TAX_RATE" not in draft_content(connection)["maps"]
    assert "SERVICE_LINE" in draft_content(connection)["maps"]


def test_importing_routing_replaces_only_the_routing_rules(drafted, tmp_path):
    before = draft_content(drafted)
    path = tmp_path / "routing.csv"
    path.write_text("id,account,office,priority\n7,4010,Raleigh,\n3,4020, Charlotte ,2\n")
    run("import", "--routing", str(path))
    after = draft_content(drafted)
    assert after["routing"] == [
        {"id": 3, "conditions": {"office": "Charlotte"}, "account": "4020", "priority": 2,
         "note": ""},
        {"id": 7, "conditions": {"office": "Raleigh"}, "account": "4010", "priority": 0,
         "note": ""},
    ]  # fmt: skip
    assert {**after, "routing": None} == {**before, "routing": None}


def test_a_byte_order_mark_windows_line_endings_and_blank_lines_are_accepted(connection, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffSource_Value,Tax_Code\r\n\r\n7.25,NC-7.25\r\n,,\r\n9.25,TN-9.25\r\n\r\n".encode()
    )
    run("import", "--map", "TAX_RATE", str(path))
    assert draft_content(connection)["maps"]["TAX_RATE"] == {
        "7.25": {"tax_code": "NC-7.25"},
        "9.25": {"tax_code": "TN-9.25"},
    }


def test_a_file_can_be_exported_to_stdout_and_imported_from_stdin(connection):
    out, _ = run("export", "--routing", "-")
    assert out.startswith(ROUTING_HEADER)
    changed = out.replace("HVAC parts sales", "HVAC parts")
    run("import", "--routing", "-", stdin=StringIO(changed))
    assert draft_content(connection)["routing"][0]["note"] == "HVAC parts"


def test_an_import_reports_what_would_stop_publishing(connection, tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text("source_value,revenue_account\nHVAC,9999\n")
    out, _ = run("import", "--map", "SERVICE_LINE", str(path))
    assert "Publishing the draft would be refused until 1 error(s) are fixed" in out
    assert "maps.SERVICE_LINE.HVAC.revenue_account: Account 9999 does not exist in the ERP." in out


# --- choosing what to export --------------------------------------------------------------------


def test_version_n_exports_that_version_and_the_default_is_the_latest(drafted, tmp_path):
    services.draft_publish(
        connection=drafted,
        effective_from=date(2026, 1, 1),
        reason="Map backflow testing",
        actor="finance",
        now=NOW,
    )
    latest, _ = run("export", "--map", "SERVICE_LINE", "-")
    first, _ = run("export", "--version", "1", "--map", "SERVICE_LINE", "-")
    assert first == SERVICE_LINE_CSV
    assert latest == SERVICE_LINE_CSV.replace(
        "Fire Alarm,", "Backflow Testing,4060,600,\nFire Alarm,"
    )
    document = json.loads(run("export", "--version", "1", "-")[0])
    assert (document["version"], document["effective_from"]) == (1, "2025-01-01")
    document = json.loads(run("export", "-")[0])
    assert (document["version"], document["effective_from"]) == (2, "2026-01-01")


def test_exporting_a_connection_with_no_published_version_says_so(connection, tmp_path):
    Connection.objects.create(slug="fresh", name="Fresh connection")
    with pytest.raises(CommandError, match="'fresh' has no published version of its rules yet"):
        run("export", "--connection", "fresh", str(tmp_path / "rules.json"))
    assert not (tmp_path / "rules.json").exists()


def test_exporting_a_version_that_does_not_exist_lists_the_versions_there_are(connection):
    with pytest.raises(CommandError, match="has no version 4; its versions are 1."):
        run("export", "--version", "4", "-")


def test_exporting_the_draft_when_there_is_none_says_how_one_starts(connection):
    with pytest.raises(CommandError, match="has no draft: one starts with the first edit"):
        run("export", "--draft", "-")


def test_the_file_name_decides_between_json_and_csv(connection, tmp_path):
    with pytest.raises(CommandError, match="add --map KIND .* or --routing"):
        run("export", str(tmp_path / "rules.csv"))
    with pytest.raises(CommandError, match="--map and --routing go with a .csv file"):
        run("export", "--map", "OFFICE", str(tmp_path / "rules.json"))
    with pytest.raises(CommandError, match=r"must end in \.json .* or \.csv"):
        run("export", str(tmp_path / "rules.txt"))
    with pytest.raises(CommandError, match="invalid choice: 'COLOUR'"):
        run("export", "--map", "colour", str(tmp_path / "rules.csv"))


# --- bad files ----------------------------------------------------------------------------------


def test_an_unknown_column_is_named_with_its_row_and_nothing_is_imported(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "lines.csv",
        "\ufeffsource_value,revenue_account,colour\nHVAC,4010,red\n",
        "--map",
        "SERVICE_LINE",
    )
    assert "row 1, column colour: unknown column; the columns of the SERVICE_LINE map are " in (
        message
    )
    assert message.startswith("Nothing was imported:")


def test_a_missing_required_column_is_named(drafted, tmp_path):
    message = refused(
        drafted, tmp_path, "lines.csv", "revenue_account\n4010\n", "--map", "SERVICE_LINE"
    )
    assert "row 1, column source_value: missing" in message
    message = refused(
        drafted, tmp_path, "routing.csv", "account,office\n4010,Raleigh\n", "--routing"
    )
    assert "row 1, column id: missing" in message


def test_source_values_that_are_the_same_once_normalised_are_refused(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "tax.csv",
        "source_value,tax_code\n7.25,NC-7.25\n\n  7.250 ,NC-7.25\nHVAC,X\nhvac,Y\n",
        "--map",
        "TAX_RATE",
    )
    # The blank line counts: it is row 3, as a spreadsheet shows it.
    assert "row 4, column source_value: '7.250' is the same value as '7.25' on row 2" in message
    assert "row 6, column source_value: 'hvac' is the same value as 'HVAC' on row 5" in message


def test_a_row_that_maps_to_nothing_is_refused(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "lines.csv",
        "source_value,revenue_account,cost_code\nHVAC,4010,100\nPlumbing, ,\n",
        "--map",
        "SERVICE_LINE",
    )
    assert (
        "row 3, columns revenue_account, cost_code: all empty, so 'Plumbing' maps to nothing"
        in (message)
    )


def test_an_empty_source_value_or_a_value_outside_the_header_is_refused(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "lines.csv",
        "source_value,revenue_account\n,4010\nHVAC,4010,extra\n",
        "--map",
        "SERVICE_LINE",
    )
    assert "row 2, column source_value: empty" in message
    assert "row 3, column 3: a value beyond the last column of the header" in message


def test_ids_and_priorities_that_are_not_whole_numbers_are_refused(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "routing.csv",
        "id,priority,account\nx,1,4010\n2,1.5,4010\n,0,4010\n4,high,\n",
        "--routing",
    )
    assert "row 2, column id: 'x' is not a whole number" in message
    assert "row 3, column priority: '1.5' is not a whole number" in message
    assert "row 4, column id: empty" in message
    assert "row 5, column priority: 'high' is not a whole number" in message
    assert "row 5, column account: empty" in message
    assert "Nothing was imported: " in message and "has 5 problem(s):" in message


def test_rule_set_errors_are_traced_back_to_their_row_and_column(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "routing.csv",
        "id,account,line_kind,document_kind\n1,4010,tool,\n2,4010,,bill\n2,4020,,\n",
        "--routing",
    )
    assert "row 2, column line_kind: not one of labor, part, other" in message
    assert "row 3, column document_kind: not one of invoice, credit_memo, job_cost" in message
    assert "row 4, column id: rule 2 is already on row 3" in message


def test_a_file_that_is_not_utf8_is_refused_with_its_line(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "lines.csv",
        "source_value,revenue_account\nHVAC,4010\nCaf\xe9,4020\n".encode("latin-1"),
        "--map",
        "SERVICE_LINE",
    )
    assert "line 3: byte 0xE9 is not UTF-8" in message


def test_a_nul_character_which_postgresql_cannot_store_is_refused(drafted, tmp_path):
    message = refused(
        drafted,
        tmp_path,
        "lines.csv",
        "source_value,revenue_account\nHVAC,40\x0010\n",
        "--map",
        "SERVICE_LINE",
    )
    assert "row 2, column revenue_account: contains a NUL character" in message
    text = json.dumps(
        {
            "format": "crosswalk-rules",
            "format_version": 1,
            "rules": {"maps": {"SERVICE_LINE": {"HVAC": {"revenue_account": "40\u000010"}}}},
        }
    )
    message = refused(drafted, tmp_path, "rules.json", text)
    assert "rules.maps.SERVICE_LINE.HVAC.revenue_account: contains a NUL character" in message


def test_a_json_file_with_the_wrong_format_marker_is_refused(drafted, tmp_path):
    message = refused(drafted, tmp_path, "rules.json", json.dumps({"format": "other", "rules": {}}))
    assert 'format: expected "crosswalk-rules" (got "other")' in message
    message = refused(drafted, tmp_path, "rules.json", json.dumps(draft_content(drafted)))
    assert 'format: expected "crosswalk-rules" (missing)' in message


def test_a_json_syntax_error_is_named_by_line_and_column(drafted, tmp_path):
    message = refused(
        drafted, tmp_path, "rules.json", '{\n  "format": "crosswalk-rules",\n  "rules": {,}\n}\n'
    )
    assert "line 3, column 13: Expecting property name enclosed in double quotes" in message


def test_json_rule_set_errors_are_named_by_their_path_in_the_file(drafted, tmp_path):
    rules = draft_content(drafted)
    rules["maps"]["SERVICE_LINE"]["HVAC"]["revenue_account"] = True
    rules["routing"][0]["priority"] = "high"
    text = json.dumps(
        {"format": "crosswalk-rules", "format_version": 1, "rules": rules, "colour": "red"}
    )
    message = refused(drafted, tmp_path, "rules.json", text)
    assert "colour: unknown field" in message
    assert "rules.maps.SERVICE_LINE.HVAC.revenue_account: expected text" in message
    assert "rules.routing[0].priority: expected a whole number" in message


def test_a_key_given_twice_in_json_is_refused_rather_than_silently_dropped(drafted, tmp_path):
    text = (
        '{"format": "crosswalk-rules", "format_version": 1, "rules": {"maps": {"SERVICE_LINE": '
        '{"HVAC": {"revenue_account": "4010"}, "HVAC": {"revenue_account": "4011"}}}}}'
    )
    message = refused(drafted, tmp_path, "rules.json", text)
    assert "rules.maps.SERVICE_LINE.HVAC: given twice" in message


def test_a_bad_file_makes_the_command_exit_with_a_non_zero_status(
    drafted, tmp_path, capsys, monkeypatch
):
    # run_from_argv closes every database connection when it ends; keep the test's open.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    path = tmp_path / "lines.csv"
    path.write_text("source_value,colour\n")
    before = draft_content(drafted)
    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "rules", "import", "--map", "OFFICE", str(path)])
    assert exit_info.value.code == 1
    assert "row 1, column colour: unknown column" in capsys.readouterr().err
    assert draft_content(drafted) == before


# --- property: any valid map survives CSV ------------------------------------------------------

# No NUL: PostgreSQL cannot store it in a JSON document, so no stored rule set holds one.
_ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
_SOURCE = st.one_of(
    _ANY_TEXT,
    st.sampled_from([" HVAC ", "a,b", 'say "hi"', "7.250", "line\r\nbreak", "Ünïcødé ✓", "="]),
).filter(lambda value: norm(value) != "")
_CODE = _ANY_TEXT.filter(lambda value: value.strip() != "")


@st.composite
def valid_maps(draw):
    kind = draw(st.sampled_from(sorted(MAP_KINDS)))
    targets = list(MAP_KINDS[kind].targets)
    rows, seen = {}, set()
    for source in draw(st.lists(_SOURCE, max_size=8)):
        if norm(source) in seen:
            continue
        seen.add(norm(source))
        names = draw(st.lists(st.sampled_from(targets), min_size=1, unique=True))
        rows[source] = {name: draw(_CODE) for name in names}
    return kind, rows


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(valid_maps())
def test_any_valid_map_round_trips_through_csv_unchanged(generated):
    kind, rows = generated
    # What the rule set keeps: source values and codes trimmed of surrounding spaces.
    expected = parse_ruleset({"maps": {kind: rows}}).to_content()["maps"].get(kind, {})

    text = transfer.map_to_csv(kind=kind, rows=rows)
    assert transfer.map_from_csv(kind=kind, text=text) == expected

    canonical = transfer.map_to_csv(kind=kind, rows=expected)
    assert transfer.map_from_csv(kind=kind, text=canonical.encode("utf-8")) == expected
    assert transfer.map_to_csv(
        kind=kind, rows=transfer.map_from_csv(kind=kind, text=canonical)
    ) == (canonical)


def test_a_map_import_is_audited_as_that_map_with_its_rows_before_and_after(drafted, tmp_path):
    before = draft_content(drafted)["maps"]["TAX_RATE"]
    path = tmp_path / "tax.csv"
    path.write_text("source_value,tax_code\n7.25,NC-7.25\n")
    run("import", "--map", "TAX_RATE", str(path), "--actor", "dana")
    audit = RuleAudit.objects.filter(connection=drafted).latest("id")
    assert (audit.action, audit.subject, audit.actor) == (
        RuleAudit.Action.DRAFT_REPLACED,
        "maps.TAX_RATE",
        "dana",
    )
    assert (audit.before, audit.after) == (before, {"7.25": {"tax_code": "NC-7.25"}})
    assert audit.reason == "Imported tax.csv"
