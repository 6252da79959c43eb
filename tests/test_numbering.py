from datetime import date, timedelta

import pytest
from django.db import IntegrityError, transaction

from mappings import services as rules
from mappings.models import CatalogEntry, IssuedCode, NumberingCounter, RuleAudit
from mappings.numbering import (
    NoNumberingRule,
    NumberingError,
    NumberingExhausted,
    code_issue,
    code_issue_from_rules,
)
from mappings.ruleset import NumberingRule
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

CUSTOMERS = NumberingRule(entity="CUSTOMER", prefix="C", start=1000, end=9999, width=5)


def issue(connection, source_ref, rule=CUSTOMERS, now=NOW):
    return code_issue(
        connection=connection,
        entity=rule.entity,
        source_ref=source_ref,
        rule=rule,
        actor="test",
        now=now,
    )


def test_codes_are_issued_in_sequence_from_the_start_of_the_range_padded_to_the_width(
    connection,
):
    assert [issue(connection, f"st-{n}") for n in range(3)] == ["C01000", "C01001", "C01002"]
    assert NumberingCounter.objects.get(connection=connection, entity="CUSTOMER").last_value == 1002


def test_a_width_of_zero_means_no_padding_and_a_number_wider_than_the_width_is_not_cut(
    connection,
):
    jobs = NumberingRule(entity="JOB", prefix="J-", start=7, end=12, width=0)
    sites = NumberingRule(entity="SITE", prefix="S", start=123, end=200, width=2)
    assert [issue(connection, f"job-{n}", jobs) for n in range(4)] == ["J-7", "J-8", "J-9", "J-10"]
    assert issue(connection, "site-1", sites) == "S123"


def test_each_entity_counts_on_its_own(connection):
    sites = NumberingRule(entity="SITE", prefix="S", start=1, end=99, width=3)
    assert issue(connection, "501") == "C01000"
    assert issue(connection, "501", sites) == "S001"  # the same source id, another entity
    assert issue(connection, "502") == "C01001"


def test_the_same_source_record_always_gets_the_code_it_was_issued(connection):
    first = issue(connection, "customer-501")
    issue(connection, "customer-502")
    assert issue(connection, "customer-501", now=NOW + timedelta(days=1)) == first == "C01000"
    assert issue(connection, "  customer-501 ") == first
    assert IssuedCode.objects.filter(connection=connection).count() == 2
    assert RuleAudit.objects.filter(action=RuleAudit.Action.CODE_ISSUED).count() == 2


def test_codes_issued_before_or_imported_are_skipped(connection):
    for code, ref in [("C01000", "imported-1"), ("C01001", "imported-2"), ("C01003", "imported-3")]:
        IssuedCode.objects.create(connection=connection, entity="CUSTOMER", code=code,
                                  source_ref=ref, issued_at=NOW, issued_by="import")  # fmt: skip
    assert [issue(connection, f"st-{n}") for n in range(3)] == ["C01002", "C01004", "C01005"]


def test_customer_codes_the_erp_already_lists_are_skipped(connection):
    CatalogEntry.objects.create(connection=connection, kind="CUSTOMER", code="C01000",
                                name="Made by hand in the ERP", refreshed_at=NOW)  # fmt: skip
    assert issue(connection, "st-1") == "C01001"


def test_a_range_changed_to_new_numbers_starts_at_its_start(connection):
    assert issue(connection, "st-1") == "C01000"
    moved = NumberingRule(entity="CUSTOMER", prefix="K", start=50, end=99, width=3)
    assert issue(connection, "st-2", moved) == "K050"
    assert issue(connection, "st-3", moved) == "K051"


def test_a_used_up_range_raises_a_clear_error_and_issues_nothing(connection):
    small = NumberingRule(entity="SITE", prefix="S", start=1, end=3, width=2)
    IssuedCode.objects.create(connection=connection, entity="SITE", code="S02",
                              source_ref="imported", issued_at=NOW, issued_by="import")  # fmt: skip
    assert [issue(connection, "a", small), issue(connection, "b", small)] == ["S01", "S03"]
    with pytest.raises(NumberingExhausted) as exhausted:
        issue(connection, "c", small)
    assert str(exhausted.value) == (
        "Every SITE code from S01 to S03 (1–3) has been issued: widen the SITE numbering range "
        "or give it a new prefix, and publish."
    )
    assert not IssuedCode.objects.filter(source_ref="c").exists()
    assert issue(connection, "a", small) == "S01"  # issued codes are still found


def test_issuing_a_code_is_audited_with_the_code_the_record_and_the_rule(connection):
    issue(connection, "customer-501")
    audit = RuleAudit.objects.get(action=RuleAudit.Action.CODE_ISSUED)
    assert (audit.connection, audit.actor, audit.at, audit.subject) == (
        connection,
        "test",
        NOW,
        "numbering.CUSTOMER.C01000",
    )
    assert audit.after == {
        "code": "C01000",
        "source_ref": "customer-501",
        "number": 1000,
        "rule": {"prefix": "C", "start": 1000, "end": 9999, "width": 5},
    }
    issued = IssuedCode.objects.get()
    assert (issued.code, issued.source_ref, issued.issued_at, issued.issued_by) == (
        "C01000",
        "customer-501",
        NOW,
        "test",
    )


def test_the_database_refuses_a_code_or_a_source_record_issued_twice(connection):
    issue(connection, "customer-501")
    for code, ref in [("C01000", "customer-999"), ("C09999", "customer-501")]:
        with pytest.raises(IntegrityError), transaction.atomic():
            IssuedCode.objects.create(connection=connection, entity="CUSTOMER", code=code,
                                      source_ref=ref, issued_at=NOW, issued_by="x")  # fmt: skip


def test_a_rule_for_another_entity_or_an_empty_source_reference_is_refused(connection):
    with pytest.raises(NumberingError, match="The numbering rule given is for CUSTOMER, not JOB"):
        code_issue(connection=connection, entity="JOB", source_ref="1", rule=CUSTOMERS,
                   actor="test", now=NOW)  # fmt: skip
    with pytest.raises(NumberingError, match="A CUSTOMER code needs the source record"):
        issue(connection, "  ")


# --- from the rules in force --------------------------------------------------------------------


def publish_numbering(connection, items, effective_from=date(2026, 1, 1)):
    rules.draft_section_set(connection=connection, section="numbering", items=items,
                            actor="test", now=NOW)  # fmt: skip
    return rules.draft_publish(connection=connection, effective_from=effective_from,
                               reason="Numbering", actor="test", now=NOW)  # fmt: skip


def test_codes_come_from_the_numbering_rule_of_the_version_in_force(connection):
    publish_numbering(connection, [
        {"entity": "CUSTOMER", "prefix": "CU", "start": 1, "end": 999, "width": 4},
    ])  # fmt: skip
    code = code_issue_from_rules(connection=connection, entity="CUSTOMER", source_ref="501",
                                 actor="test", now=NOW)  # fmt: skip
    assert code == "CU0001"


def test_a_rule_published_for_a_later_date_is_not_used_yet(connection):
    publish_numbering(connection, [
        {"entity": "CUSTOMER", "prefix": "CU", "start": 1, "end": 999, "width": 4},
    ], effective_from=date(2027, 1, 1))  # fmt: skip
    with pytest.raises(NoNumberingRule) as missing:
        code_issue_from_rules(connection=connection, entity="CUSTOMER", source_ref="501",
                              actor="test", now=NOW)  # fmt: skip
    assert str(missing.value) == (
        "The rules in force (version 1) have no numbering rule for CUSTOMER: add one under "
        "numbering and publish."
    )


def test_an_entity_without_a_numbering_rule_or_that_is_never_numbered_is_refused(connection):
    publish_numbering(connection, [
        {"entity": "CUSTOMER", "prefix": "CU", "start": 1, "end": 999, "width": 4},
    ])  # fmt: skip
    with pytest.raises(NoNumberingRule, match="version 2.*no numbering rule for JOB"):
        code_issue_from_rules(connection=connection, entity="JOB", source_ref="7001",
                              actor="test", now=NOW)  # fmt: skip
    with pytest.raises(NumberingError, match="'INVOICE' is not numbered; numbered entities are "
                       "CUSTOMER, SITE, JOB"):  # fmt: skip
        code_issue_from_rules(connection=connection, entity="INVOICE", source_ref="1",
                              actor="test", now=NOW)  # fmt: skip
    assert not IssuedCode.objects.exists()


def test_without_any_rules_in_force_the_error_says_so(connection):
    with pytest.raises(NoNumberingRule, match="No posting rules are in force on 2024-06-01"):
        code_issue_from_rules(connection=connection, entity="CUSTOMER", source_ref="1",
                              actor="test", now=NOW.replace(year=2024, month=6, day=1))  # fmt: skip
