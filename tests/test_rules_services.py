"""Drafts, publishing, versions, rollback and the audit trail of the posting rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import DatabaseError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings import services
from mappings.catalog import catalog_refresh
from mappings.models import RuleAudit, RuleDraft, RuleVersion
from syncengine.erps.sandbox.models import LedgerAccount
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
FINANCE = "user:finance"


def set_hvac(connection, account="4020", reason=""):
    return services.draft_map_row_set(
        connection=connection, map_kind="SERVICE_LINE", source_value="HVAC",
        targets={"revenue_account": account, "cost_code": "100"}, actor=FINANCE, now=NOW,
        reason=reason,
    )  # fmt: skip


def publish(connection, reason="Move HVAC revenue", effective_from=date(2026, 1, 1)):
    return services.draft_publish(
        connection=connection, effective_from=effective_from, reason=reason, actor=FINANCE, now=NOW
    )


def test_a_first_edit_starts_a_draft_from_the_latest_version(connection):
    set_hvac(connection)
    draft = RuleDraft.objects.get(connection=connection)
    assert draft.base_version.number == 1
    assert draft.content["maps"]["SERVICE_LINE"]["HVAC"] == {
        "cost_code": "100",
        "revenue_account": "4020",
    }
    assert draft.content["maps"]["TAX_RATE"]  # the rest of version 1 is kept


def test_every_edit_is_audited_with_who_when_before_after_and_why(connection):
    set_hvac(connection, reason="HVAC moves to the fire sprinkler line of business")
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.MAP_ROW_SET).get()
    assert (audit.actor, audit.at, audit.subject) == (FINANCE, NOW, "maps.SERVICE_LINE.HVAC")
    assert audit.before == {"revenue_account": "4010", "cost_code": "100"}
    assert audit.after == {"revenue_account": "4020", "cost_code": "100"}
    assert audit.reason == "HVAC moves to the fire sprinkler line of business"


def test_source_values_match_however_they_are_typed(connection):
    services.draft_map_row_set(connection=connection, map_kind="SERVICE_LINE",
                               source_value="  hvac ", targets={"revenue_account": "4020"},
                               actor=FINANCE, now=NOW)  # fmt: skip
    rows = RuleDraft.objects.get().content["maps"]["SERVICE_LINE"]
    assert "HVAC" not in rows and rows["hvac"] == {"revenue_account": "4020"}
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.MAP_ROW_SET).get()
    assert audit.before == {"revenue_account": "4010", "cost_code": "100"}


def test_bad_edits_are_refused_and_change_nothing(connection):
    with pytest.raises(services.RulesError, match="Unknown map 'GADGETS'"):
        services.draft_map_row_set(connection=connection, map_kind="GADGETS", source_value="x",
                                   targets={"a": "b"}, actor=FINANCE, now=NOW)  # fmt: skip
    with pytest.raises(services.RulesError, match="unknown field"):
        services.draft_map_row_set(connection=connection, map_kind="SERVICE_LINE",
                                   source_value="HVAC", targets={"colour": "red"}, actor=FINANCE,
                                   now=NOW)  # fmt: skip
    assert not RuleAudit.objects.filter(action=RuleAudit.Action.MAP_ROW_SET).exists()


def test_publishing_freezes_the_draft_as_the_next_numbered_version(connection):
    set_hvac(connection)
    version = publish(connection)
    assert (version.number, version.effective_from, version.published_by) == (
        2,
        date(2026, 1, 1),
        FINANCE,
    )
    assert version.content["maps"]["SERVICE_LINE"]["HVAC"]["revenue_account"] == "4020"
    assert not RuleDraft.objects.filter(connection=connection).exists()
    assert RuleAudit.objects.get(action=RuleAudit.Action.PUBLISHED, subject="version.2").reason == (
        "Move HVAC revenue"
    )


def test_publishing_needs_a_reason_and_a_draft(connection):
    with pytest.raises(services.RulesError, match="There is no draft"):
        publish(connection)
    set_hvac(connection)
    with pytest.raises(services.RulesError, match="needs a reason"):
        publish(connection, reason="  ")


def test_a_draft_pointing_at_an_account_the_erp_lacks_cannot_be_published(connection):
    set_hvac(connection, account="9999")
    with pytest.raises(services.PublishRefused) as refused:
        publish(connection)
    assert refused.value.issues[0].message == "Account 9999 does not exist in the ERP."
    assert RuleVersion.objects.filter(connection=connection).count() == 1


def test_an_account_that_went_inactive_in_the_erp_blocks_publishing(connection):
    LedgerAccount.objects.filter(number="4020").update(active=False)
    catalog_refresh(connection=connection, actor="test", now=NOW)
    set_hvac(connection, account="4020")
    with pytest.raises(services.PublishRefused, match="Account 4020 is inactive in the ERP"):
        publish(connection)


def test_the_version_in_force_depends_on_the_document_date(connection):
    set_hvac(connection)
    publish(connection, effective_from=date(2026, 3, 1))
    assert services.rules_in_force(connection=connection, on=date(2026, 2, 28)).version.number == 1
    assert services.rules_in_force(connection=connection, on=date(2026, 3, 1)).version.number == 2
    assert services.rules_in_force(connection=connection, on=date(2024, 12, 31)) is None


def test_a_later_correction_with_the_same_effective_date_wins(connection):
    set_hvac(connection, account="4020")
    publish(connection, effective_from=date(2026, 3, 1))
    set_hvac(connection, account="4030")
    publish(connection, reason="Correct the HVAC account", effective_from=date(2026, 3, 1))
    in_force = services.rules_in_force(connection=connection, on=date(2026, 6, 1))
    assert in_force.version.number == 3
    assert in_force.version.content["maps"]["SERVICE_LINE"]["HVAC"]["revenue_account"] == "4030"


def test_rollback_republishes_an_earlier_version_as_a_new_one(connection):
    set_hvac(connection)
    publish(connection)
    version = services.version_rollback(
        connection=connection,
        number=1,
        effective_from=date(2026, 2, 1),
        reason="The move was premature",
        actor=FINANCE,
        now=NOW,
    )
    first = RuleVersion.objects.get(connection=connection, number=1)
    assert (version.number, version.rolled_back_from) == (3, 1)
    assert version.content == first.content and version.content_hash == first.content_hash
    assert RuleAudit.objects.filter(action=RuleAudit.Action.ROLLED_BACK).get().before == {
        "version": 1
    }


def test_published_versions_and_the_audit_trail_cannot_be_changed(connection):
    version = RuleVersion.objects.get(connection=connection, number=1)
    for attempt in (
        lambda: RuleVersion.objects.filter(pk=version.pk).update(reason="rewritten"),
        lambda: RuleVersion.objects.filter(pk=version.pk).delete(),
        lambda: RuleAudit.objects.update(actor="mallory"),
        lambda: RuleAudit.objects.all().delete(),
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            attempt()
    assert RuleVersion.objects.get(pk=version.pk).reason.startswith("Demo rules")


def test_routing_rule_ids_are_never_reused(connection):
    services.draft_routing_rule_delete(connection=connection, rule_id=1, actor=FINANCE, now=NOW)
    publish(connection, reason="Drop the HVAC parts rule")
    draft = services.draft_routing_rule_set(
        connection=connection, conditions={"office": "Raleigh"}, account="4020",
        actor=FINANCE, now=NOW,
    )  # fmt: skip
    assert [rule["id"] for rule in draft.content["routing"]] == [2]


def test_discarding_a_draft_is_audited_with_its_content(connection):
    set_hvac(connection)
    services.draft_discard(connection=connection, actor=FINANCE, now=NOW, reason="Start over")
    audit = RuleAudit.objects.filter(action=RuleAudit.Action.DRAFT_DISCARDED).get()
    assert audit.before["maps"]["SERVICE_LINE"]["HVAC"]["revenue_account"] == "4020"
    assert not RuleDraft.objects.exists()


def test_draft_validation_warns_about_recent_source_values_nobody_mapped(connection):
    from tests.conftest import envelope, ingest

    items = [{"id": 1, "itemType": "labor", "quantity": "1", "price": "80",
              "serviceLine": {"name": "Elevators"}}]  # fmt: skip
    ingest(connection, envelope(items=items))
    set_hvac(connection)
    issues = services.draft_validate(connection=connection, now=NOW)
    warnings = [issue for issue in issues if issue.code == "UNMAPPED_SOURCE_VALUE"]
    assert [(w.severity, w.documents) for w in warnings] == [("WARNING", 1)]
    assert "'Elevators'" in warnings[0].message


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(["4010", "4020", "4030", "4040", "4050"]), min_size=1, max_size=4))
def test_a_published_version_never_changes_whatever_is_edited_afterwards(connection, accounts):
    version = RuleVersion.objects.order_by("-number").filter(connection=connection).first()
    frozen = (version.content, version.content_hash)
    for index, account in enumerate(accounts):
        set_hvac(connection, account=account)
        if index % 2:
            publish(connection, effective_from=date(2026, 1, 1) + timedelta(days=index))
    version.refresh_from_db()
    assert (version.content, version.content_hash) == frozen
    assert version.content_hash == services.content_hash(version.content)
