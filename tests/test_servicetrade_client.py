"""Contract tests of the ServiceTrade client against the fake ServiceTrade: authentication,
envelopes, pages, epoch dates, backoff, timeouts, and every read and write the connector uses."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from syncengine.sources.servicetrade_api.client import (
    INVOICE_STATUSES,
    ServiceTradeError,
    from_epoch,
    jwt_expiry,
    to_epoch,
)
from syncengine.sources.servicetrade_api.fake import CLIENT_SECRET, PASSWORD
from tests.fakes.servicetrade import make_client

pytest_plugins = ["tests.fakes.servicetrade"]


# --- authentication -----------------------------------------------------------------------------


def test_client_credentials_log_in_once_and_reuse_the_token(fake_st):
    fake_st.add("company", name="Harbor Foods", status="active")
    client, _ = make_client(fake_st)
    with client:
        assert client.companies()[0]["name"] == "Harbor Foods"
        assert client.companies()[0]["name"] == "Harbor Foods"
    assert fake_st.logins == 1


def test_the_password_grant_logs_in_and_its_rotated_refresh_token_is_handed_back(fake_st):
    client, _ = make_client(fake_st, auth_mode="oauth2_password")
    rotated: list[str] = []
    client._on_refresh_token = rotated.append
    with client:
        client.service_lines()
    assert len(rotated) == 1
    assert rotated[0] in fake_st.refresh_tokens


def test_an_access_token_is_renewed_five_minutes_before_it_expires(fake_st):
    now = [fake_st.clock()]
    client, _ = make_client(fake_st, auth_mode="oauth2_refresh_token")
    client._clock = lambda: now[0]
    rotated: list[str] = []
    client._on_refresh_token = rotated.append
    with client:
        client.users()
        expires = max(fake_st.access_tokens.values())
        now[0] = expires - 301
        client.users()
        assert fake_st.logins == 1
        now[0] = expires - 299
        client.users()
    assert fake_st.logins == 2
    # The refresh token was rotated by each grant; the newest one is the one that works.
    assert rotated[-1] in fake_st.refresh_tokens
    assert "fake-refresh-token-0" not in fake_st.refresh_tokens


def test_a_401_logs_in_again_once_and_the_call_succeeds(fake_st):
    fake_st.add("job", number="J-1", status="completed")
    client, _ = make_client(fake_st)
    with client:
        client.jobs()
        fake_st.expire_tokens()
        assert client.jobs()[0]["number"] == "J-1"
    assert fake_st.logins == 2


def test_a_401_after_logging_in_again_is_an_error_not_a_loop(fake_st):
    client, _ = make_client(fake_st)
    fake_st.fail("GET", "/job", 401, times=10)
    with client, pytest.raises(ServiceTradeError) as raised:
        client.jobs()
    assert raised.value.status == 401
    assert len(fake_st.calls("GET", "/job")) == 2


def test_refused_credentials_never_show_the_secret(fake_st):
    client, _ = make_client(fake_st)
    client._secrets["client_secret"] = "wrong-" + CLIENT_SECRET
    with pytest.raises(ServiceTradeError) as raised:
        client.companies()
    assert raised.value.status == 401
    assert not raised.value.transient
    assert CLIENT_SECRET not in str(raised.value)
    assert "client_credentials" in str(raised.value)


def test_the_legacy_session_uses_one_token_per_run_and_deletes_it_afterwards(fake_st):
    client, _ = make_client(fake_st, auth_mode="session")
    with client:
        client.companies()
        client.locations()
        assert len(fake_st.sessions) == 1
    assert fake_st.logins == 1
    assert fake_st.logouts == 1
    assert fake_st.sessions == []


def test_a_session_dropped_by_servicetrade_is_replaced_once_and_still_deleted(fake_st):
    client, _ = make_client(fake_st, auth_mode="session")
    with client:
        client.companies()
        fake_st.sessions.clear()  # ServiceTrade dropped the oldest session of this user
        client.companies()
    assert fake_st.logins == 2
    assert fake_st.sessions == []


def test_a_session_login_with_a_wrong_password_is_an_error_naming_no_password(fake_st):
    client, _ = make_client(fake_st, auth_mode="session")
    client._secrets["password"] = "not-" + PASSWORD
    with pytest.raises(ServiceTradeError) as raised:
        client.companies()
    assert raised.value.status == 403
    assert PASSWORD not in str(raised.value)


def test_missing_credentials_are_named_before_any_call(fake_st):
    with pytest.raises(ServiceTradeError, match="lack client_secret"):
        from syncengine.sources.servicetrade_api.client import ServiceTradeClient
        from tests.fakes.servicetrade import st_settings

        ServiceTradeClient(settings=st_settings(fake_st), secrets={"client_id": "x"})
    assert fake_st.requests == []


# --- envelopes, pages, dates --------------------------------------------------------------------


def test_a_single_answer_is_unwrapped_from_its_data_envelope_with_exact_decimals(fake_st):
    invoice = fake_st.add_invoice()
    client, _ = make_client(fake_st)
    with client:
        fetched = client.invoice(invoice["id"])
    assert fetched["invoiceNumber"] == invoice["invoiceNumber"]
    assert fetched["items"][1]["price"] == Decimal("129.99")
    assert isinstance(fetched["taxRate"], Decimal)


def test_invoices_of_every_status_are_read_page_by_page(fake_st):
    for index in range(7):
        fake_st.add_invoice(status=INVOICE_STATUSES[index])
    client, _ = make_client(fake_st, page_limit=3)
    with client:
        pages = list(client.invoice_pages())
    assert [p.number for p in pages] == [1, 2, 3]
    assert sum(len(p.items) for p in pages) == 7
    asked = fake_st.calls("GET", "/invoice")
    assert {q["status"] for q in asked} == {",".join(INVOICE_STATUSES)}
    assert [q["page"] for q in asked] == ["1", "2", "3"]
    assert {q["limit"] for q in asked} == {"3"}


def test_a_page_size_above_the_documented_cap_is_never_asked_for(fake_st):
    fake_st.add_invoice()
    client, _ = make_client(fake_st, page_limit=5000)
    with client:
        client.invoices()
        client.locations()
    assert fake_st.calls("GET", "/invoice")[0]["limit"] == "2000"
    assert fake_st.calls("GET", "/location")[0]["limit"] == "5000"


def test_an_empty_list_is_one_page_with_nothing_in_it(fake_st):
    client, _ = make_client(fake_st)
    with client:
        assert client.invoices() == []
    assert len(fake_st.calls("GET", "/invoice")) == 1


def test_dates_travel_as_epoch_seconds(fake_st):
    old = fake_st.add_invoice()
    fake_st.change("invoice", old["id"], updated=1_800_000_000)
    fake_st.add_invoice(updated=1_700_000_000)
    client, _ = make_client(fake_st)
    after = datetime(2027, 1, 1, tzinfo=UTC)
    with client:
        found = client.invoices(updatedAfter=after)
    assert [i["id"] for i in found] == [old["id"]]
    assert fake_st.calls("GET", "/invoice")[0]["updatedAfter"] == str(to_epoch(after))
    assert to_epoch(date(2026, 11, 20)) == 1_795_132_800
    assert from_epoch("1795132800") == datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        to_epoch(datetime(2026, 11, 20))  # noqa: DTZ001


def test_a_token_expiry_is_read_from_the_jwt(fake_st):
    client, _ = make_client(fake_st)
    with client:
        client.users()
    token = next(iter(fake_st.access_tokens))
    assert jwt_expiry(token) == int(fake_st.access_tokens[token])
    assert jwt_expiry("not-a-jwt") is None


# --- failures: 429, 5xx, timeouts ---------------------------------------------------------------


def test_a_429_waits_at_least_as_long_as_retry_after_then_succeeds(fake_st):
    fake_st.add("company", name="Harbor Foods")
    fake_st.fail("GET", "/company", 429, times=2, retry_after="7")
    client, sleeps = make_client(fake_st)
    with client:
        assert len(client.companies()) == 1
    assert len(sleeps) == 2
    assert all(wait >= 7 for wait in sleeps)


def test_a_retry_after_longer_than_allowed_is_an_error_saying_when_to_come_back(fake_st):
    fake_st.fail("GET", "/company", 429, times=1, retry_after="3600")
    client, sleeps = make_client(fake_st, max_retry_after_seconds=60)
    with client, pytest.raises(ServiceTradeError, match="retry after 3600 s") as raised:
        client.companies()
    assert raised.value.transient
    assert sleeps == []


def test_5xx_answers_back_off_exponentially_with_jitter(fake_st):
    fake_st.fail("GET", "/user", 503, times=3)
    client, sleeps = make_client(fake_st, backoff_base_seconds=1, max_attempts=4)
    with client:
        client.users()
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps):
        assert 0.5 * 2**attempt <= wait <= 2**attempt


def test_5xx_beyond_the_attempts_allowed_is_a_transient_error(fake_st):
    fake_st.fail("GET", "/user", 502, times=10)
    client, sleeps = make_client(fake_st, max_attempts=3)
    with client, pytest.raises(ServiceTradeError) as raised:
        client.users()
    assert raised.value.transient
    assert raised.value.status == 502
    assert len(fake_st.calls("GET", "/user")) == 3


def test_a_create_is_not_sent_again_after_a_5xx_because_it_may_have_landed(fake_st):
    job = fake_st.add("job", number="J-1")
    fake_st.fail("POST", "/jobitem", 500, times=1)
    client, _ = make_client(fake_st)
    with client, pytest.raises(ServiceTradeError) as raised:
        client.job_item_create({"jobId": job["id"], "name": "Filter", "quantity": 1})
    assert raised.value.outcome_unknown
    assert len(fake_st.calls("POST", "/jobitem")) == 1


def test_every_call_has_a_timeout_and_a_slow_answer_is_retried(fake_st):
    fake_st.delays["/serviceline"] = 0.5
    client, sleeps = make_client(fake_st, timeout_seconds=0.1, max_attempts=2)
    with client, pytest.raises(ServiceTradeError, match="ReadTimeout") as raised:
        client.service_lines()
    assert raised.value.transient
    assert len(sleeps) == 1
    fake_st.delays.clear()


def test_a_validation_error_carries_servicetrade_s_own_message(fake_st):
    fake_st.add("job", number="J-1")
    client, _ = make_client(fake_st)
    with client, pytest.raises(ServiceTradeError, match="name is required") as raised:
        client.job_item_create({"jobId": 1, "quantity": 1})
    assert raised.value.status == 400
    assert not raised.value.transient


# --- reads and writes ---------------------------------------------------------------------------


def test_every_documented_read_returns_its_list(fake_st):
    job = fake_st.add("job", number="J-7", status="completed")
    fake_st.add("company", name="Harbor Foods")
    fake_st.add("location", name="Harbor Foods #12", companyId=1)
    fake_st.add("contact", firstName="Ann")
    fake_st.add("jobitem", name="Filter", job={"id": job["id"]}, quantity=1)
    fake_st.add("clock", activity="onsite", job={"id": job["id"]}, user={"id": 3})
    fake_st.add("serviceline", name="Sprinkler", trade="Fire Protection", abbr="SP")
    fake_st.add("office", name="Raleigh")
    fake_st.add("user", name="Tom Becker", role="technician")
    fake_st.add("user", name="Ada Office", role="office")
    client, _ = make_client(fake_st)
    with client:
        assert client.job(job["id"])["number"] == "J-7"
        assert [j["number"] for j in client.jobs()] == ["J-7"]
        assert client.companies()[0]["name"] == "Harbor Foods"
        assert client.locations()[0]["name"] == "Harbor Foods #12"
        assert client.contacts()[0]["firstName"] == "Ann"
        assert client.job_items(jobId=job["id"])[0]["name"] == "Filter"
        assert client.clock_events(jobId=job["id"])[0]["activity"] == "onsite"
        assert client.service_lines()[0]["abbr"] == "SP"
        assert client.offices()[0]["name"] == "Raleigh"
        assert [u["name"] for u in client.technicians()] == ["Tom Becker"]
    assert fake_st.calls("GET", "/job")[0]["status"] == "all"


def test_external_ids_are_created_then_changed_and_found_again(fake_st):
    job = fake_st.add("job", number="J-9")
    client, _ = make_client(fake_st)
    with client:
        client.external_id_set(entity_type="job", entity_id=job["id"], system="crosswalk",
                               value="SI-1001")  # fmt: skip
        client.external_id_set(entity_type="job", entity_id=job["id"], system="crosswalk",
                               value="SI-1001")  # fmt: skip
        client.external_id_set(entity_type="job", entity_id=job["id"], system="crosswalk",
                               value="SI-1002")  # fmt: skip
        assert client.external_ids("job", job["id"]) == {"crosswalk": "SI-1002"}
        assert client.entity_by_external_id("job", "crosswalk", "SI-1002")["id"] == job["id"]
    assert len(fake_st.calls("POST", f"/externalid/job/{job['id']}/crosswalk")) == 1
    assert len(fake_st.calls("PUT", f"/externalid/job/{job['id']}/crosswalk")) == 1


def test_external_ids_only_go_on_entity_types_that_keep_them(fake_st):
    client, _ = make_client(fake_st)
    with client, pytest.raises(ServiceTradeError, match="no external ids for 'invoice'"):
        client.external_id_set(entity_type="invoice", entity_id=1, system="x", value="y")


def test_an_invoice_status_is_set_and_an_impossible_change_is_refused(fake_st):
    invoice = fake_st.add_invoice()
    void = fake_st.add_invoice(status="void")
    client, _ = make_client(fake_st)
    with client:
        assert client.invoice_status_set(invoice["id"], "processed")["status"] == "processed"
        with pytest.raises(ServiceTradeError, match="cannot change status"):
            client.invoice_status_set(void["id"], "processed")
        with pytest.raises(ServiceTradeError, match="not a ServiceTrade invoice status"):
            client.invoice_status_set(invoice["id"], "posted")


def test_comments_and_job_items_are_created(fake_st):
    job = fake_st.add("job", number="J-3")
    client, _ = make_client(fake_st)
    with client:
        comment = client.comment_add(entity_type=99, entity_id=5, content="Why it failed")
        item = client.job_item_create({"jobId": job["id"], "name": "Valve", "quantity": 2,
                                       "cost": Decimal("12.50")})  # fmt: skip
    assert comment["content"] == "Why it failed"
    assert fake_st.entities["jobitem"][item["id"]]["cost"] == Decimal("12.50")


def test_webhooks_are_listed_created_changed_and_deleted(fake_st):
    client, _ = make_client(fake_st)
    with client:
        hook = client.webhook_create({"hookUrl": "https://x.example/h/1/", "entityEvents": []})
        client.webhook_update(hook["id"], {"enabled": False})
        assert client.webhooks()[0]["enabled"] is False
        client.webhook_delete(hook["id"])
        assert client.webhooks() == []


def test_an_id_that_is_not_a_number_never_reaches_the_url(fake_st):
    client, _ = make_client(fake_st)
    with client, pytest.raises(ServiceTradeError, match="not a ServiceTrade id"):
        client.invoice("../auth")
    assert fake_st.requests == []
