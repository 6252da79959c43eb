import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mappings import tasks
from mappings.catalog import (
    CatalogImportError,
    catalog_cached,
    catalog_import_csv,
    catalog_refresh,
    catalogs_refresh,
)
from mappings.models import CatalogEntry, RuleAudit, SourceValue
from mappings.validation import ERROR
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.sandbox.models import LedgerAccount
from syncengine.models import Connection
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db

LATER = NOW + timedelta(hours=1)
TAX_CODES_CSV = (
    "code,name,parent,active,accepts_postings,rate\n"
    "NC-7.25,7.2500 %,,yes,,7.2500\n"
    "SC-7.00,7.0000 %,,true,1,7.0000\n"
    "VA-5.30,5.3000 %,,1,yes,5.3000\n"
    "GA-7.00,Georgia 7 %,,TRUE,true,7.0000\n"
    "TN-9.25,9.2500 %,,Yes,,9.2500\n"
    "OH-5.75,Ohio 5.75 %,,no,0,5.75\n"
)


def entry(connection, kind, code, parent=""):
    return CatalogEntry.objects.get(connection=connection, kind=kind, parent=parent, code=code)


def snapshot(connection):
    return sorted(
        CatalogEntry.objects.filter(connection=connection).values_list(
            "kind", "parent", "code", "name", "active", "missing_since", "attributes"
        )
    )


def import_csv(connection, kind, text, **options):
    return catalog_import_csv(
        connection=connection, kind=kind, text=text, actor="test", now=LATER, **options
    )


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- refresh ------------------------------------------------------------------------------------


def test_a_refresh_flags_a_value_the_erp_stopped_listing_and_clears_the_flag_when_it_returns(
    connection,
):
    LedgerAccount.objects.filter(connection=connection, number="5010").delete()
    result = catalog_refresh(connection=connection, actor="test", now=NOW)
    assert (result.added, result.changed, result.missing) == (0, 0, 1)
    assert entry(connection, "ACCOUNT", "5010").missing_since == NOW
    assert not CatalogEntry.objects.exclude(code="5010").filter(missing_since__isnull=False)

    again = catalog_refresh(connection=connection, actor="test", now=LATER)
    assert again.missing == 0  # still missing, not flagged a second time
    assert entry(connection, "ACCOUNT", "5010").missing_since == NOW

    LedgerAccount.objects.create(connection=connection, number="5010", name="Materials Cost",
                                 type="EXPENSE")  # fmt: skip
    back = catalog_refresh(connection=connection, actor="test", now=LATER)
    assert (back.added, back.changed, back.missing) == (0, 1, 0)
    assert entry(connection, "ACCOUNT", "5010").missing_since is None


def test_a_list_the_erp_empties_entirely_is_flagged_missing_value_by_value(connection):
    from syncengine.erps.sandbox.models import LedgerListValue

    catalog_refresh(connection=connection, actor="test", now=NOW)
    employees = CatalogEntry.objects.filter(connection=connection, kind="EMPLOYEE")
    assert employees.count() == 8 and not employees.filter(missing_since__isnull=False)
    LedgerListValue.objects.filter(connection=connection, kind="EMPLOYEE").delete()
    result = catalog_refresh(connection=connection, actor="test", now=LATER)
    assert result.missing == 8
    assert set(employees.values_list("missing_since", flat=True)) == {LATER}


def test_a_refresh_bumps_the_catalog_version_and_the_cached_catalog_follows(connection):
    assert catalog_cached(connection=connection).get("ACCOUNT", "4010").active is True
    before = connection.catalog_version
    LedgerAccount.objects.filter(connection=connection, number="4010").update(active=False)
    catalog_refresh(connection=connection, actor="test", now=NOW)
    connection.refresh_from_db()
    assert connection.catalog_version == before + 1
    assert catalog_cached(connection=connection).get("ACCOUNT", "4010").active is False


def test_a_refresh_is_audited_with_its_counts(connection):
    LedgerAccount.objects.create(connection=connection, number="4070", name="Other", type="INCOME")
    catalog_refresh(connection=connection, actor="user:finance", now=NOW)
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_REFRESHED).latest("id")
    assert (audit.actor, audit.at) == ("user:finance", NOW)
    assert audit.subject == (
        "catalog.ACCOUNT,COST_CODE,DEPARTMENT,DIMENSION,DIMENSION_VALUE,EMPLOYEE,PAY_TYPE,TAX_CODE"
    )
    assert audit.after == {"added": 1, "changed": 0, "missing": 0, "returned": 54}


def test_a_refresh_returns_the_issues_of_the_rules_in_force_when_a_mapped_account_goes_inactive(
    connection,
):
    assert not [i for i in catalog_refresh(connection=connection, actor="t", now=NOW).issues
                if i.severity == ERROR]  # fmt: skip
    LedgerAccount.objects.filter(connection=connection, number="4010").update(active=False)
    result = catalog_refresh(connection=connection, actor="test", now=NOW)
    errors = [(i.code, i.subject, i.message) for i in result.issues if i.severity == ERROR]
    assert errors == [
        (
            "INACTIVE_TARGET",
            "maps.SERVICE_LINE.HVAC.revenue_account",
            "Account 4010 is inactive in the ERP.",
        )
    ]
    # Returned, not stored: the audit row holds the counts only.
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_REFRESHED).latest("id")
    assert set(audit.after) == {"added", "changed", "missing", "returned"}


def test_a_connection_without_rules_in_force_gets_no_issues(connection):
    other = Connection.objects.create(name="No rules yet", slug="no-rules")
    result = import_csv(other, "ACCOUNT", "code\n1200\n")
    assert result.added == 1
    assert result.issues == ()


# --- CSV import ---------------------------------------------------------------------------------


def test_a_csv_import_stores_the_list_with_its_extra_columns_as_attributes(connection):
    result = import_csv(connection, "TAX_CODE", TAX_CODES_CSV, reason="ERP offline this week")
    assert (result.added, result.changed, result.missing, result.returned) == (1, 1, 0, 6)
    ohio = entry(connection, "TAX_CODE", "OH-5.75")
    assert (ohio.name, ohio.active, ohio.accepts_postings) == ("Ohio 5.75 %", False, False)
    assert ohio.attributes == {"rate": "5.75"}
    assert ohio.refreshed_at == LATER
    assert entry(connection, "TAX_CODE", "GA-7.00").name == "Georgia 7 %"  # the one changed
    assert entry(connection, "TAX_CODE", "NC-7.25").attributes == {"rate": "7.2500"}
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_IMPORTED).get()
    assert (audit.subject, audit.reason, audit.actor) == (
        "catalog.TAX_CODE",
        "ERP offline this week",
        "test",
    )
    assert audit.after == {"added": 1, "changed": 1, "missing": 0, "returned": 6}


def test_a_csv_import_accepts_any_column_order_a_byte_order_mark_and_crlf_line_ends(connection):
    accounts = CatalogEntry.objects.filter(connection=connection, kind="ACCOUNT")
    text = "\ufeffName,CODE,active\r\nNew revenue,4090,no\r\n\r\n"
    text += "".join(f'"{account.name}",{account.code},yes\r\n' for account in accounts)
    result = import_csv(connection, "account", text)
    # The file replaces the list: the refreshed accounts lose the `type` the file does not give.
    assert (result.added, result.changed, result.missing) == (1, 12, 0)
    assert entry(connection, "ACCOUNT", "1200").attributes == {}
    new = entry(connection, "ACCOUNT", "4090")
    assert (new.name, new.active, new.accepts_postings, new.attributes) == (
        "New revenue",
        False,
        True,
        {},
    )


def test_a_csv_import_flags_values_absent_from_the_file_and_reports_rules_pointing_at_them(
    connection,
):
    result = import_csv(connection, "TAX_CODE", "code,name,rate\nNC-7.25,7.25 %,7.25\n")
    assert result.missing == 4
    assert entry(connection, "TAX_CODE", "TN-9.25").missing_since == LATER
    gone = sorted((i.subject, i.message) for i in result.issues if i.code == "GONE_TARGET")
    assert gone == [
        ("maps.TAX_RATE.5.30.tax_code", "Tax code VA-5.30 is no longer in the ERP."),
        ("maps.TAX_RATE.7.00.tax_code", "Tax code SC-7.00 is no longer in the ERP."),
        ("maps.TAX_RATE.9.25.tax_code", "Tax code TN-9.25 is no longer in the ERP."),
    ]


def test_importing_one_kind_never_flags_other_kinds_missing(connection):
    import_csv(connection, "DIMENSION_VALUE", "code,parent,name\nHVAC,DEPARTMENT,HVAC\n")
    flagged = CatalogEntry.objects.filter(connection=connection, missing_since__isnull=False)
    assert set(flagged.values_list("kind", flat=True)) == {"DIMENSION_VALUE"}
    assert flagged.count() == 10  # 6 departments + 5 branches − the one in the file
    assert not flagged.filter(kind="DIMENSION_VALUE", parent="DEPARTMENT", code="HVAC")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "code,active\nA1,yes\nA2,maybe\n",
            "Row 3, column active: 'maybe' is not a yes/no value; use true/false, yes/no or 1/0 "
            "(empty means true).",
        ),
        (
            "code,accepts_postings\nA1,nope\n",
            "Row 2, column accepts_postings: 'nope' is not a yes/no value; use true/false, "
            "yes/no or 1/0 (empty means true).",
        ),
        ("code,name\nA1,One\n,Two\n", "Row 3, column code: required."),
        (
            "code,name\nA1,One\n\nA1,Again\n",
            "Row 4, column code: A1 appears twice (first on row 2).",
        ),
        (
            "4010,Revenue\n4020,Other\n",
            "Row 1, column code: no code column. The first row must be the header naming the "
            "columns code,name,parent,active,accepts_postings (only code is required), plus any "
            "extra columns, which are kept as attributes.",
        ),
        ("code,name\nA1,One,extra\n", "Row 2, column 3: a value beyond the header's 2 column(s)."),
        ("code,name,code\nA1,One,A1\n", "Row 1, column code: the column appears twice."),
        ("code,,name\nA1,x,One\n", "Row 1, column 2: the column has values but no name."),
        (
            "code,parent\nA1,DEPARTMENT\n",
            "Row 2, column parent: only dimension values have a parent; leave it empty for "
            "ACCOUNT.",
        ),
        ("code,name\nA1," + "n" * 201 + "\n", "Row 2, column name: longer than 200 characters."),
        ("code,name\nA\x001,One\n", "Row 2, column code: contains a NUL character."),
    ],
)
def test_every_csv_error_names_its_row_and_column_and_nothing_is_stored(connection, text, error):
    before, version = snapshot(connection), connection.catalog_version
    with pytest.raises(CatalogImportError) as refused:
        import_csv(connection, "ACCOUNT", text)
    assert refused.value.errors == [error]
    connection.refresh_from_db()
    assert (snapshot(connection), connection.catalog_version) == (before, version)
    assert not RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_IMPORTED).exists()


def test_a_dimension_value_without_its_dimension_is_refused(connection):
    with pytest.raises(CatalogImportError) as refused:
        import_csv(connection, "DIMENSION_VALUE", "code,parent\nHVAC,DEPARTMENT\nRAL,\n")
    assert refused.value.errors == [
        "Row 3, column parent: required for a dimension value (the dimension code)."
    ]


def test_a_file_with_good_and_bad_rows_stores_none_of_them_and_lists_every_problem(connection):
    text = "code,name,active\n9001,Good,yes\n9002,Bad,perhaps\n,Nameless,no\n9003,Good,\n"
    with pytest.raises(CatalogImportError) as refused:
        import_csv(connection, "ACCOUNT", text)
    assert refused.value.errors == [
        "Row 3, column active: 'perhaps' is not a yes/no value; use true/false, yes/no or 1/0 "
        "(empty means true).",
        "Row 4, column code: required.",
    ]
    assert not CatalogEntry.objects.filter(code__in=["9001", "9003"]).exists()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "Row 1: the file is empty"),
        ("\n\n", "Row 1: the file is empty"),
        ("code,name\n", "Row 2: the file has a header but no values"),
        ('code,name\nA1,One\nA2,"Tw"o\n', "Row 3: not valid CSV"),
    ],
)
def test_an_empty_or_unreadable_file_is_refused_with_the_row_it_stops_at(connection, text, error):
    with pytest.raises(CatalogImportError) as refused:
        import_csv(connection, "ACCOUNT", text)
    assert refused.value.errors[0].startswith(error)
    assert not CatalogEntry.objects.filter(missing_since__isnull=False).exists()


def test_an_unknown_kind_is_refused_with_the_list_of_kinds(connection):
    with pytest.raises(CatalogImportError, match=r"Unknown catalog kind 'ACCOUNTS'; kinds are "
                       r"ACCOUNT, DIMENSION, DIMENSION_VALUE, TAX_CODE"):  # fmt: skip
        import_csv(connection, "ACCOUNTS", "code\n1200\n")


# --- the scheduled refresh ----------------------------------------------------------------------


class _Unreachable:
    def __init__(self, error):
        self.error = error

    def catalog_lists(self):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ConnectorError("ERP unreachable", category=FailureCategory.CONNECTION, transient=True),
        RuntimeError("a bug"),
    ],
)
def test_the_scheduled_refresh_refreshes_every_connection_and_survives_one_that_fails(
    connection, monkeypatch, caplog, error
):
    from syncengine.erps import registry

    broken = Connection.objects.create(name="Offline ERP", slug="offline")
    second = Connection.objects.create(name="Second", slug="second")
    LedgerAccount.objects.create(connection=second, number="1200", name="AR", type="ASSET")
    real = registry.connector_for

    def connector_for(target):
        return _Unreachable(error) if target.pk == broken.pk else real(target)

    monkeypatch.setattr(registry, "connector_for", connector_for)
    versions = {c.slug: c.catalog_version for c in Connection.objects.all()}
    with caplog.at_level(logging.INFO, logger="mappings.catalog"):
        tasks.catalogs_refresh()
    after = {c.slug: c.catalog_version for c in Connection.objects.all()}
    assert after == {"demo": versions["demo"] + 1, "offline": 0, "second": 1}
    assert entry(second, "ACCOUNT", "1200").name == "AR"
    audits = RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_REFRESHED, actor="schedule")
    assert sorted(a.connection.slug for a in audits) == ["demo", "second"]
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in failures] == [
        "Catalog refresh of offline failed: ERP unreachable"
        if isinstance(error, ConnectorError)
        else "Catalog refresh of offline failed unexpectedly"
    ]


class _Recording:
    """The sandbox's lists, noting what each read asked for; asked for changes, it answers
    only account 4010 (as an ERP would answer only what changed)."""

    def __init__(self, connection):
        from syncengine.erps.sandbox.client import SandboxLedger

        self.ledger = SandboxLedger(connection=connection)
        self.asked: list = []

    def catalog_lists(self, *, changed_since=None):
        self.asked.append(changed_since)
        items = self.ledger.catalog_lists()
        return [i for i in items if i.code == "4010"] if changed_since is not None else items


@pytest.fixture
def recording(connection, monkeypatch):
    from syncengine.erps import registry

    recording, real = _Recording(connection), registry.connector_for

    def connector_for(target):
        return recording if target.pk == connection.pk else real(target)

    monkeypatch.setattr(registry, "connector_for", connector_for)
    return recording


def scheduled(at):
    [outcome] = [o for o in catalogs_refresh(actor="schedule", now=lambda: at)
                 if o.connection.slug == "demo"]  # fmt: skip
    return outcome.result


def test_a_scheduled_refresh_reads_only_what_changed_since_the_last_refresh(connection, recording):
    catalog_refresh(connection=connection, actor="test", now=NOW)
    LedgerAccount.objects.filter(connection=connection, number="4010").update(name="Labor (new)")
    LedgerAccount.objects.filter(connection=connection, number="5010").delete()
    result = scheduled(LATER)
    since = NOW - timedelta(minutes=5)
    assert recording.asked == [None, since]
    assert (result.changed_since, result.returned, result.changed, result.missing) == (
        since, 1, 1, 0,
    )  # fmt: skip
    assert entry(connection, "ACCOUNT", "4010").name == "Labor (new)"
    # A read of changes cannot see what the ERP deleted: nothing is flagged from it.
    assert entry(connection, "ACCOUNT", "5010").missing_since is None
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_REFRESHED).latest("id")
    assert (audit.actor, audit.after["changes_since"]) == ("schedule", since.isoformat())


def test_the_schedule_reads_every_list_whole_once_the_last_whole_read_is_a_day_old(
    connection, recording
):
    catalog_refresh(connection=connection, actor="test", now=NOW)
    scheduled(NOW + timedelta(hours=1))
    scheduled(NOW + timedelta(hours=23))
    LedgerAccount.objects.filter(connection=connection, number="5010").delete()
    day_later = NOW + timedelta(days=1, minutes=1)
    result = scheduled(day_later)
    five = timedelta(minutes=5)
    assert recording.asked == [None, NOW - five, NOW + timedelta(hours=1) - five, None]
    assert result.changed_since is None and result.missing == 1
    assert entry(connection, "ACCOUNT", "5010").missing_since == day_later


def test_a_first_scheduled_refresh_and_every_refresh_on_demand_read_every_list(
    connection, recording
):
    scheduled(NOW)
    catalog_refresh(connection=connection, actor="test", now=LATER)
    catalog_refresh(connection=connection, actor="test", now=LATER + timedelta(minutes=1))
    assert recording.asked == [None, None, None]


def test_the_scheduled_refresh_has_a_soft_time_limit_below_its_hard_one():
    assert tasks.catalogs_refresh.soft_time_limit < tasks.catalogs_refresh.time_limit
    assert tasks.catalogs_refresh.queue == "celery"
    assert tasks.catalogs_refresh.ignore_result is True


# --- the command --------------------------------------------------------------------------------


def test_the_refresh_command_prints_the_counts_and_the_rule_issues(connection):
    LedgerAccount.objects.filter(connection=connection, number="4010").update(active=False)
    out, err = run("catalog", "refresh", "--connection", "demo")
    lines = out.splitlines()
    assert lines[0] == (
        "Catalog of demo refreshed: 53 value(s) listed, 0 added, 1 changed, 0 now missing, "
        "1 rule issue(s)."
    )
    assert lines[1] == (
        "  ERROR maps.SERVICE_LINE.HVAC.revenue_account: Account 4010 is inactive in the ERP."
    )
    assert err == ""


def test_the_refresh_command_explains_an_unreachable_erp(connection, monkeypatch):
    from syncengine.erps import registry

    error = ConnectorError("connection refused", category="CONNECTION", transient=True)
    monkeypatch.setattr(registry, "connector_for", lambda target: _Unreachable(error))
    with pytest.raises(
        CommandError, match="Could not read the catalog of demo: connection refused"
    ):
        run("catalog", "refresh")


def test_the_import_command_imports_a_file_and_reports_what_changed(connection, tmp_path):
    path = tmp_path / "tax codes.csv"
    path.write_text(TAX_CODES_CSV, encoding="utf-8")
    out, _ = run("catalog", "import", "--kind", "TAX_CODE", str(path), "--reason", "offline")
    assert out.splitlines()[0] == (
        "TAX_CODE list of demo imported from tax codes.csv: 6 value(s) listed, 1 added, "
        "1 changed, 0 now missing, 0 rule issue(s)."
    )
    assert RuleAudit.objects.get(action=RuleAudit.Action.CATALOG_IMPORTED).reason == "offline"


def test_the_import_command_prints_each_problem_to_stderr_and_stores_nothing(connection, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("code,active\n9001,yes\n9002,maybe\n", encoding="utf-8")
    err = StringIO()
    with pytest.raises(CommandError, match="Nothing imported: 1 problem"):
        call_command("catalog", "import", "--kind", "ACCOUNT", str(path), stdout=StringIO(),
                     stderr=err)  # fmt: skip
    assert err.getvalue().startswith(f"{path}: Row 3, column active: 'maybe' is not a yes/no")
    assert not CatalogEntry.objects.filter(code="9001").exists()


def test_the_import_command_refuses_an_unknown_kind_or_a_missing_file(connection, tmp_path):
    with pytest.raises(CommandError, match="Unknown catalog kind 'GL'"):
        run("catalog", "import", "--kind", "GL", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="Cannot read .*x.csv: No such file"):
        run("catalog", "import", "--kind", "ACCOUNT", str(tmp_path / "x.csv"))


# --- source values ------------------------------------------------------------------------------


def test_source_values_count_each_new_document_once_and_a_redelivery_updates_last_seen(
    connection,
):
    ingest(connection, envelope(), now=NOW)
    office = SourceValue.objects.get(connection=connection, attribute="office")
    line = SourceValue.objects.get(connection=connection, attribute="service_line")
    # Two items carry HVAC / part: still one document.
    assert (office.value, office.documents) == ("Raleigh", 1)
    assert line.documents == 1
    assert SourceValue.objects.get(attribute="item_type", key="part").documents == 1

    ingest(connection, envelope(invoiceNumber="10482-A"), now=LATER)  # same invoice, changed
    office.refresh_from_db()
    assert (office.documents, office.first_seen_at, office.last_seen_at) == (1, NOW, LATER)

    ingest(connection, envelope(id=4243, invoiceNumber="10483"), now=LATER + timedelta(hours=1))
    office.refresh_from_db()
    assert (office.documents, office.last_seen_at) == (2, LATER + timedelta(hours=1))


def test_source_values_compare_normalised_and_keep_the_first_spelling(connection):
    ingest(connection, envelope(), now=NOW)
    ingest(connection, envelope(id=4243, office={"id": 1, "name": "  RALEIGH "}), now=LATER)
    office = SourceValue.objects.get(connection=connection, attribute="office")
    assert (office.value, office.key, office.documents) == ("Raleigh", "raleigh", 2)
