"""An approved invoice edited after it posted is flagged with a diff and waits for a person:
void and reissue (a credit memo for the posted version, then the new version under a new key) or
ignore (the posted document stays; who and why are kept). Never dropped, never re-posted blind."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from syncengine import services
from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import Operation, PostedChange, SyncRecord, SyncState
from syncengine.reconcile import reconciliation_run
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db
EDITED_AT = NOW + timedelta(days=1)
DECIDED_AT = NOW + timedelta(days=2)
MORE = [{"id": 1, "itemType": "labor", "quantity": "3", "price": "110.00", "taxable": False}]
# 330.00, no tax


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


@pytest.fixture
def edited(connection):
    """Invoice 10482 posted at 414.74, then edited in ServiceTrade to 330.00."""
    ingest(connection, envelope())
    post_due()
    ingest(connection, envelope(items=MORE, taxRate=0), now=EDITED_AT)
    return SyncRecord.objects.get(operation=Operation.CREATE)


def test_an_invoice_edited_after_posting_waits_for_a_person_with_the_diff(edited):
    change = PostedChange.objects.get()
    assert change.decision == PostedChange.Decision.PENDING
    assert (change.total_before, change.total_after) == (Decimal("414.74"), Decimal("330.00"))
    assert change.difference == Decimal("-84.74")
    assert {row["field"] for row in change.changes} >= {"lines", "lines_total", "tax_amount"}
    assert edited.state == SyncState.POSTED
    assert "Waiting for a person to void and reissue it, or ignore it" in (
        edited.events.last().detail
    )
    assert post_due(EDITED_AT) == 0 and LedgerInvoice.objects.count() == 1


def test_a_second_edit_updates_the_pending_change_against_what_is_posted(connection, edited):
    ingest(connection, envelope(items=MORE, taxRate=0, invoiceNumber="10482-B"), now=DECIDED_AT)
    change = PostedChange.objects.get()
    assert change.total_before == Decimal("414.74")
    assert change.after["number"] == "10482-B"


def test_ignoring_keeps_the_posted_document_and_records_who_and_why(edited):
    services.sync_record_change_ignore(record=edited, actor="ada", now=DECIDED_AT,
                                       reason="Price fix agreed by phone")  # fmt: skip
    change = PostedChange.objects.get()
    assert (change.decision, change.decided_by, change.reason) == (
        PostedChange.Decision.IGNORED, "ada", "Price fix agreed by phone",
    )  # fmt: skip
    assert post_due(DECIDED_AT) == 0 and LedgerInvoice.objects.count() == 1
    assert edited.events.last().actor == "ada"


def test_ignoring_without_a_reason_is_refused(edited):
    with pytest.raises(ValueError, match="needs a reason"):
        services.sync_record_change_ignore(record=edited, actor="ada", now=DECIDED_AT, reason=" ")
    assert PostedChange.objects.get().decision == PostedChange.Decision.PENDING


def test_void_and_reissue_credits_the_posted_version_then_posts_the_new_one(connection, edited):
    services.sync_record_change_reissue(record=edited, actor="ada", now=DECIDED_AT)
    assert post_due(DECIDED_AT) == 2
    credit = SyncRecord.objects.get(operation=Operation.REVERSAL_CREDIT_MEMO)
    reissue = SyncRecord.objects.get(operation=Operation.REISSUE)
    assert (credit.state, reissue.state) == (SyncState.POSTED, SyncState.POSTED)
    assert (credit.idempotency_key, reissue.idempotency_key) == ("ST-RV1-4242", "ST-RI1-4242")
    original = LedgerInvoice.objects.get(external_document_number="ST-INV-4242")
    memo = LedgerInvoice.objects.get(external_document_number="ST-RV1-4242")
    new = LedgerInvoice.objects.get(external_document_number="ST-RI1-4242")
    assert (memo.applies_to, memo.amount, new.amount) == (
        original, Decimal("414.74"), Decimal("330.00"),
    )  # fmt: skip
    run = reconciliation_run(connection=connection, actor="test", now=DECIDED_AT)
    assert run.counts == {} and run.difference == Decimal("0.00")


def test_the_reissue_waits_until_its_credit_memo_is_in(connection, edited):
    services.sync_record_change_reissue(record=edited, actor="ada", now=DECIDED_AT)
    reissue = SyncRecord.objects.get(operation=Operation.REISSUE)
    services.sync_record_post(record_id=reissue.pk, now=lambda: DECIDED_AT)
    reissue.refresh_from_db()
    assert (reissue.state, reissue.failure_category) == (
        SyncState.RETRY_SCHEDULED, "PREREQUISITE",
    )  # fmt: skip
    assert not LedgerInvoice.objects.filter(external_document_number="ST-RI1-4242").exists()


def test_a_later_edit_and_a_void_act_on_the_reissued_document(connection, edited):
    services.sync_record_change_reissue(record=edited, actor="ada", now=DECIDED_AT)
    post_due(DECIDED_AT)
    later = DECIDED_AT + timedelta(days=1)
    ingest(connection, envelope(items=MORE, taxRate=0, invoiceNumber="10482-C"), now=later)
    change = PostedChange.objects.get(decision=PostedChange.Decision.PENDING)
    assert change.total_before == Decimal("330.00")  # what the reissue posted
    ingest(connection, envelope(items=MORE, taxRate=0, status="void"), now=later)
    post_due(later + timedelta(minutes=1))
    void = SyncRecord.objects.get(operation=Operation.VOID_CREDIT_MEMO)
    assert void.state == SyncState.POSTED
    memo = LedgerInvoice.objects.get(external_document_number=void.idempotency_key)
    assert memo.applies_to.external_document_number == "ST-RI1-4242"
    assert memo.amount == Decimal("330.00")


def test_a_decision_needs_a_pending_change(connection):
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    with pytest.raises(ValueError, match="no change waiting"):
        services.sync_record_change_reissue(record=record, actor="ada", now=DECIDED_AT)


def test_the_database_refuses_a_second_pending_change_or_an_anonymous_decision(edited):
    change = PostedChange.objects.get()
    with transaction.atomic(), pytest.raises(IntegrityError):
        PostedChange.objects.create(record=edited, detected_at=NOW, before={}, after={},
                                    total_before=0, total_after=0)  # fmt: skip
    change.decision = PostedChange.Decision.IGNORED
    change.reason = "no one"
    with transaction.atomic(), pytest.raises(IntegrityError):
        change.save()


# --- the console and the API ---------------------------------------------------------------------


def _user(role, connection):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(f"{role.lower()}-user", password="x")
    user.groups.add(Group.objects.get(name=role))
    connection.members.add(user)
    return user


def test_the_record_page_shows_the_diff_and_lets_only_admins_decide(client, connection, edited):
    from django.urls import reverse

    url = reverse("console:record-detail", args=[edited.pk])
    client.force_login(_user("Finance", connection))
    page = client.get(url).content.decode()
    assert "Total in the ERP 414.74, in ServiceTrade now 330.00" in page
    assert "Void and reissue</button>" not in page
    response = client.post(reverse("console:record-change-ignore", args=[edited.pk]),
                           {"reason": "no"})  # fmt: skip
    assert response.status_code == 403
    client.force_login(_user("Admin", connection))
    assert "Void and reissue</button>" in client.get(url).content.decode()


def test_void_and_reissue_from_the_console_needs_the_confirmation_box(client, connection, edited):
    from django.urls import reverse

    client.force_login(_user("Admin", connection))
    url = reverse("console:record-change-reissue", args=[edited.pk])
    client.post(url, {"reason": "wrong price"})
    assert PostedChange.objects.get().decision == PostedChange.Decision.PENDING
    client.post(url, {"reason": "wrong price", "confirm": "yes"})
    change = PostedChange.objects.get()
    assert (change.decision, change.decided_by, change.reason) == (
        PostedChange.Decision.VOID_AND_REISSUE, "user:admin-user", "wrong price",
    )  # fmt: skip


def test_an_admin_ignores_a_change_through_the_api(client, connection, edited):
    client.force_login(_user("Admin", connection))
    url = f"/api/v1/records/{edited.pk}/change/ignore/"
    assert client.post(url, {}, content_type="application/json").status_code == 400
    response = client.post(url, {"reason": "Agreed"}, content_type="application/json")
    assert response.status_code == 200
    assert PostedChange.objects.get().decided_by == "user:admin-user"
    again = client.post(url, {"reason": "Agreed"}, content_type="application/json")
    assert again.status_code == 409
