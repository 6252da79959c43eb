"""End to end: an ERP change to a customer loses to ServiceTrade's newer one and a ServiceTrade
rename waits to be told; the admin opens the master data page in headless Chromium, reads why the
change lost, and sends the waiting change with one click (htmx), which renames the customer in
the sandbox ledger.

The stack is shared with the other e2e tests of the session: ServiceTrade company 880901 and its
invoice E2E-MD-1 are this test's own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack, screenshot
from tests.e2e.test_invoice_lands import log_in, search_until_posted

pytestmark = pytest.mark.e2e

FIXTURE = ROOT / "tests" / "fixtures" / "invoice_10482.json"
CUSTOMER = """
from syncengine.erps.sandbox.models import LedgerCustomer
customer = LedgerCustomer.objects.get(source_ref="880901")
print(customer.name, customer.details.get("phone", ""))
"""


def write(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_an_admin_reads_why_a_change_lost_and_sends_the_waiting_one(stack: Stack, page, tmp_path):
    invoice = copy.deepcopy(json.loads(FIXTURE.read_text()))
    invoice["data"].update(id=880950, invoiceNumber="E2E-MD-1")
    invoice["data"]["customer"] = {"id": 880901, "name": "Pier Nine Foods"}
    stack.manage("ingest", write(tmp_path / "invoice.json", invoice))
    log_in(page, stack, "admin")
    search_until_posted(page, "E2E-MD-1")  # the ledger now has the customer
    source = [{"source_ref": "880901", "changed_at": "2026-11-20T15:00:00Z",
               "values": {"name": "Pier Nine Foods Inc.", "phone": "910-555-0100"}}]  # fmt: skip
    erp = [{"source_ref": "880901", "changed_at": "2026-11-20T14:00:00Z",
            "values": {"phone": "910-555-0199"}}]  # fmt: skip
    for side, changes in (("SOURCE", source), ("ERP", erp)):
        stack.manage("masterdata", "receive", "--connection", "demo", "--side", side,
                     "--entity", "CUSTOMER", write(tmp_path / f"{side}.json", changes))  # fmt: skip
    page.goto(f"{stack.base_url}/connections/demo/master-data/")
    text = page.inner_text("main")
    assert "880901" in page.inner_text("#waiting")  # the demo's own customer may wait there too
    assert "910-555-0199" in text and "Older than the standing change from ServiceTrade" in text
    screenshot(page, "master-data")
    page.click("text=Send now")
    page.wait_for_selector("text=Sent just now")
    assert "880901" not in page.inner_text("#waiting")
    told = stack.manage("shell", "-c", CUSTOMER).stdout.strip().splitlines()[-1]
    assert told == "Pier Nine Foods Inc. 910-555-0100"
