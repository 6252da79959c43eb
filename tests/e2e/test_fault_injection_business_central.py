"""Recipe R1 against the fake Business Central, scaled down for CI: real workers on the real broker
post over HTTP to a fake Business Central running in this process on a real socket. The fake
fails requests at random (500, 429 with Retry-After, and after committing a write it drops the
connection or answers too late), workers are SIGKILLed mid-post and restarted, and the broker is
flushed once. At the end Business Central holds exactly one document per key, every approved
invoice posted, every void credited once against its own invoice, nothing left in draft or in
flight, and the totals tie out to the cent with the source.

The chaos helpers are the sandbox run's (test_fault_injection.py).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import Stack, _fresh_database
from tests.e2e.test_fault_injection import (
    Workers,
    chaos_env,
    kill_and_flush,
    stop_and_show_logs,
    void_some_posted_invoices,
    wait_until_settled,
)

if TYPE_CHECKING:
    from tests.fakes.business_central import FakeBusinessCentral

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.fakes.business_central"]

INVOICES = 60
VOIDS = 6
# Per request (the after-commit two on writes only). An invoice takes four or five requests
# (customer lookup, perhaps its creation, the $batch, the post, the read back), so about a third
# of first attempts meet a fault. Higher odds make five connection failures in a row likely,
# which opens the connection's circuit for a minute or more: slower, not different.
CHAOS = {"drop_after_commit": 0.06, "timeout_after_commit": 0.05, "error_500": 0.02,
         "rate_limit": 0.04}  # fmt: skip
TIMEOUT_SECONDS = 1  # the connection's; an answer held back longer is lost to it
TERMINAL = {"POSTED", "SKIPPED", "BLOCKED", "CANCELLED"}

SETUP = """
import json
from django.utils import timezone
from tests.fakes.business_central import FakeBusinessCentral
fake = FakeBusinessCentral()
fake.base_url = {base_url!r}
fake.publish_demo_rules(fake.connection(**json.loads({settings!r})), now=timezone.now())
"""

REPORT = """
import json
from django.db.models import Count, Sum
from syncengine.models import Operation, SyncEvent, SyncRecord
records = SyncRecord.objects.all()
posted = records.filter(state="POSTED")
def total(operation):
    return str(posted.filter(operation=operation).aggregate(t=Sum("document__total"))["t"])
print(json.dumps({
    "states": dict(records.values_list("state").annotate(n=Count("id"))),
    "posted_keys": sorted(posted.values_list("idempotency_key", flat=True)),
    "posted_ids": dict(posted.values_list("idempotency_key", "erp_document_id")),
    "invoice_total": total(Operation.CREATE),
    "voided_total": total(Operation.VOID_CREDIT_MEMO),
    "duplicates_refused": SyncEvent.objects.filter(data__duplicate_refused=True).count(),
    "found_by_lookup": SyncEvent.objects.filter(data__found_by_lookup=True).count(),
}))
"""


@pytest.fixture
def bc_chaos_stack(tmp_path: Path, fake_bc: FakeBusinessCentral):
    """A Business Central connection with the demo's rules, its catalog read from the fake; the
    chaos run's environment on a broker database of its own."""
    database = _fresh_database(tmp_path)
    env = chaos_env(tmp_path, next(database), redis_db="14")
    stack = Stack(env=env, base_url="")
    stack.manage("migrate", "--noinput")
    fake_bc.seed_demo_books()
    fake_bc.commit_delay = TIMEOUT_SECONDS + 1
    settings = json.dumps({"timeout_seconds": TIMEOUT_SECONDS})
    stack.manage("shell", "-c", SETUP.format(base_url=fake_bc.base_url, settings=settings))
    workers = Workers(env, tmp_path)
    try:
        yield stack, workers, fake_bc
    finally:
        fake_bc.chaos(seed=0)  # no odds: calm, so the workers stop quickly
        stop_and_show_logs(workers, tmp_path)
        next(database, None)


def ingest_demo_invoices(stack: Stack, count: int) -> None:
    """The first `count` demo invoices of seed 5 (the seed the void helper re-delivers)."""
    from console.demo import demo_invoices

    invoices = [invoice["data"] for invoice in demo_invoices(seed=5, count=count)]
    path = Path(stack.env["CROSSWALK_DATA_DIR"]) / "invoices.json"
    path.write_text(json.dumps({"data": {"invoices": invoices}}))
    stack.manage("ingest", str(path))


def test_every_invoice_reaches_business_central_exactly_once_through_faults_kills_and_a_lost_queue(
    bc_chaos_stack,
):
    stack, workers, bc = bc_chaos_stack
    bc.chaos(seed=20261123, **CHAOS)
    workers.start_beat()
    workers.start(0)
    workers.start(1)
    ingest_demo_invoices(stack, INVOICES)
    kills = kill_and_flush(stack, workers, random.Random(20261123), seconds=16)
    settled = wait_until_settled(stack, timeout=300, script=REPORT)
    void_some_posted_invoices(stack, settled["posted_keys"], invoices=INVOICES, voids=VOIDS)
    final = wait_until_settled(stack, timeout=300, script=REPORT)
    shown = {name: value for name, value in final.items() if not name.startswith("posted_")}
    print(f"workers killed: {kills}; faults: {dict(bc.faults_fired)}; figures: {shown}")

    invoices, memos = bc.rows("salesInvoices"), bc.rows("salesCreditMemos")
    keys = Counter(row["externalDocumentNumber"] for row in [*invoices, *memos])
    assert [key for key, count in keys.items() if count > 1] == [], "a key posted twice"
    assert sorted(keys) == final["posted_keys"], "Business Central and sync records disagree"
    assert {row["externalDocumentNumber"]: row["id"] for row in [*invoices, *memos]} == final[
        "posted_ids"
    ]
    assert [row["number"] for row in [*invoices, *memos] if row["status"] == "Draft"] == []
    assert final["duplicates_refused"] == 0, "a second create reached Business Central"
    assert set(final["states"]) <= TERMINAL
    assert final["states"]["POSTED"] > INVOICES * 3 // 4

    # Ties out to the cent: what Business Central holds is what ServiceTrade sent.
    held = sum((row["totalAmountIncludingTax"] for row in invoices), Decimal("0.00"))
    credited = sum((row["totalAmountIncludingTax"] for row in memos), Decimal("0.00"))
    assert (held, credited) == (Decimal(final["invoice_total"]), Decimal(final["voided_total"]))

    # Each void is one credit memo, applied to the invoice it voids, which it settles in full.
    assert len(memos) == VOIDS
    by_id = {row["id"]: row for row in invoices}
    for memo in memos:
        invoice = by_id[memo["invoiceId"]]
        voided = invoice["externalDocumentNumber"].removeprefix("ST-INV-")
        assert memo["externalDocumentNumber"] == f"ST-VOID-{voided}"
        assert (memo["totalAmountIncludingTax"], invoice["remainingAmount"]) == (
            invoice["totalAmountIncludingTax"], Decimal("0.00"),
        )  # fmt: skip

    assert kills >= 3
    assert all(bc.faults_fired[kind] > 0 for kind in CHAOS), bc.faults_fired
    assert final["found_by_lookup"] > 0, "no lost answer was settled by a lookup"
