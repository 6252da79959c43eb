"""End to end: an invoice blocked by an unmapped service line; finance maps it in the browser,
sees on the review page that publishing fixes that one invoice, publishes, retries it with one
click, and a real worker posts it; then imports a tax rate map CSV into a new draft through the
browser's upload form.

The stack is shared with the other e2e tests of the session: invoice id 991001 and number
E2E-FIN-1 are this test's own, and "Kitchen Exhaust" is a service line no other test uses.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack, screenshot

pytestmark = pytest.mark.e2e

FIXTURE = ROOT / "tests" / "fixtures" / "invoice_10482.json"
NUMBER = "E2E-FIN-1"
SERVICE_LINE = "Kitchen Exhaust"


def kitchen_exhaust_invoice(directory: Path) -> str:
    invoice = copy.deepcopy(json.loads(FIXTURE.read_text()))
    invoice["data"].update(id=991001, invoiceNumber=NUMBER)
    invoice["data"]["job"]["serviceLine"] = {"id": 991, "name": SERVICE_LINE}
    path = directory / f"{NUMBER}.json"
    path.write_text(json.dumps(invoice))
    return str(path)


def log_in(page, stack: Stack, username: str) -> None:
    page.goto(f"{stack.base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "crosswalk-demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/sync/.*"))


def search_until(page, text: str, done, what: str, timeout: float = 90) -> None:
    """Search with the global search box again and again, like a person, until `done(page)`."""
    deadline = time.monotonic() + timeout
    while True:
        page.fill("#global-search", text)
        page.press("#global-search", "Enter")
        page.wait_for_load_state()
        if done(page):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s:\n{page.inner_text('main')}")
        time.sleep(1)


def card(page):
    return page.locator(".record-card", has_text=f"Invoice {NUMBER}")


def test_finance_maps_a_service_line_publishes_it_and_retries_the_invoice_it_fixes(
    stack: Stack, page, tmp_path: Path
):
    ingested = stack.manage("ingest", kitchen_exhaust_invoice(tmp_path))
    assert "1 invoice(s) accepted" in ingested.stdout
    log_in(page, stack, "finance")
    search_until(
        page,
        NUMBER,
        lambda page: "Blocked" in card(page).inner_text() if card(page).count() else False,
        "the worker did not block the Kitchen Exhaust invoice",
    )

    # The service line map, from the rules overview.
    page.goto(f"{stack.base_url}/connections/demo/rules/")
    page.get_by_role("link", name="Service line map").click()
    page.get_by_role("heading", name="Service line map").wait_for()
    assert f"Service line '{SERVICE_LINE}' has no mapping" in page.inner_text("#map-body")

    # Add the row with the keyboard: type the value, Tab to the revenue account, Enter saves.
    page.focus("#add-source")
    page.keyboard.type(SERVICE_LINE)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "add-revenue_account"
    page.keyboard.type("4050")
    page.keyboard.press("Enter")
    row = page.locator("#map-rows tr", has_text=SERVICE_LINE)
    row.wait_for()
    assert "Kitchen Hood Revenue" in row.inner_text() and "OK" in row.inner_text()
    assert page.input_value("#add-source") == ""  # ready for the next row
    page.locator("#draft-status", has_text="Draft open.").wait_for()
    screenshot(page, "rules-map")

    # Review & publish: the impact names this one invoice.
    page.locator(".rules-nav").get_by_role("link", name="Review & publish").click()
    impact = page.locator("#impact")
    assert "Publishing this draft would fix 1 blocked or failed record." in impact.inner_text()
    assert impact.get_by_role("link", name=f"Invoice {NUMBER}").is_visible()
    # The invoice is dated 2025-11-20: publish effective early enough to govern it.
    page.fill("#effective_from", "2025-01-01")
    page.fill("#publish-reason", "Kitchen Exhaust is billed as Kitchen Hood revenue")
    screenshot(page, "rules-publish")
    page.get_by_role("button", name=re.compile(r"^Publish as version \d+$")).click()
    page.get_by_role("heading", name=re.compile(r"^Version \d+ is published$")).wait_for()

    page.get_by_role("button", name="Retry the 1 record this fixes").click()
    page.get_by_text("Queued 1 record for another attempt.").wait_for()

    search_until(
        page,
        NUMBER,
        lambda page: "Posted" in card(page).inner_text(),
        "the retried Kitchen Exhaust invoice was not posted",
    )
    assert "Yes, it landed in the ERP." in card(page).inner_text()

    # Import a map as a spreadsheet would give it back: the export plus one new rate.
    exported = page.request.get(
        f"{stack.base_url}/connections/demo/rules/files/export/?part=TAX_RATE"
    )
    rates = tmp_path / "rates.csv"
    rates.write_text(exported.text() + "9.99,NC-7.25,\n")
    page.goto(f"{stack.base_url}/connections/demo/rules/files/")
    page.select_option("#import-part", "TAX_RATE")
    page.set_input_files("#import-file", str(rates))
    page.get_by_role("button", name="Import").click()
    result = page.locator("#import-result", has_text="into the draft")
    result.wait_for()
    assert "Imported the TAX_RATE map" in result.inner_text()
    counts = result.locator("tr", has_text="Tax rate map rows").inner_text().split()
    assert counts[-3:] == ["1", "0", "0"]  # added, changed, removed
    assert page.locator("#import-progress").is_hidden()
    page.locator("#draft-status", has_text="Draft open.").wait_for()
    screenshot(page, "rules-import")
