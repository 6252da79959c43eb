"""A connection's ERP catalog (read, refresh) and the sandbox ledger (read only) through the API."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest

from console.access import Role
from console.api import ops_views
from mappings.models import CatalogEntry, RuleAudit
from syncengine.erps.base import ConnectorError
from syncengine.erps.sandbox.models import JournalEntry, LedgerAccount, LedgerInvoice
from syncengine.models import Connection

pytestmark = pytest.mark.django_db

BASE = "/api/v1/connections/demo"


@pytest.fixture
def ar(client, make_user, connection):
    client.force_login(make_user(Role.AR, connection))
    return client


@pytest.fixture
def admin(client, make_user, connection):
    client.force_login(make_user(Role.ADMIN, connection))
    return client


def test_the_catalog_lists_entries_of_one_kind(ar):
    response = ar.get(f"{BASE}/catalog/?kind=ACCOUNT")
    assert response.status_code == 200
    codes = {entry["code"] for entry in response.json()["results"]}
    expected = set(CatalogEntry.objects.filter(kind="ACCOUNT").values_list("code", flat=True))
    assert codes == expected and "4010" in codes
    assert response.json()["next"] is None


def test_an_unknown_kind_is_a_validation_problem(ar):
    response = ar.get(f"{BASE}/catalog/?kind=PLANETS")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "kind"


def test_the_catalog_pages_by_id_until_every_entry_was_listed(ar, monkeypatch):
    monkeypatch.setattr(ops_views, "CATALOG_PAGE_SIZE", 7)
    seen: list[int] = []
    url: str | None = f"{BASE}/catalog/"
    while url:
        page = ar.get(url).json()
        assert len(page["results"]) <= 7
        seen += [entry["id"] for entry in page["results"]]
        url = page["next"]
    assert seen == sorted(CatalogEntry.objects.values_list("id", flat=True))


def test_an_admin_refreshes_the_catalog_and_the_refresh_is_audited(admin):
    CatalogEntry.objects.filter(kind="ACCOUNT", code="4010").delete()
    response = admin.post(f"{BASE}/catalog/refresh/")
    assert response.status_code == 200
    assert response.json()["counts"]["added"] == 1
    assert response.json()["issues"] == []
    assert CatalogEntry.objects.filter(kind="ACCOUNT", code="4010").exists()
    assert RuleAudit.objects.filter(action=RuleAudit.Action.CATALOG_REFRESHED).exists()


def test_an_erp_that_cannot_be_read_is_a_bad_gateway_problem(admin):
    offline = mock.Mock()
    offline.catalog_lists.side_effect = ConnectorError(
        "Tenant offline", category="CONNECTION", transient=True
    )
    before = CatalogEntry.objects.count()
    with mock.patch("syncengine.erps.registry.connector_for", return_value=offline):
        response = admin.post(f"{BASE}/catalog/refresh/")
    assert response.status_code == 502
    assert response.json()["code"] == "erp_unavailable"
    assert "Tenant offline" in response.json()["detail"]
    assert CatalogEntry.objects.count() == before


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AR])
def test_only_an_admin_refreshes_the_catalog(client, make_user, connection, role):
    client.force_login(make_user(role, connection))
    assert client.post(f"{BASE}/catalog/refresh/").status_code == 403


def test_the_ledger_lists_its_accounts_by_number(ar):
    accounts = ar.get(f"{BASE}/ledger/accounts/").json()
    numbers = [account["number"] for account in accounts]
    assert numbers == sorted(LedgerAccount.objects.values_list("number", flat=True))
    assert {"number": "4010", "name": "HVAC Service Revenue", "type": "INCOME", "active": True,
            "direct_posting": True} in accounts  # fmt: skip


def test_a_posted_invoice_is_in_the_ledger_with_its_balanced_entry(ar, posted):
    invoices = ar.get(f"{BASE}/ledger/invoices/").json()["results"]
    invoice = LedgerInvoice.objects.get()
    assert [(row["number"], row["amount"], row["customer_name"]) for row in invoices] == [
        (invoice.number, "414.74", "Harbor Foods")
    ]
    entries = ar.get(f"{BASE}/ledger/entries/").json()["results"]
    (entry,) = entries
    assert entry["number"] == invoices[0]["journal_entry"]
    assert entry["state"] == JournalEntry.State.POSTED
    debits = sum(Decimal(line["debit"]) for line in entry["lines"])
    credits = sum(Decimal(line["credit"]) for line in entry["lines"])
    assert debits == credits == Decimal("414.74")


def test_a_connection_that_does_not_post_to_the_sandbox_has_no_ledger(ar, connection):
    Connection.objects.filter(pk=connection.pk).update(target=Connection.Target.BUSINESS_CENTRAL)
    assert ar.get(f"{BASE}/ledger/accounts/").status_code == 404
