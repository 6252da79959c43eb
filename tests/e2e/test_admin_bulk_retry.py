"""End to end: three invoices blocked by an unmapped service line show up as one cause on the
admin's dashboard; finance publishes the mapping; the admin retries all three with one click in
headless Chromium, and a real worker posts them.

The stack is shared with the other e2e tests of the session: invoice ids 990001+ and numbers
E2E-BULK-… are this test's own, and "Elevators" is a service line no other test uses.
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
NUMBERS = ["E2E-BULK-1", "E2E-BULK-2", "E2E-BULK-3"]
CAUSE = "3 invoices blocked: No revenue account for service line 'Elevators'"

PUBLISH_ELEVATORS = """
import datetime
from django.utils import timezone
from mappings import services
from syncengine.models import Connection

connection = Connection.objects.get(slug="demo")
services.draft_map_row_set(
    connection=connection, map_kind="SERVICE_LINE", source_value="Elevators",
    targets={"revenue_account": "4060"}, actor="e2e", now=timezone.now(),
)
services.draft_publish(
    connection=connection, effective_from=datetime.date(2025, 1, 1), reason="map elevators",
    actor="e2e", now=timezone.now(),
)
"""


def elevator_invoices(directory: Path) -> list[str]:
    template = json.loads(FIXTURE.read_text())
    paths = []
    for offset, number in enumerate(NUMBERS):
        invoice = copy.deepcopy(template)
        invoice["data"].update(id=990001 + offset, invoiceNumber=number)
        invoice["data"]["job"]["serviceLine"] = {"id": 990, "name": "Elevators"}
        path = directory / f"{number}.json"
        path.write_text(json.dumps(invoice))
        paths.append(str(path))
    return paths


def log_in(page, stack: Stack, username: str) -> None:
    page.goto(f"{stack.base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "crosswalk-demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/sync/.*"))


def reload_until(page, url: str, done, what: str, timeout: float = 90) -> None:
    """Load the page again and again, like a person pressing F5, until `done(page)`."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if done(page):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s:\n{page.inner_text('main')}")
        time.sleep(1)


def test_an_admin_retries_every_invoice_blocked_by_one_cause_with_one_click(
    stack: Stack, page, tmp_path: Path
):
    ingested = stack.manage("ingest", *elevator_invoices(tmp_path))
    assert "3 invoice(s) accepted" in ingested.stdout
    log_in(page, stack, "admin")
    dashboard = f"{stack.base_url}/connections/demo/"
    reload_until(
        page,
        dashboard,
        lambda page: CAUSE in page.inner_text("#summary"),
        "the worker did not block the three Elevators invoices",
    )
    cause = page.locator("li.cause", has_text="service line 'Elevators'")
    retry = cause.get_by_role("button", name="Retry all 3")
    assert retry.is_visible()
    screenshot(page, "dashboard-blocked")

    stack.manage("shell", "-c", PUBLISH_ELEVATORS)
    page.once("dialog", lambda dialog: dialog.accept())
    retry.click()
    page.get_by_text("Queued 3 records for another attempt.").wait_for()
    assert page.url == dashboard

    search = f"{stack.base_url}/search/?q=E2E-BULK-"
    reload_until(
        page,
        search,
        lambda page: page.locator(".record-card.state-border-posted").count() == 3,
        "the three retried invoices were not all posted",
    )
    for number in NUMBERS:
        card = page.locator(".record-card", has_text=f"Invoice {number}")
        assert "Posted" in card.inner_text()
    screenshot(page, "search-bulk-posted")

    page.goto(dashboard)
    assert "service line 'Elevators'" not in page.inner_text("#summary")
    screenshot(page, "dashboard")
