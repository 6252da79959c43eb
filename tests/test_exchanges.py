"""Each posting attempt keeps what was sent to the ERP and what came back, on the event that ends
it: redacted of every secret, bounded in size, shown on the record page and in the API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from console.access import Role
from syncengine import services
from syncengine.erps.exchanges import (
    MAX_ATTEMPT_CHARS,
    MAX_BODY_CHARS,
    MAX_EXCHANGES,
    REDACTED,
    exchange_record,
    exchanges_captured,
)
from syncengine.models import SyncEvent, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest
from tests.fakes.business_central import CLIENT_SECRET
from tests.test_business_central_engine import bc  # noqa: F401
from tests.test_business_central_engine import connection as bc_connection  # noqa: F401
from tests.test_console_views import user_with

pytest_plugins = ["tests.fakes.business_central"]


def post_due(at=NOW):
    return services.sync_run_until_idle(now=lambda: at)


def exchanges_of(event: SyncEvent) -> list[dict]:
    return event.data.get("exchanges", [])


# --- redaction and bounds ------------------------------------------------------------------------


def test_secret_headers_fields_form_values_and_query_values_are_replaced():
    with exchanges_captured() as capture:
        exchange_record(
            method="post",
            url="https://erp.example/token?api_key=k-123&company=ACME",
            request_headers={"Authorization": "Bearer abc", "Content-Type": "application/json",
                             "X-Trace": "noise"},
            request_body="grant_type=client_credentials&client_id=app&client_secret=s3cr3t",
            status=200,
            response_headers={"Set-Cookie": "session=xyz", "ETag": 'W/"1"'},
            response_body=b'{"access_token": "tok-999", "nested": [{"password": "pw"}], "n": 1.10}',
            elapsed_ms=12,
        )  # fmt: skip
    [exchange] = capture.as_data()["exchanges"]
    kept = json.dumps(exchange)
    for secret in ("k-123", "Bearer abc", "s3cr3t", "xyz", "tok-999", '"pw"'):
        assert secret not in kept
    assert exchange["method"] == "POST"
    assert "company=ACME" in exchange["url"] and "api_key=%5Bredacted%5D" in exchange["url"]
    assert exchange["request_headers"] == {"Authorization": REDACTED,
                                           "Content-Type": "application/json"}  # fmt: skip
    assert exchange["response_headers"] == {"Set-Cookie": REDACTED, "ETag": 'W/"1"'}
    assert "client_id=app" in exchange["request_body"]
    assert '"n": 1.10' in exchange["response_body"]  # a Decimal stays digit for digit


def test_nothing_is_kept_outside_a_capture_and_an_attempt_without_calls_adds_no_data():
    exchange_record(method="GET", url="https://erp.example/x", status=200)
    with exchanges_captured() as capture:
        pass
    assert capture.as_data() == {}


def test_long_bodies_are_cut_and_calls_past_the_limit_are_only_counted():
    with exchanges_captured() as capture:
        exchange_record(method="POST", url="u", request_body="x" * (MAX_BODY_CHARS + 500))
        for _ in range(MAX_EXCHANGES + 3):
            exchange_record(method="POST", url="u", request_body="y" * MAX_BODY_CHARS)
    data = capture.as_data()
    assert len(data["exchanges"]) == MAX_EXCHANGES and data["exchanges_omitted"] == 4
    assert data["exchanges"][0]["request_body"].endswith("[500 more characters not kept]")
    kept = sum(len(item["request_body"]) for item in data["exchanges"][:4])
    assert kept <= MAX_ATTEMPT_CHARS + 200
    assert (
        "characters not kept: this attempt's calls filled the record"
        in (data["exchanges"][-1]["request_body"])
    )


# --- the sandbox ledger --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_posted_sandbox_invoice_keeps_its_lookup_free_post_and_the_ledgers_answer(connection):
    ingest(connection, envelope())
    post_due()
    posted = SyncRecord.objects.get().events.get(to_state=SyncState.POSTED)
    [exchange] = exchanges_of(posted)
    assert exchange["method"] == "POST" and exchange["url"] == "sandbox://demo/invoices"
    assert exchange["status"] == 200 and not exchange["error"]
    assert '"external_document_number": "ST-INV-4242"' in exchange["request_body"]
    assert '"amount": "414.74"' in exchange["request_body"]
    assert '"number": "SI-' in exchange["response_body"]


@pytest.mark.django_db
def test_a_refused_sandbox_call_keeps_the_refusal_and_the_retry_keeps_the_lookup(
    connection, settings
):
    settings.CROSSWALK_SANDBOX_FAULTS = "error_500=1"
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    failed = record.events.get(to_state=SyncState.RETRY_SCHEDULED)
    [refused] = exchanges_of(failed)
    assert refused["status"] is None and "HTTP 500" in refused["error"]
    settings.CROSSWALK_SANDBOX_FAULTS = ""
    post_due(record.next_attempt_at)
    posted = record.events.get(to_state=SyncState.POSTED)
    lookup, post = exchanges_of(posted)
    assert (lookup["method"], lookup["url"], lookup["status"]) == (
        "GET", "sandbox://demo/invoices?key=ST-INV-4242", 404,
    )  # fmt: skip
    assert (post["method"], post["status"]) == ("POST", 200)


# --- Business Central ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_business_central_calls_are_kept_without_the_client_secret_or_the_token(bc_connection, bc):  # noqa: F811, E501
    ingest(bc_connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.POSTED
    exchanges = exchanges_of(record.events.get(to_state=SyncState.POSTED))
    assert any(item["url"].endswith("/$batch") and item["status"] == 200 for item in exchanges)
    batch = next(item for item in exchanges if item["url"].endswith("/$batch"))
    assert batch["request_headers"]["Authorization"] == REDACTED
    assert batch["request_headers"]["Isolation"] == "snapshot"
    assert '"externalDocumentNumber": "ST-INV-4242"' in batch["request_body"]
    everything = json.dumps([event.data for event in SyncEvent.objects.all()])
    assert CLIENT_SECRET not in everything
    for token in bc.tokens:
        assert token not in everything


@pytest.mark.django_db
def test_a_business_central_refusal_keeps_its_error_answer_on_the_failed_event(bc_connection, bc):  # noqa: F811, E501
    bc.rows("accounts", number="4011")[0]["blocked"] = True
    ingest(bc_connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.FAILED
    # A $batch answers 200 and carries each operation's own answer: the refusal is in there.
    [batch] = [item for item in exchanges_of(record.events.get(to_state=SyncState.FAILED))
               if item["url"].endswith("/$batch")]  # fmt: skip
    assert '"status": 400' in batch["response_body"] and "4011" in batch["response_body"]


@pytest.mark.django_db
def test_a_business_central_timeout_is_kept_as_a_call_with_no_answer(bc_connection, bc):  # noqa: F811, E501
    bc_connection.erp_settings["timeout_seconds"] = 0.5
    bc_connection.save(update_fields=["erp_settings"])
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    ingest(bc_connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    assert record.state == SyncState.UNCERTAIN
    [unanswered] = [item for item in exchanges_of(record.events.get(to_state=SyncState.UNCERTAIN))
                    if item["url"].endswith("/$batch")]  # fmt: skip
    assert unanswered["status"] is None and "no answer within 0.5 s" in unanswered["error"]
    post_due(NOW + timedelta(hours=2))
    record.refresh_from_db()
    lookups = exchanges_of(record.events.get(to_state=SyncState.POSTED))
    assert lookups[0]["method"] == "GET" and "externalDocumentNumber" in lookups[0]["url"]


# --- where people read them ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_record_page_shows_each_call_with_its_request_and_answer(client, connection):
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    client.force_login(user_with(Role.AR, connection))
    page = client.get(reverse("console:record-detail", args=[record.pk])).content.decode()
    assert "1 ERP call: what was sent and what came back" in page
    assert "POST sandbox://demo/invoices" in page
    assert "&quot;external_document_number&quot;: &quot;ST-INV-4242&quot;" in page
    # Kept compact, shown indented.
    posted = record.events.get(to_state=SyncState.POSTED).data["exchanges"][0]
    assert "\n" not in posted["request_body"]
    assert (
        "\n    &quot;operation&quot;: &quot;create invoice and post its journal entry&quot;" in page
    )


@pytest.mark.django_db
def test_the_api_record_detail_carries_the_calls_in_its_events(client, connection):
    ingest(connection, envelope())
    post_due()
    record = SyncRecord.objects.get()
    client.force_login(user_with(Role.AR, connection))
    body = client.get(f"/api/v1/records/{record.pk}/").json()
    posted = next(event for event in body["events"] if event["to_state"] == SyncState.POSTED)
    assert posted["data"]["exchanges"][0]["url"] == "sandbox://demo/invoices"
