"""Shared fixtures: a demo connection with its books and rules, and invoice payload builders."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from console import demo
from syncengine import services
from syncengine.models import Connection, SourceReceipt

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)

BASE_INVOICE: dict[str, Any] = {
    "id": 4242,
    "invoiceNumber": "10482",
    "type": "invoice",
    "status": "ok",
    "transactionDate": 1763650800,  # 2025-11-20 15:00 UTC
    "partial": False,
    "customer": {"id": 501, "name": "Harbor Foods"},
    "location": {
        "id": 9001,
        "name": "Harbor Foods #12",
        "address": {
            "street": "12 Main St",
            "city": "Raleigh",
            "state": "NC",
            "postalCode": "27601",
        },
    },
    "job": {
        "id": 7001,
        "number": "J-1042",
        "type": "repair",
        "serviceLine": {"id": 1, "name": "HVAC"},
    },
    "office": {"id": 1, "name": "Raleigh"},
    "items": [
        {
            "id": 1,
            "description": "HVAC labor",
            "itemType": "labor",
            "quantity": 2.5,
            "price": 110.00,
            "taxable": False,
        },
        {
            "id": 2,
            "description": "Thermostat",
            "itemType": "part",
            "quantity": 1,
            "price": 129.99,
            "taxable": True,
        },
        {
            "id": 3,
            "description": "Filter set",
            "itemType": "part",
            "quantity": 3,
            "price": 0.10,
            "taxable": True,
        },
    ],
    "taxRate": 7.25,
}
# 2.5 × 110.00 = 275.00; 129.99; 3 × 0.10 = 0.30 → items 405.29
# tax 7.25 % of 130.29 = 9.446025 → 9.45; total 414.74


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    # Rows are rolled back between tests and their ids reused: per-process caches keyed by id
    # and revision must not carry one test's rules or catalog into the next.
    from mappings import catalog, services
    from syncengine.erps.sandbox import client

    services._IN_FORCE.clear()
    services._COMPILED.clear()
    catalog._CACHE.clear()
    client._ACCOUNT_IDS.clear()
    client._CUSTOMER_IDS.clear()


@pytest.fixture(autouse=True)
def _no_worker_nudges(settings: Any) -> None:
    # Unit tests post in the foreground; only the e2e tests run real workers.
    settings.CROSSWALK_NUDGE_WORKERS = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def connection(db: Any) -> Connection:
    return demo.demo_connection_setup()


def invoice_data(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_INVOICE)
    data.update(changes)
    return data


def envelope(**changes: Any) -> bytes:
    return json.dumps({"data": invoice_data(**changes)}).encode()


def ingest(connection: Connection, body: bytes, now: datetime = NOW) -> services.IngestResult:
    return services.invoices_ingest(
        connection=connection,
        body=body,
        channel=SourceReceipt.Channel.FILE,
        origin="test",
        now=now,
    )
