"""Recipe R3: a Hypothesis state machine drives deliveries, claims, ERP faults, dying workers,
clock jumps, manual retries and reconciliation in random orders, and checks after every step:

- at most one ERP document per source document and operation, and no second create ever
  reached the ERP (`duplicate_refused` never recorded);
- a posted record stays posted;
- every transition left exactly one event: each record's events chain from "" to its state.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Count
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from syncengine import services
from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import SyncEvent, SyncRecord, SyncState
from syncengine.reconcile import reconciliation_run
from syncengine.services import posting
from tests.conftest import NOW, envelope, ingest

FAULTS = [None, None, "commit_then_drop", "error_500", "rate_limit", "lookup_error"]


class SyncMachine(RuleBasedStateMachine):
    connection: Any = None  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.atomic()
        self.savepoint.__enter__()
        self.now = NOW
        self.claims: list[services.Claim] = []
        self.ever_posted: set[int] = set()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.savepoint.__exit__(None, None, None)

    @rule(doc=st.integers(1, 3), status=st.sampled_from(["ok", "ok", "void", "internal_review"]),
          price=st.sampled_from(["110.00", "95.50"]))  # fmt: skip
    def deliver(self, doc: int, status: str, price: str) -> None:
        items = [{"id": 1, "itemType": "labor", "quantity": "1", "price": price}]
        body = envelope(id=doc, invoiceNumber=f"SM-{doc}", status=status, items=items, taxRate=0)
        ingest(self.connection, body, now=self.now)

    @rule()
    def claim(self) -> None:
        claim = posting._claim(record_id=None, now=self.now, actor=f"worker-{len(self.claims)}")
        if claim is not None:
            self.claims.append(claim)

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), fault=st.sampled_from(FAULTS))
    def attempt(self, data: st.DataObject, fault: str | None) -> None:
        claim = self.claims.pop(data.draw(st.integers(0, len(self.claims) - 1)))
        with override_settings(CROSSWALK_SANDBOX_FAULTS=f"{fault}=1" if fault else ""):
            outcome = posting._attempt(claim)
        posting._finish(claim, outcome, now=self.now, actor="worker")

    @rule(fault=st.sampled_from(FAULTS))
    def claim_and_attempt(self, fault: str | None) -> None:
        """A worker that claims and talks to the ERP straight away (the common case)."""
        claim = posting._claim(record_id=None, now=self.now, actor="worker")
        if claim is None:
            return
        with override_settings(CROSSWALK_SANDBOX_FAULTS=f"{fault}=1" if fault else ""):
            outcome = posting._attempt(claim)
        posting._finish(claim, outcome, now=self.now, actor="worker")

    @precondition(lambda self: self.claims)
    @rule()
    def worker_dies(self) -> None:
        self.claims.pop(0)  # its lease simply expires

    @rule(seconds=st.sampled_from([1, 45, 400, 4000]))
    def clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def retry_by_hand(self) -> None:
        record = SyncRecord.objects.filter(state__in=services.RETRYABLE).first()
        if record is not None:
            services.sync_record_retry(record=record, actor="user:admin", now=self.now)

    @rule()
    def reconcile(self) -> None:
        reconciliation_run(connection=self.connection, actor="schedule", now=self.now)

    @invariant()
    def one_erp_document_per_source_document_and_operation(self) -> None:
        assert (
            not LedgerInvoice.objects.values("external_document_number")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
        )
        assert not SyncEvent.objects.filter(data__duplicate_refused=True).exists()
        for record in SyncRecord.objects.filter(state=SyncState.POSTED):
            assert (
                LedgerInvoice.objects.filter(
                    external_document_number=record.idempotency_key
                ).count()
                == 1
            )

    @invariant()
    def posted_never_goes_back(self) -> None:
        posted = set(SyncRecord.objects.filter(state=SyncState.POSTED).values_list("pk", flat=True))
        assert self.ever_posted <= posted, self.ever_posted - posted
        self.ever_posted |= posted

    @invariant()
    def every_transition_left_exactly_one_event(self) -> None:
        for record in SyncRecord.objects.all():
            state = ""
            for from_state, to_state in record.events.order_by("id").values_list(
                "from_state", "to_state"
            ):
                assert from_state == state, (record.pk, from_state, state)
                state = to_state
            assert state == record.state


@pytest.mark.django_db
def test_the_sync_state_machine_keeps_its_promises_under_random_schedules(connection):
    SyncMachine.connection = connection
    runner = SyncMachine.TestCase
    runner.settings = settings(
        max_examples=40, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )  # fmt: skip
    runner().runTest()
