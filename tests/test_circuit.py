"""A connection whose ERP refuses our credentials or stops answering gets one banner and one
e-mail, and its records wait instead of failing by the hundred."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from syncengine import services
from syncengine.models import Connection, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


@pytest.fixture
def three_invoices(connection):
    connection.support_emails = ["ops@example.com"]
    connection.save()
    for number in range(3):
        ingest(connection, envelope(id=number, invoiceNumber=f"C-{number}"))
    return connection


def test_an_authentication_failure_opens_the_circuit_and_the_other_records_wait(
    three_invoices, mailoutbox, django_capture_on_commit_callbacks
):
    with override_settings(CROSSWALK_SANDBOX_FAULTS="auth_error=1"), \
            django_capture_on_commit_callbacks(execute=True):  # fmt: skip
        attempts = post_due()
    assert attempts == 1  # one call, not three
    connection = Connection.objects.get(pk=three_invoices.pk)
    assert connection.circuit_retry_at == NOW + timedelta(seconds=60)
    assert "refused the credentials" in connection.circuit_reason
    states = sorted(SyncRecord.objects.values_list("state", flat=True))
    assert states == [SyncState.READY, SyncState.READY, SyncState.RETRY_SCHEDULED]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].subject == f"Crosswalk: {connection.name} cannot reach its ERP"
    assert "3 record(s) are waiting" in mailoutbox[0].body


def test_after_the_cool_down_one_success_closes_the_circuit_and_everything_posts(three_invoices):
    with override_settings(CROSSWALK_SANDBOX_FAULTS="auth_error=1"):
        post_due()
    assert post_due(NOW + timedelta(seconds=30)) == 0  # still cooling down
    assert post_due(NOW + timedelta(seconds=61)) == 3
    connection = Connection.objects.get(pk=three_invoices.pk)
    assert (connection.circuit_retry_at, connection.circuit_failures) == (None, 0)
    assert set(SyncRecord.objects.values_list("state", flat=True)) == {SyncState.POSTED}


def test_a_failed_trial_reopens_the_circuit_for_twice_as_long_without_a_second_e_mail(
    three_invoices, mailoutbox, django_capture_on_commit_callbacks
):
    with override_settings(CROSSWALK_SANDBOX_FAULTS="auth_error=1"), \
            django_capture_on_commit_callbacks(execute=True):  # fmt: skip
        post_due()
        post_due(NOW + timedelta(seconds=61))
    connection = Connection.objects.get(pk=three_invoices.pk)
    assert connection.circuit_retry_at == NOW + timedelta(seconds=61 + 120)
    assert len(mailoutbox) == 1


def test_five_connection_failures_in_a_row_open_the_circuit(connection):
    for number in range(6):
        ingest(connection, envelope(id=number, invoiceNumber=f"C-{number}"))
    with override_settings(CROSSWALK_SANDBOX_FAULTS="error_500=1"):
        assert post_due() == 5
    connection.refresh_from_db()
    assert connection.circuit_failures == 5 and connection.circuit_retry_at is not None
    assert SyncRecord.objects.filter(state=SyncState.READY).count() == 1


def test_a_value_error_does_not_touch_the_circuit(connection, monkeypatch):
    from syncengine.erps.base import ConnectorError, FailureCategory
    from syncengine.erps.sandbox.client import SandboxLedger

    def refuse(self, *, plan, key):
        raise ConnectorError("Customer blocked", category=FailureCategory.VALUE, transient=False)

    monkeypatch.setattr(SandboxLedger, "post_invoice", refuse)
    for number in range(6):
        ingest(connection, envelope(id=number, invoiceNumber=f"C-{number}"))
    assert post_due() == 6
    connection.refresh_from_db()
    assert connection.circuit_retry_at is None
    assert SyncRecord.objects.filter(state=SyncState.FAILED).count() == 6


def test_another_connection_keeps_posting_while_one_circuit_is_open(connection):
    from console.demo import demo_connection_setup  # noqa: F401  (the demo connection exists)

    other = Connection.objects.create(
        name="Other", slug="other", circuit_retry_at=NOW + timedelta(hours=1)
    )
    ingest(connection, envelope(id=1, invoiceNumber="A-1"))
    ingest(other, envelope(id=1, invoiceNumber="B-1"))
    post_due()
    states = dict(SyncRecord.objects.values_list("document__number", "state"))
    assert states["A-1"] == SyncState.POSTED and states["B-1"] == SyncState.READY
