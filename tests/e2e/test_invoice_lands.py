"""End to end: an approved invoice file → a real Celery worker on the real broker → posted in
the sandbox ledger → found by AR through the console's search box in headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack, screenshot

pytestmark = pytest.mark.e2e

FIXTURE = ROOT / "tests" / "fixtures" / "invoice_10482.json"


def log_in(page, stack: Stack, username: str) -> None:
    page.goto(f"{stack.base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "crosswalk-demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/sync/.*"))


def search_until_posted(page, number: str, timeout: float = 90) -> None:
    """Search like a clerk would, refreshing until the answer is "Posted"."""
    deadline = time.monotonic() + timeout
    while True:
        page.fill("#global-search", number)
        page.press("#global-search", "Enter")
        page.wait_for_load_state("domcontentloaded")
        if page.locator(".erp-link").count() > 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{number} was not posted within {timeout} s:\n{page.inner_text('main')}"
            )
        time.sleep(1)


def test_an_ingested_invoice_is_posted_by_a_worker_and_found_by_ar_in_the_browser(
    stack: Stack, page
):
    ingested = stack.manage("ingest", str(FIXTURE))
    assert "1 invoice(s) accepted" in ingested.stdout
    log_in(page, stack, "ar")
    screenshot(page, "sync-log")
    search_until_posted(page, "E2E-10482")
    result = page.inner_text("main")
    assert "Exact matches" in result and "Posted" in result
    assert "Lakeside Senior Living" in result
    screenshot(page, "search-posted")
    page.click(".erp-link")
    page.wait_for_load_state("domcontentloaded")
    ledger = page.inner_text("main")
    assert "ST-INV-880482" in ledger and "566.29" in ledger
    screenshot(page, "ledger-invoice")


def test_a_lost_broker_message_only_delays_posting_the_sweeper_finds_the_record(
    stack: Stack, page, tmp_path: Path
):
    invoice = json.loads(FIXTURE.read_text())
    invoice["data"].update(id=880483, invoiceNumber="E2E-LOST-1")
    path = tmp_path / "lost.json"
    path.write_text(json.dumps(invoice))
    # No message is published for this record: only the beat sweeper can find it.
    stack.manage("ingest", str(path), CROSSWALK_NUDGE_WORKERS="false")
    log_in(page, stack, "admin")
    search_until_posted(page, "E2E-LOST-1")
    page.click("text=Timeline")
    page.wait_for_load_state("domcontentloaded")
    assert "Posted: ERP document" in page.inner_text("main")
    # The call that posted it, opened the way a person would: request and the ledger's answer.
    page.click("text=1 ERP call: what was sent and what came back")
    call = page.locator(".exchange").first
    assert call.is_visible()
    assert "POST sandbox://" in call.inner_text() and "ST-INV-880483" in call.inner_text()
    screenshot(page, "record-detail")
