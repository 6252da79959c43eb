import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from mappings import services as mapping_services
from mappings.catalog import catalog_refresh
from syncengine import services
from syncengine.canonical import invoice_from_dict
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.models import JournalLine, LedgerInvoice
from syncengine.models import SyncEvent, SyncRecord, SyncState
from syncengine.services import posting
from tests.conftest import NOW, envelope, ingest, invoice_data

pytestmark = pytest.mark.django_db


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def test_an_approved_invoice_posts_as_a_balanced_ar_invoice_for_its_exact_total(connection):
    ingest(connection, envelope())
    assert post_due() == 1
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    invoice = LedgerInvoice.objects.get()
    assert (record.erp_document_number, record.erp_document_id) == (invoice.number, str(invoice.pk))
    assert invoice.external_document_number == "ST-INV-4242"
    assert invoice.amount == Decimal("414.74")
    lines = JournalLine.objects.filter(entry=invoice.journal_entry)
    totals = lines.aggregate(debit=Sum("debit"), credit=Sum("credit"))
    assert totals == {"debit": Decimal("414.74"), "credit": Decimal("414.74")}
    assert lines.get(account__number="1200").debit == Decimal("414.74")
    assert lines.get(account__number="2300").tax_code == "NC-7.25"
    assert str(invoice.posting_date) == "2025-11-20"


def test_the_posting_plan_records_why_each_account_was_chosen(connection):
    ingest(connection, envelope())
    post_due()
    plan = SyncRecord.objects.get().plan
    reasons = [line["reason"] for line in plan["lines"]]
    assert reasons[0] == "revenue account 4010 from the service-line map (HVAC)"
    assert reasons[1] == "revenue account 4011 from rule 1 (line kind part, service line HVAC)"
    assert reasons[-1] == (
        "tax code NC-7.25 from the tax-rate map (7.25%); "
        "account 2300 from the connection's default tax account"
    )
    codings = plan["lines"][0]["codings"]
    assert codings["dimension:DEPARTMENT"]["value"] == "HVAC"
    assert codings["dimension:BRANCH"]["reason"] == "BRANCH RAL from the office map (Raleigh)"
    assert codings["cost_code"]["value"] == "100"
    assert SyncRecord.objects.get().rule_version == 1


def test_a_mixed_sign_invoice_debits_revenue_for_its_negative_line(connection):
    items = [
        {"id": 1, "itemType": "labor", "quantity": "2", "price": "100.00"},
        {
            "id": 2,
            "itemType": "other",
            "quantity": "1",
            "price": "-35.00",
            "description": "Discount",
        },
    ]
    ingest(connection, envelope(items=items, taxRate=0))
    post_due()
    lines = JournalLine.objects.filter(account__number="4010").order_by("id")
    assert [(line.debit, line.credit) for line in lines] == [
        (Decimal("0.00"), Decimal("200.00")),
        (Decimal("35.00"), Decimal("0.00")),
    ]
    assert LedgerInvoice.objects.get().amount == Decimal("165.00")


def test_an_unmapped_service_line_blocks_the_record_with_every_problem_listed(connection):
    items = [
        {
            "id": 1,
            "itemType": "labor",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": "Backflow Testing"},
        },
        {
            "id": 2,
            "itemType": "part",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": "Elevators"},
        },
    ]
    ingest(connection, envelope(items=items, taxRate="6.75"))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.BLOCKED
    assert [problem["code"] for problem in record.problems] == [
        "UNMAPPED_SERVICE_LINE",
        "UNMAPPED_SERVICE_LINE",
        "UNMAPPED_TAX_RATE",
    ]
    assert "'Backflow Testing'" in record.message and "'Elevators'" in record.message
    assert LedgerInvoice.objects.count() == 0


def test_a_blocked_record_posts_after_the_mapping_is_added_and_it_is_retried(connection):
    items = [
        {
            "id": 1,
            "itemType": "labor",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": "Backflow Testing"},
        }
    ]
    ingest(connection, envelope(items=items))
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.BLOCKED
    mapping_services.draft_map_row_set(
        connection=connection,
        map_kind="SERVICE_LINE",
        source_value="backflow  TESTING",
        targets={"revenue_account": "4060"},
        actor="user:finance",
        now=NOW,
    )
    version = mapping_services.draft_publish(
        connection=connection,
        effective_from=date(2025, 1, 1),
        reason="Map Backflow Testing",
        actor="user:finance",
        now=NOW,
    )
    services.sync_record_retry(record=record, actor="user:admin", now=NOW)
    post_due()
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert record.rule_version == version.number == 2
    assert [event.actor for event in record.events.order_by("id")][-3:] == [
        "user:admin",
        "sync --until-idle",
        "sync --until-idle",
    ]


def test_an_inactive_revenue_account_blocks_instead_of_posting(connection):
    from syncengine.erps.sandbox.models import LedgerAccount

    LedgerAccount.objects.filter(number="4010").update(active=False)
    catalog_refresh(connection=connection, actor="test", now=NOW)
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.BLOCKED
    assert record.problems[0]["message"] == "The revenue account 4010 is inactive."


def test_a_crash_after_the_erp_accepted_the_invoice_never_creates_a_second_one(connection):
    """The worker posts, then dies before recording it; the lease expires and a new attempt
    finds the invoice by its key instead of posting again."""
    ingest(connection, envelope())
    claim = posting._claim(record_id=None, now=NOW, actor="worker-1")
    record = SyncRecord.objects.get()
    ledger = SandboxLedger(connection=connection)
    plan = posting.invoice_posting_plan(connection, invoice_from_dict(record.document.canonical))
    ledger.post_invoice(plan=plan, key=record.idempotency_key)  # ERP committed; worker dies
    assert claim is not None
    assert post_due(NOW + timedelta(seconds=30)) == 0  # lease still held: nothing runnable
    assert post_due(NOW + timedelta(minutes=10)) == 1
    record.refresh_from_db()
    assert record.state == SyncState.POSTED
    assert LedgerInvoice.objects.count() == 1
    assert record.events.last().data["found_by_lookup"] is True


def test_the_worker_that_lost_its_lease_does_not_overwrite_the_new_owner(connection):
    ingest(connection, envelope())
    stale = posting._claim(record_id=None, now=NOW, actor="worker-1")
    post_due(NOW + timedelta(minutes=10))  # worker-2 takes over and posts
    outcome = services.Outcome(
        SyncState.FAILED,
        error=ConnectorError("late timeout", category=FailureCategory.CONNECTION, transient=True),
    )
    posting._finish(stale, outcome, now=NOW + timedelta(minutes=11), actor="worker-1")
    assert SyncRecord.objects.get().state == SyncState.POSTED


@pytest.fixture
def failing_post(monkeypatch):
    def install(error):
        def post_invoice(self, *, plan, key):
            raise error

        monkeypatch.setattr(SandboxLedger, "post_invoice", post_invoice)

    return install


def test_a_transient_failure_is_retried_later_with_backoff(connection, failing_post):
    failing_post(
        ConnectorError(
            "ERP busy", category=FailureCategory.RATE_LIMIT, transient=True, retry_after_seconds=90
        )
    )
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.RETRY_SCHEDULED
    assert record.next_attempt_at - NOW >= timedelta(seconds=90)
    assert post_due() == 0  # not due yet


def test_an_erp_timeout_leaves_the_record_uncertain_and_the_next_attempt_looks_it_up(
    connection, failing_post, monkeypatch
):
    failing_post(
        ConnectorError(
            "timed out", category=FailureCategory.CONNECTION, transient=True, outcome_unknown=True
        )
    )
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.UNCERTAIN
    looked_up = []
    original_find = SandboxLedger.find_invoice
    monkeypatch.setattr(
        SandboxLedger,
        "find_invoice",
        lambda self, *, key: looked_up.append(key) or original_find(self, key=key),
    )
    post_due(NOW + timedelta(hours=2))
    assert looked_up == ["ST-INV-4242"]


def test_a_permanent_failure_stops_the_record_and_is_not_retried(connection, failing_post):
    failing_post(
        ConnectorError("Customer is blocked", category=FailureCategory.VALUE, transient=False)
    )
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.FAILED, "VALUE")
    assert record.message == "Customer is blocked"
    assert post_due(NOW + timedelta(days=1)) == 0


def test_transient_failures_give_up_after_the_attempt_limit(connection, failing_post, settings):
    settings.CROSSWALK_MAX_ATTEMPTS = 3
    failing_post(ConnectorError("503", category=FailureCategory.CONNECTION, transient=True))
    ingest(connection, envelope())
    at = NOW
    for _ in range(5):
        post_due(at)
        at += timedelta(days=1)
    record = SyncRecord.objects.get()
    assert (record.state, record.attempts) == (SyncState.FAILED, 3)
    assert record.events.last().data["gave_up_after_attempts"] == 3
    services.sync_record_retry(record=record, actor="user:admin", now=at)
    post_due(at)
    record.refresh_from_db()
    assert record.state == SyncState.RETRY_SCHEDULED  # a manual retry earns fresh attempts


def test_a_record_whose_worker_keeps_dying_fails_instead_of_looping(connection, settings):
    settings.CROSSWALK_MAX_ATTEMPTS = 2
    ingest(connection, envelope())
    at = NOW
    for _ in range(2):  # each claim's worker dies: the lease simply expires
        assert posting._claim(record_id=None, now=at, actor="worker") is not None
        at += timedelta(hours=1)
    assert posting._claim(record_id=None, now=at, actor="worker") is None
    record = SyncRecord.objects.get()
    assert record.state == SyncState.FAILED
    assert "worker stopped during each of the last 2 attempts" in record.events.last().detail


def test_an_unknown_target_fails_the_record_instead_of_leaving_it_posting(connection):
    connection.target = "mystery-erp"
    connection.save()
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert (record.state, record.failure_category) == (SyncState.FAILED, "INTERNAL")
    assert "No connector for target 'mystery-erp'" in record.message


def test_an_unexpected_bug_fails_one_record_and_the_others_still_post(connection, monkeypatch):
    ingest(connection, envelope(id=1, invoiceNumber="BUG"))
    ingest(connection, envelope(id=2, invoiceNumber="FINE"))
    original = SandboxLedger.post_invoice

    def post_invoice(self, *, plan, key):
        if plan.document_number == "BUG":
            raise ZeroDivisionError("boom")
        return original(self, plan=plan, key=key)

    monkeypatch.setattr(SandboxLedger, "post_invoice", post_invoice)
    post_due()
    states = dict(SyncRecord.objects.values_list("document__number", "state"))
    assert states == {"BUG": SyncState.FAILED, "FINE": SyncState.POSTED}


def test_every_transition_writes_exactly_one_event(connection):
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    transitions = list(record.events.order_by("id").values_list("from_state", "to_state"))
    assert transitions == [("", "READY"), ("READY", "POSTING"), ("POSTING", "POSTED")]


@pytest.mark.parametrize(("attempts", "low", "high"), [(1, 24, 36), (3, 96, 144), (20, 2880, 4320)])
def test_backoff_grows_exponentially_with_jitter_up_to_a_cap(attempts, low, high):
    delays = {services.retry_delay_seconds(attempts=attempts, retry_after=None) for _ in range(50)}
    assert all(low <= delay <= high for delay in delays)
    assert services.retry_delay_seconds(attempts=1, retry_after=600) == 600


def test_the_sweeper_nudges_every_due_record_in_batches(connection, monkeypatch, settings):
    for number in range(1, 4):
        ingest(connection, envelope(id=number, invoiceNumber=str(number)))
    settings.CROSSWALK_POST_BATCH = 2
    sent = []
    from syncengine import tasks

    monkeypatch.setattr(tasks.sync_records_post, "apply_async", lambda kwargs: sent.append(kwargs))
    assert services.sync_records_sweep(now=NOW) == 3
    assert [len(item["record_ids"]) for item in sent] == [2, 1]
    assert sorted(pk for item in sent for pk in item["record_ids"]) == sorted(
        SyncRecord.objects.values_list("pk", flat=True)
    )
    assert SyncEvent.objects.count() == 3  # sweeping changes no state


def test_a_batch_claims_records_together_and_each_keeps_its_own_events(connection, settings):
    for number in range(1, 4):
        ingest(connection, envelope(id=number, invoiceNumber=str(number)))
    settings.CROSSWALK_POST_BATCH = 2
    first = services.sync_records_post(now=lambda: NOW)
    assert len(first) == 2 and {record.state for record in first} == {SyncState.POSTED}
    assert SyncRecord.objects.filter(state=SyncState.READY).count() == 1
    assert len(services.sync_records_post(now=lambda: NOW)) == 1
    for record in SyncRecord.objects.all():
        transitions = list(record.events.order_by("id").values_list("from_state", "to_state"))
        assert transitions == [("", "READY"), ("READY", "POSTING"), ("POSTING", "POSTED")]
    assert LedgerInvoice.objects.count() == 3


def test_a_batch_takes_only_the_records_it_was_nudged_for(connection):
    for number in range(1, 4):
        ingest(connection, envelope(id=number, invoiceNumber=str(number)))
    wanted = list(SyncRecord.objects.order_by("-id").values_list("pk", flat=True)[:2])
    posted = services.sync_records_post(record_ids=wanted, now=lambda: NOW)
    assert sorted(record.pk for record in posted) == sorted(wanted)
    assert SyncRecord.objects.exclude(pk__in=wanted).get().state == SyncState.READY


def test_records_left_untried_by_their_batch_go_back_due_with_their_attempt_uncounted(
    connection, monkeypatch
):
    for number in range(1, 4):
        ingest(connection, envelope(id=number, invoiceNumber=str(number)))

    def unreachable(self, *, plan, key):
        raise ConnectorError("Connection refused", category=FailureCategory.CONNECTION,
                             transient=True)  # fmt: skip

    monkeypatch.setattr(SandboxLedger, "post_invoice", unreachable)
    settled = services.sync_records_post(now=lambda: NOW)
    assert len(settled) == 1  # the ERP failed to answer: the other two are not sent
    put_back = SyncRecord.objects.filter(state=SyncState.READY)
    assert put_back.count() == 2
    for record in put_back:
        assert record.attempts == 0 and record.lease_token == "" and record.next_attempt_at == NOW
        last = record.events.order_by("-id").first()
        assert last.detail.startswith("Not tried, back in the queue: the ERP failed to answer")


def test_the_records_of_one_transaction_share_their_worker_messages(
    connection, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from syncengine import tasks

    sent = []
    monkeypatch.setattr(tasks.sync_records_post, "apply_async", lambda kwargs: sent.append(kwargs))
    settings.CROSSWALK_NUDGE_WORKERS = True
    settings.CROSSWALK_POST_BATCH = 2
    invoices = [invoice_data(id=n, invoiceNumber=str(n)) for n in (1, 2, 3)]
    with django_capture_on_commit_callbacks(execute=True):
        ingest(connection, json.dumps({"data": {"invoices": invoices}}).encode())
    assert [len(message["record_ids"]) for message in sent] == [2, 1]
    assert sorted(pk for message in sent for pk in message["record_ids"]) == sorted(
        SyncRecord.objects.values_list("pk", flat=True)
    )


def test_the_records_a_batch_posted_are_written_whole_in_one_statement(connection):
    for number in range(1, 4):
        ingest(connection, envelope(id=number, invoiceNumber=str(number)))
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    at = NOW + timedelta(microseconds=123456)
    with CaptureQueriesContext(db) as queries:
        posted = services.sync_records_post(now=lambda: at)
    updates = [q["sql"] for q in queries.captured_queries
               if 'UPDATE "syncengine_syncrecord"' in q["sql"]]  # fmt: skip
    # The claim, then the three posted rows together: on PostgreSQL one UPDATE joining their
    # values given as JSON, on SQLite one executemany (which Django logs once).
    assert len(updates) == 2
    if db.vendor == "postgresql":
        assert updates[1].startswith('UPDATE "syncengine_syncrecord" SET')
        assert "jsonb_to_recordset" in updates[1]
    else:
        assert updates[1].startswith("3 times: UPDATE")
    for record in posted:
        stored = SyncRecord.objects.get(pk=record.pk)
        assert stored.state == SyncState.POSTED
        assert stored.posted_at == stored.state_changed_at == at  # to the microsecond
        assert stored.erp_document_id == record.erp_document_id != ""
        assert stored.erp_document_number == record.erp_document_number
        assert stored.erp_document_url.endswith(f"/{stored.erp_document_number}/")
        assert stored.plan["total"] == str(stored.document.total)
        assert (stored.lease_token, stored.lease_until, stored.next_attempt_at) == ("", None, None)
        assert stored.rule_version == record.rule_version is not None
