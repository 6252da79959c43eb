"""The Business Central connector against the fake Business Central: every endpoint it uses and
every way a call can fail."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mappings.catalog import catalog_refresh, catalogs_refresh
from mappings.models import CatalogEntry
from mappings.resolve import Coding, InvoicePlan, PlanLine
from mappings.resolve_time import TimePlan, TimePlanEntry
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.business_central.client import BusinessCentral
from syncengine.erps.business_central.errors import error_for, meaning_of
from syncengine.erps.business_central.http import BcApi, BcSettings
from syncengine.erps.registry import connector_for
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.fakes.business_central"]


def dims(**values: str) -> dict[str, Coding]:
    return {f"dimension:{name}": Coding(value, "test") for name, value in values.items()}


def make_plan(**changes) -> InvoicePlan:
    values = {
        "document_number": "10482",
        "posting_date": date(2025, 11, 20),
        "currency": "USD",
        "customer_ref": "501",
        "customer_name": "Harbor Foods",
        "receivable_account": "1200",
        "receivable_reason": "default",
        "total": Decimal("414.74"),
        "lines": (
            PlanLine("4010", Decimal("275.00"), "HVAC labor", "r", "", "1", "labor",
                     dims(DEPARTMENT="HVAC", BRANCH="RAL")),
            PlanLine("4011", Decimal("130.29"), "Thermostat and filters", "r", "", "2", "part",
                     dims(DEPARTMENT="HVAC", BRANCH="RAL")),
            PlanLine("2300", Decimal("9.45"), "Sales tax 7.25%", "r", "NC-7.25", "", "tax"),
        ),
    }  # fmt: skip
    values.update(changes)
    return InvoicePlan(**values)


@pytest.fixture
def bc(fake_bc):
    fake_bc.seed_demo_books()
    return fake_bc


def connector(fake, **settings) -> BusinessCentral:
    result = connector_for(fake.connection(**settings))
    assert isinstance(result, BusinessCentral)
    return result


def failure(call) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        call()
    return caught.value


# --- token and company ---------------------------------------------------------------------------


def test_check_names_the_company_after_getting_a_token_with_the_client_credentials(bc):
    assert connector(bc).check() == f"Business Central company {bc.company_name} (sandbox)"
    assert bc.token_requests == 1


def test_the_token_is_reused_and_fetched_again_once_when_business_central_answers_401(bc):
    erp = connector(bc)
    erp.catalog_lists()
    assert bc.token_requests == 1
    bc.expire_tokens()
    assert erp.find_invoice(key="ST-INV-1") is None
    assert bc.token_requests == 2


def test_a_refused_client_secret_is_an_auth_failure_whose_message_never_holds_the_secret(bc):
    erp = connector(bc)
    erp.connection.erp_settings["tenant_id"] = "contoso-tenant"
    api = BcApi(settings=erp.settings, client_id="crosswalk-app", client_secret="wrong-secret-99")
    error = failure(lambda: api.call("GET", "companies", what="list companies"))
    assert error.category == FailureCategory.AUTH
    assert "invalid_client" in error.message
    assert "wrong-secret-99" not in error.message and bc.client_secret not in error.message


def test_a_connection_without_client_credentials_says_what_to_set(bc):
    erp = connector(bc)
    erp.connection.erp_credentials = ""
    error = failure(erp.check)
    assert (error.category, error.transient) == (FailureCategory.AUTH, False)
    assert "client id and secret" in error.message


def test_a_company_configured_by_name_is_found_by_its_name(bc):
    erp = connector(bc, company_id="", company_name=bc.company_name)
    assert erp.check().startswith(f"Business Central company {bc.company_name}")
    assert any(sent.path == "companies" for sent in bc.sent)


def test_settings_without_a_tenant_are_refused_in_plain_words(bc):
    connection = bc.connection(tenant_id="")
    error = failure(lambda: BcSettings.of(connection))
    assert "lack tenant_id" in error.message and error.transient is False


# --- catalog -------------------------------------------------------------------------------------


def test_the_catalog_reads_every_list_page_by_page(bc):
    bc.add("vendors", number="V20000", displayName="Harbor Supply", blocked=" ")
    bc.add("vendors", number="V20001", displayName="Closed Parts Co", blocked="All")
    bc.add("projects", number="J-1042", displayName="Harbor Foods repair")
    items = connector(bc).catalog_lists()  # the fake answers 3 records a page
    by_kind: dict[str, dict[str, object]] = {}
    for item in items:
        by_kind.setdefault(item.kind, {})[f"{item.parent}/{item.code}"] = item
    assert len(by_kind["ACCOUNT"]) == 13
    assert by_kind["ACCOUNT"]["/4999"].accepts_postings is False  # an end-total
    assert by_kind["ACCOUNT"]["/1200"].accepts_postings is True  # receivables: no direct posting
    assert set(by_kind["DIMENSION"]) == {"/DEPARTMENT", "/BRANCH"}
    assert by_kind["DIMENSION_VALUE"]["BRANCH/RAL"].name == "Raleigh"
    assert len(by_kind["DIMENSION_VALUE"]) == 11
    assert set(by_kind["TAX_CODE"]) == set(by_kind["TAX_GROUP"]) >= {"/NC-7.25", "/TN-9.25"}
    assert set(by_kind["TAX_AREA"]) == {"/NC"} and set(by_kind["PAYMENT_TERM"]) == {"/NET30"}
    assert len(by_kind["EMPLOYEE"]) == 8 and "/E300" in by_kind["EMPLOYEE"]
    assert set(by_kind["CUSTOMER"]) == {"/C10000"} and set(by_kind["ITEM"]) == {"/1896-S"}
    assert (
        by_kind["VENDOR"]["/V20000"].name == "Harbor Supply"
        and not by_kind["VENDOR"]["/V20001"].active
    )
    assert by_kind["PROJECT"]["/J-1042"].name == "Harbor Foods repair"
    assert any("$skiptoken" in sent.path or sent.method == "GET" for sent in bc.sent)


def test_a_read_of_changes_asks_only_for_records_changed_since_and_every_dimension(fake_bc):
    clock = [NOW - timedelta(days=1)]
    fake_bc.clock = lambda: clock[0]
    fake_bc.seed_demo_books()
    clock[0] = NOW + timedelta(minutes=10)
    fake_bc.change("accounts", {"number": "4050"}, blocked=True)
    fake_bc.change("dimensionValues", {"code": "RAL"}, displayName="Raleigh-Durham")
    fake_bc.add("vendors", number="V20000", displayName="Harbor Supply", blocked=" ")
    erp = connector(fake_bc)
    items = erp.catalog_lists(changed_since=NOW)
    assert sorted((item.kind, item.parent, item.code, item.active) for item in items) == [
        ("ACCOUNT", "", "4050", False), ("DIMENSION", "", "BRANCH", True),
        ("DIMENSION", "", "DEPARTMENT", True), ("DIMENSION_VALUE", "BRANCH", "RAL", True),
        ("VENDOR", "", "V20000", True),
    ]  # fmt: skip
    assert len(erp.catalog_lists(changed_since=NOW - timedelta(days=2))) > 40


def test_the_schedule_keeps_the_catalog_current_and_its_daily_whole_read_flags_deletions(
    fake_bc,
):
    clock = [NOW - timedelta(days=1)]
    fake_bc.clock = lambda: clock[0]
    fake_bc.seed_demo_books()
    fake_bc.add("items", number="1900-S", displayName="Coil cleaner", blocked=False)
    connection = fake_bc.connection()
    catalog_refresh(connection=connection, actor="test", now=NOW)
    clock[0] = NOW + timedelta(minutes=30)
    fake_bc.change("accounts", {"number": "4050"}, blocked=True)
    fake_bc.remove("items", number="1896-S")
    [hourly] = catalogs_refresh(actor="schedule", now=lambda: NOW + timedelta(hours=1))
    assert hourly.result is not None and hourly.result.returned == 3  # 4050 and two dimensions
    assert catalog_entry(connection, "ACCOUNT", "4050").active is False
    assert catalog_entry(connection, "ITEM", "1896-S").missing_since is None
    day_later = NOW + timedelta(days=1, hours=1)
    [daily] = catalogs_refresh(actor="schedule", now=lambda: day_later)
    assert daily.result is not None and daily.result.changed_since is None
    assert catalog_entry(connection, "ITEM", "1896-S").missing_since == day_later


def catalog_entry(connection, kind: str, code: str) -> CatalogEntry:
    return CatalogEntry.objects.get(connection=connection, kind=kind, code=code)


def test_a_blocked_account_and_a_blocked_customer_are_read_as_inactive(bc):
    bc.rows("accounts", number="4050")[0]["blocked"] = True
    bc.rows("customers", number="C10000")[0]["blocked"] = "All"
    items = {(item.kind, item.code): item for item in connector(bc).catalog_lists()}
    assert items[("ACCOUNT", "4050")].active is False
    assert items[("CUSTOMER", "C10000")].active is False


# --- invoices ------------------------------------------------------------------------------------


def test_an_invoice_goes_as_one_snapshot_batch_then_is_posted_with_its_key(bc):
    document = connector(bc).post_invoice(plan=make_plan(), key="ST-INV-4242")
    [invoice] = bc.rows("salesInvoices")
    assert (invoice["externalDocumentNumber"], invoice["status"]) == ("ST-INV-4242", "Open")
    assert invoice["totalAmountIncludingTax"] == Decimal("414.74")
    assert invoice["customerNumber"] == "ST501" and invoice["postingDate"] == "2025-11-20"
    assert (document.id, document.number) == (invoice["id"], invoice["number"])
    assert document.number.startswith("PS-INV")
    assert "page=132" in document.url and document.number in document.url
    lines = bc.rows("salesInvoiceLines", _parent=invoice["id"])
    assert sorted(line["amountIncludingTax"] for line in lines) == [
        Decimal("9.45"), Decimal("130.29"), Decimal("275.00"),
    ]  # fmt: skip
    assert len(bc.rows("dimensionSetLines")) == 4  # two per revenue line, none on the tax line
    batches = [sent for sent in bc.sent if sent.path == "$batch"]
    assert len(batches) == 1 and batches[0].headers["Isolation"] == "snapshot"
    assert [sent.path.rsplit("/", 1)[-1] for sent in bc.sent if sent.method == "POST"][-1] == (
        "Microsoft.NAV.post"
    )


def test_a_negative_line_is_sent_as_a_negative_quantity_and_the_total_ties_to_the_cent(bc):
    lines = (
        PlanLine("4010", Decimal("200.00"), "Labor", "r", dims(BRANCH="RAL")),
        PlanLine("4010", Decimal("-35.00"), "Discount", "r", dims(BRANCH="RAL")),
    )
    connector(bc).post_invoice(plan=make_plan(lines=lines, total=Decimal("165.00")), key="K-1")
    [invoice] = bc.rows("salesInvoices")
    assert invoice["totalAmountIncludingTax"] == Decimal("165.00")
    discount = bc.rows("salesInvoiceLines", description="Discount")[0]
    assert (discount["quantity"], discount["unitPrice"]) == (Decimal(-1), Decimal("35.00"))


def test_the_draft_policy_leaves_the_invoice_as_a_draft_linked_to_the_draft_page(bc):
    document = connector(bc, post_policy="draft").post_invoice(plan=make_plan(), key="ST-INV-1")
    assert bc.rows("salesInvoices")[0]["status"] == "Draft"
    assert "page=43" in document.url
    assert not any(sent.path.endswith("Microsoft.NAV.post") for sent in bc.sent)


def test_a_missing_customer_is_created_first_when_the_connection_allows_it(bc):
    connector(bc).post_invoice(plan=make_plan(), key="ST-INV-1")
    [customer] = bc.rows("customers", number="ST501")
    assert customer["displayName"] == "Harbor Foods"


def test_a_missing_customer_is_a_prerequisite_failure_naming_it_when_creation_is_not_allowed(bc):
    erp = connector(bc, create_customers=False)
    error = failure(lambda: erp.post_invoice(plan=make_plan(), key="ST-INV-1"))
    assert (error.category, error.transient) == (FailureCategory.PREREQUISITE, False)
    assert "Customer ST501 (Harbor Foods) does not exist" in error.message
    assert not bc.rows("salesInvoices")


def test_an_existing_customer_is_used_as_it_is(bc):
    erp = connector(bc, customer_number_prefix="C")
    erp.post_invoice(plan=make_plan(customer_ref="10000"), key="ST-INV-1")
    assert bc.rows("salesInvoices")[0]["customerName"] == "Adatum Corporation"
    assert len(bc.rows("customers")) == 1


def test_a_blocked_customer_is_a_prerequisite_failure(bc):
    bc.rows("customers", number="C10000")[0]["blocked"] = "All"
    erp = connector(bc, customer_number_prefix="C")
    error = failure(lambda: erp.post_invoice(plan=make_plan(customer_ref="10000"), key="K"))
    assert error.category == FailureCategory.PREREQUISITE and "is blocked" in error.message


def test_a_blocked_account_refuses_the_whole_batch_and_leaves_nothing_behind(bc):
    bc.rows("accounts", number="4011")[0]["blocked"] = True
    error = failure(lambda: connector(bc).post_invoice(plan=make_plan(), key="ST-INV-1"))
    assert (error.category, error.transient) == (FailureCategory.VALUE, False)
    assert "Application_FieldValidationException" in error.message and "4011" in error.message
    assert bc.rows("salesInvoices") == [] and bc.rows("salesInvoiceLines") == []


def test_a_dimension_value_that_is_not_allowed_is_refused_in_plain_words(bc):
    bc.rows("dimensionValues", code="RAL")[0]["blocked"] = True
    error = failure(lambda: connector(bc).post_invoice(plan=make_plan(), key="ST-INV-1"))
    assert error.category == FailureCategory.VALUE
    assert error.message.startswith("Business Central could not create invoice 10482 (ST-INV-1)")
    assert "BRANCH RAL is blocked" in error.message
    assert bc.rows("salesInvoices") == []


def test_an_unknown_dimension_value_is_a_missing_reference(bc):
    lines = (PlanLine("4010", Decimal("10.00"), "x", "r", codings=dims(BRANCH="NOPE")),)
    erp = connector(bc)
    error = failure(
        lambda: erp.post_invoice(plan=make_plan(lines=lines, total=Decimal(10)), key="K")
    )
    assert error.category == FailureCategory.MISSING_REFERENCE
    assert "Internal_InvalidTableRelation" in error.message


def test_a_too_large_invoice_is_refused_before_anything_is_sent(bc):
    lines = tuple(PlanLine("4010", Decimal("1.00"), f"L{i}", "r", codings=dims(BRANCH="RAL"))
                  for i in range(50))  # fmt: skip
    erp = connector(bc)
    error = failure(
        lambda: erp.post_invoice(plan=make_plan(lines=lines, total=Decimal(50)), key="K")
    )
    assert error.category == FailureCategory.VALUE and "at most 100" in error.message
    assert "Nothing was sent" in error.message
    assert not any(sent.path == "$batch" for sent in bc.sent)


def test_a_negative_invoice_is_refused_as_one_to_issue_as_a_credit_memo(bc):
    lines = (PlanLine("4010", Decimal("-5.00"), "x", "r"),)
    erp = connector(bc)
    error = failure(
        lambda: erp.post_invoice(plan=make_plan(lines=lines, total=Decimal(-5)), key="K")
    )
    assert error.category == FailureCategory.VALUE and "credit memo" in error.message


def test_a_customer_it_creates_gets_the_rules_document_dimensions_as_defaults_in_one_batch(bc):
    erp = connector(bc, customer_dimension_posting="Same Code")
    erp.post_invoice(plan=make_plan(customer_dimensions={"BRANCH": "RAL"}), key="ST-INV-1")
    [customer] = bc.rows("customers", number="ST501")
    [default] = bc.rows("defaultDimensions", parentId=customer["id"])
    assert (default["parentType"], default["dimensionCode"], default["dimensionValueCode"]) == (
        "Customer", "BRANCH", "RAL",
    )  # fmt: skip
    assert default["postingValidation"] == "Same_x0020_Code"
    creates = [sent for sent in bc.sent if sent.method == "POST" and sent.entity_set in
               ("customers", "defaultDimensions")]  # fmt: skip
    assert [(sent.entity_set, sent.in_batch) for sent in creates] == [
        ("customers", True), ("defaultDimensions", True),
    ]  # fmt: skip
    assert set(creates[1].body) == {"dimensionId", "dimensionValueId", "postingValidation"}


def test_without_a_posting_validation_setting_none_is_sent_and_the_default_is_a_plain_one(bc):
    connector(bc).post_invoice(plan=make_plan(customer_dimensions={"BRANCH": "RAL"}), key="K")
    [default] = bc.rows("defaultDimensions")
    assert default["postingValidation"] == "_x0020_"
    [sent] = [sent for sent in bc.sent if sent.entity_set == "defaultDimensions"]
    assert "postingValidation" not in sent.body


def test_an_existing_customer_keeps_the_default_dimensions_it_has(bc):
    erp = connector(bc, customer_number_prefix="C")
    plan = make_plan(customer_ref="10000", customer_dimensions={"BRANCH": "RAL"})
    erp.post_invoice(plan=plan, key="ST-INV-1")
    assert bc.rows("defaultDimensions") == [] and len(bc.rows("salesInvoices")) == 1


def test_a_default_dimension_value_business_central_lacks_creates_no_customer(bc):
    plan = make_plan(customer_dimensions={"BRANCH": "NOPE"})
    error = failure(lambda: connector(bc).post_invoice(plan=plan, key="ST-INV-1"))
    assert (error.category, error.transient) == (FailureCategory.MISSING_REFERENCE, False)
    assert "no BRANCH value NOPE" in error.message
    assert bc.rows("customers", number="ST501") == [] and bc.rows("salesInvoices") == []


def test_a_default_dimension_business_central_refuses_rolls_the_new_customer_back(bc):
    bc.add_dimension("AREA", {"EAST": "East"})
    bc.rows("dimensionValues", code="EAST")[0]["blocked"] = True
    plan = make_plan(customer_dimensions={"AREA": "EAST"})
    error = failure(lambda: connector(bc).post_invoice(plan=plan, key="ST-INV-1"))
    assert error.category == FailureCategory.VALUE and "AREA EAST is blocked" in error.message
    assert bc.rows("customers", number="ST501") == [] and bc.rows("defaultDimensions") == []


def test_an_unknown_posting_validation_setting_is_refused_in_plain_words(bc):
    erp = connector(bc, customer_dimension_posting="Strict")
    plan = make_plan(customer_dimensions={"BRANCH": "RAL"})
    error = failure(lambda: erp.post_invoice(plan=plan, key="ST-INV-1"))
    assert error.category == FailureCategory.VALUE
    assert "customer_dimension_posting must be empty, Code Mandatory or Same Code" in error.message
    assert bc.rows("customers", number="ST501") == []


def test_a_customer_whose_blocked_option_reads_encoded_blank_is_not_blocked(bc):
    # Schema version 2.0 (the default since 2024 wave 1) spells the blank option "_x0020_".
    bc.rows("customers", number="C10000")[0]["blocked"] = "_x0020_"
    erp = connector(bc, customer_number_prefix="C")
    erp.post_invoice(plan=make_plan(customer_ref="10000"), key="ST-INV-1")
    assert bc.rows("salesInvoices")[0]["customerNumber"] == "C10000"


# --- failures of the wire ------------------------------------------------------------------------


def test_429_is_a_transient_rate_limit_failure_carrying_retry_after(bc):
    bc.inject("429", path_contains="$batch", retry_after=42)
    error = failure(lambda: connector(bc).post_invoice(plan=make_plan(), key="ST-INV-1"))
    assert (error.category, error.transient) == (FailureCategory.RATE_LIMIT, True)
    assert error.retry_after_seconds == 42 and error.outcome_unknown is False
    assert bc.rows("salesInvoices") == []


@pytest.mark.parametrize("status", ["500", "503"])
def test_a_server_error_is_a_transient_connection_failure_and_creates_nothing(bc, status):
    bc.inject(status, path_contains="$batch")
    error = failure(lambda: connector(bc).post_invoice(plan=make_plan(), key="ST-INV-1"))
    assert (error.category, error.transient) == (FailureCategory.CONNECTION, True)
    assert bc.rows("salesInvoices") == []


def test_an_unreachable_server_is_transient_and_not_an_unknown_outcome(bc):
    erp = connector(bc, api_base_url="http://127.0.0.1:9", login_base_url="http://127.0.0.1:9")
    error = failure(erp.check)
    assert (error.category, error.transient, error.outcome_unknown) == (
        FailureCategory.CONNECTION, True, False,
    )  # fmt: skip


def test_a_create_whose_answer_is_lost_is_found_by_its_key_and_never_created_twice(bc):
    bc.commit_delay = 1.5
    bc.inject("timeout_after_commit", path_contains="$batch")
    erp = connector(bc, timeout_seconds=0.5)
    error = failure(lambda: erp.post_invoice(plan=make_plan(), key="ST-INV-4242"))
    assert (error.transient, error.outcome_unknown) == (True, True)
    assert "looked up before any retry" in error.message
    # The retry looks first (as the engine does after an attempt): it finds the document, and
    # finishes posting the draft the lost attempt left.
    found = erp.find_invoice(key="ST-INV-4242")
    assert found is not None and found.number.startswith("PS-INV")
    [invoice] = bc.rows("salesInvoices")
    assert (invoice["id"], invoice["status"]) == (found.id, "Open")


def test_a_dropped_connection_after_a_commit_is_an_unknown_outcome_found_by_its_key(bc):
    bc.chaos(seed=3, drop_after_commit=1.0)
    erp = connector(bc, customer_number_prefix="C")  # an existing customer: the batch is first
    plan = make_plan(customer_ref="10000")
    error = failure(lambda: erp.post_invoice(plan=plan, key="ST-INV-9"))
    assert (error.category, error.transient, error.outcome_unknown) == (
        FailureCategory.CONNECTION, True, True,
    )  # fmt: skip
    assert "dropped the connection" in error.message
    assert bc.faults_fired["drop_after_commit"] >= 1
    bc.chaos(seed=3)  # no odds: the faults stop
    assert erp.find_invoice(key="ST-INV-9") is not None
    [invoice] = bc.rows("salesInvoices")
    assert invoice["status"] == "Open"  # the draft the lost batch left is posted now


def test_random_faults_hit_requests_in_the_proportions_asked_and_spare_the_token(bc):
    bc.chaos(seed=11, error_500=0.25, rate_limit=0.25)
    erp = connector(bc)
    outcomes = []
    for _ in range(200):
        try:
            erp.api.call("GET", f"{erp.api.company_path()}/accounts", what="read")
            outcomes.append("ok")
        except ConnectorError as error:
            outcomes.append(error.category)
    assert bc.token_requests == 1
    assert 60 <= outcomes.count("ok") <= 140
    assert outcomes.count(FailureCategory.CONNECTION) == bc.faults_fired["error_500"] > 20
    assert outcomes.count(FailureCategory.RATE_LIMIT) == bc.faults_fired["rate_limit"] > 20


def test_a_customer_another_worker_created_a_moment_before_is_used_not_refused(bc):
    erp = connector(bc)
    bc.add("customers", number="ST501", displayName="Harbor Foods (theirs)", blocked=" ")
    lookups = iter([[]])
    real_get_all = erp.api.get_all

    def get_all(url, **kwargs):
        # The lookup before the create sees nothing: the other worker had not created it yet.
        if url.endswith("/customers") and next(lookups, None) is not None:
            return iter([])
        return real_get_all(url, **kwargs)

    erp.api.get_all = get_all  # type: ignore[method-assign]
    erp.post_invoice(plan=make_plan(), key="ST-INV-1")
    assert len(bc.rows("customers", number="ST501")) == 1
    assert bc.rows("salesInvoices")[0]["customerName"] == "Harbor Foods (theirs)"


def test_a_draft_left_by_a_failed_post_is_posted_when_it_is_found(bc):
    bc.inject("503", path_contains="Microsoft.NAV.post")
    erp = connector(bc)
    failure(lambda: erp.post_invoice(plan=make_plan(), key="ST-INV-7"))
    assert bc.rows("salesInvoices")[0]["status"] == "Draft"
    found = erp.find_invoice(key="ST-INV-7")
    assert found is not None and bc.rows("salesInvoices")[0]["status"] == "Open"


def test_updates_carry_the_etag_and_a_stale_one_is_a_transient_conflict(bc):
    erp = connector(bc)
    customer = bc.rows("customers")[0]
    path, etag = f"{erp.api.company_path()}/customers({customer['id']})", customer["@odata.etag"]
    fresh = erp.api.call("PATCH", path, body={"displayName": "Adatum"}, what="rename",
                         headers={"If-Match": etag}).body  # fmt: skip
    assert fresh["displayName"] == "Adatum" and fresh["@odata.etag"] != etag
    stale = failure(lambda: erp.api.call("PATCH", path, body={"displayName": "X"}, what="rename",
                                         headers={"If-Match": etag}))  # fmt: skip
    assert "Request_EntityChanged" in stale.message and stale.transient is True
    missing = failure(lambda: erp.api.call("PATCH", path, body={"displayName": "X"}, what="rename"))
    assert "BadRequest_InvalidToken" in missing.message


# --- lookups, credit memos, reconciliation -------------------------------------------------------


def test_find_invoice_looks_up_credit_memos_too_and_says_none_when_nothing_carries_the_key(bc):
    erp = connector(bc)
    invoice = erp.post_invoice(plan=make_plan(), key="ST-INV-1")
    memo = erp.post_credit_memo(original_id=invoice.id, key="ST-VOID-1",
                                posting_date=date(2025, 11, 22))  # fmt: skip
    assert erp.find_invoice(key="ST-INV-1") == invoice
    found = erp.find_invoice(key="ST-VOID-1")
    assert found is not None and found.id == memo.id and "page=134" in found.url
    assert erp.find_invoice(key="ST-INV-O'Brien") is None  # a quote in a key is escaped


def test_a_credit_memo_mirrors_the_posted_invoice_and_is_applied_to_it(bc):
    erp = connector(bc)
    invoice = erp.post_invoice(plan=make_plan(), key="ST-INV-1")
    memo = erp.post_credit_memo(original_id=invoice.id, key="ST-VOID-1",
                                posting_date=date(2025, 11, 22))  # fmt: skip
    [credit] = bc.rows("salesCreditMemos")
    assert (credit["externalDocumentNumber"], credit["invoiceId"]) == ("ST-VOID-1", invoice.id)
    assert credit["totalAmountIncludingTax"] == Decimal("414.74")
    assert (credit["status"], credit["postingDate"]) == ("Open", "2025-11-22")
    assert memo.number == credit["number"] and memo.number.startswith("PS-CR")
    assert len(bc.rows("salesCreditMemoLines")) == 3
    # every dimension of the invoice lines is on the credit memo lines too
    assert len(bc.rows("dimensionSetLines")) == 8
    assert bc.rows("salesInvoices")[0]["status"] == "Paid"


def test_a_credit_memo_for_a_foreign_currency_invoice_is_in_the_invoices_currency(bc):
    erp = connector(bc)
    invoice = erp.post_invoice(plan=make_plan(currency="CAD"), key="ST-INV-1")
    erp.post_credit_memo(original_id=invoice.id, key="ST-VOID-1", posting_date=date(2025, 11, 22))
    [credit] = bc.rows("salesCreditMemos")
    assert (credit["currencyCode"], credit["status"]) == ("CAD", "Open")
    [header] = [sent.body for sent in bc.sent if sent.entity_set == "salesCreditMemos"
                and sent.method == "POST" and sent.body]  # fmt: skip
    assert header["currencyCode"] == "CAD"
    assert bc.rows("salesInvoices")[0]["remainingAmount"] == Decimal("0.00")


def test_a_credit_memo_for_a_local_currency_invoice_names_no_currency(bc):
    bc.local_currency = "CAD"
    erp = connector(bc, local_currency="CAD")
    invoice = erp.post_invoice(plan=make_plan(currency="CAD"), key="ST-INV-1")
    assert bc.rows("salesInvoices")[0]["currencyCode"] == "CAD"  # read back with the local code
    erp.post_credit_memo(original_id=invoice.id, key="ST-VOID-1", posting_date=date(2025, 11, 22))
    bodies = [sent.body for sent in bc.sent if sent.entity_set in ("salesInvoices",
              "salesCreditMemos") and sent.method == "POST" and sent.body]  # fmt: skip
    assert [("currencyCode" in body) for body in bodies] == [False, False]


def test_a_source_credit_memo_in_a_foreign_currency_carries_its_currency(bc):
    lines = (PlanLine("4010", Decimal("-50.00"), "Refund", "r", codings=dims(BRANCH="RAL")),)
    plan = make_plan(currency="EUR", lines=lines, total=Decimal("-50.00"))
    connector(bc).post_source_credit_memo(plan=plan, key="ST-CM-1")
    [credit] = bc.rows("salesCreditMemos")
    assert (credit["currencyCode"], credit["totalAmountIncludingTax"]) == ("EUR", Decimal("50.00"))


def test_a_currency_business_central_does_not_know_is_a_missing_reference(bc):
    error = failure(lambda: connector(bc).post_invoice(plan=make_plan(currency="XYZ"), key="K"))
    assert error.category == FailureCategory.MISSING_REFERENCE and "(XYZ)" in error.message


def test_crediting_an_invoice_still_in_draft_is_a_prerequisite_failure(bc):
    erp = connector(bc, post_policy="draft")
    invoice = erp.post_invoice(plan=make_plan(), key="ST-INV-1")
    error = failure(lambda: erp.post_credit_memo(original_id=invoice.id, key="ST-VOID-1",
                                                 posting_date=date(2025, 11, 22)))  # fmt: skip
    assert error.category == FailureCategory.PREREQUISITE and "still a draft" in error.message
    assert bc.rows("salesCreditMemos") == []


def test_an_invoice_in_review_as_schema_2_spells_it_is_not_credited(bc):
    erp = connector(bc, post_policy="draft")
    invoice = erp.post_invoice(plan=make_plan(), key="ST-INV-1")
    bc.rows("salesInvoices")[0]["status"] = "In_x0020_Review"
    error = failure(lambda: erp.post_credit_memo(original_id=invoice.id, key="ST-VOID-1",
                                                 posting_date=date(2025, 11, 22)))  # fmt: skip
    assert error.category == FailureCategory.PREREQUISITE and "still a draft" in error.message


def test_crediting_an_invoice_business_central_does_not_have_is_a_missing_reference(bc):
    error = failure(lambda: connector(bc).post_credit_memo(
        original_id="00000000-0000-0000-0000-000000000000", key="ST-VOID-1",
        posting_date=date(2025, 11, 22)))  # fmt: skip
    assert error.category == FailureCategory.MISSING_REFERENCE


def test_list_documents_returns_every_keyed_invoice_and_credit_memo_with_its_amount(bc):
    erp = connector(bc)
    first = erp.post_invoice(plan=make_plan(), key="ST-INV-1")
    erp.post_invoice(plan=make_plan(document_number="2"), key="ST-INV-2")
    erp.post_credit_memo(original_id=first.id, key="ST-VOID-1", posting_date=date(2025, 11, 22))
    bc.add("salesInvoices", externalDocumentNumber="", number="PS-INV-9", status="Open",
           totalAmountIncludingTax=Decimal("5.00"), postingDate="2025-11-01")  # fmt: skip
    summaries = {summary.key: summary for summary in erp.list_documents()}
    assert set(summaries) == {"ST-INV-1", "ST-INV-2", "ST-VOID-1"}
    assert summaries["ST-VOID-1"].kind == "CREDIT_MEMO"
    assert summaries["ST-INV-2"].amount == Decimal("414.74")
    assert summaries["ST-VOID-1"].posting_date == date(2025, 11, 22)


# --- time ----------------------------------------------------------------------------------------


def time_plan(*entries: TimePlanEntry) -> TimePlan:
    return TimePlan(technician="Maria Lopez", employee="E300", week_starting="2026-11-09",
                    total_hours=sum((entry.hours for entry in entries), Decimal(0)),
                    entries=entries)  # fmt: skip


WEEK = (
    TimePlanEntry("ST-TE-1", "2026-11-09", "labor", Decimal("7.50"), "E300", "REG", "J-20001",
                  "100", "RAL"),
    TimePlanEntry("ST-TE-2", "2026-11-10", "labor", Decimal("2.00"), "E300", "OT", "J-20002",
                  "400", "ATL"),
    TimePlanEntry("ST-TE-3", "2026-11-11", "generic", Decimal("8.00"), "E300", "PTO"),
)  # fmt: skip


def test_time_entries_are_created_once_with_their_projects_and_resending_the_week_adds_nothing(bc):
    erp = connector(bc, time_dimensions={"department": "BRANCH"})
    document = erp.post_time_entries(plan=time_plan(*WEEK), key="ST-TC-77")
    assert document.number == "3 time entries"
    rows = bc.rows("timeRegistrationEntries")
    assert sorted((row["date"], row["jobNumber"], row["quantity"]) for row in rows) == [
        ("2026-11-09", "J-20001", Decimal("7.50")),
        ("2026-11-10", "J-20002", Decimal("2.00")),
        ("2026-11-11", "", Decimal("8.00")),
    ]
    assert {row["number"] for row in bc.rows("projects")} == {"J-20001", "J-20002"}
    assert sorted(row["valueCode"] for row in bc.rows("dimensionSetLines")) == ["ATL", "RAL"]
    erp.post_time_entries(plan=time_plan(*WEEK), key="ST-TC-77")
    assert len(bc.rows("timeRegistrationEntries")) == 3


def test_a_week_sent_in_part_before_gets_only_its_missing_entries(bc):
    erp = connector(bc)
    erp.post_time_entries(plan=time_plan(WEEK[0]), key="ST-TC-77")
    erp.post_time_entries(plan=time_plan(*WEEK), key="ST-TC-77")
    assert len(bc.rows("timeRegistrationEntries")) == 3


def test_a_missing_project_is_a_prerequisite_failure_when_creation_is_not_allowed(bc):
    erp = connector(bc, create_projects=False)
    error = failure(lambda: erp.post_time_entries(plan=time_plan(*WEEK), key="ST-TC-77"))
    assert error.category == FailureCategory.PREREQUISITE and "Project J-20001" in error.message
    assert bc.rows("timeRegistrationEntries") == []


def test_an_unknown_employee_refuses_the_whole_week(bc):
    entry = TimePlanEntry("ST-TE-9", "2026-11-12", "generic", Decimal(4), "E999", "PTO")
    erp = connector(bc)
    error = failure(lambda: erp.post_time_entries(plan=time_plan(WEEK[2], entry), key="K"))
    assert error.category == FailureCategory.MISSING_REFERENCE and "E999" in error.message
    assert bc.rows("timeRegistrationEntries") == []


# --- preview -------------------------------------------------------------------------------------


def test_the_preview_lists_the_exact_requests_and_sends_nothing(bc):
    requests = connector(bc).preview_invoice(plan=make_plan(), key="ST-INV-1")
    assert bc.sent == [] and bc.token_requests == 0
    assert [request["method"] for request in requests] == ["GET", "POST", "POST", "POST", "GET"]
    batch = requests[2]
    assert batch["headers"] == {"Isolation": "snapshot"}
    operations = batch["body"]["requests"]
    assert operations[0]["body"]["externalDocumentNumber"] == "ST-INV-1"
    assert operations[1] == {
        "id": "2", "method": "POST", "url": "$1/salesInvoiceLines", "dependsOn": ["1"],
        "headers": {"Content-Type": "application/json"},
        "body": {"lineType": "Account", "lineObjectNumber": "4010", "description": "HVAC labor",
                 "quantity": Decimal(1), "unitPrice": Decimal("275.00")},
    }  # fmt: skip
    assert requests[3]["url"].endswith("/salesInvoices(<id>)/Microsoft.NAV.post")
    assert requests[4]["url"].endswith("/salesInvoices(<id>)")  # read back for its number


def test_the_preview_shows_a_new_customer_and_its_default_dimensions_as_one_batch(bc):
    erp = connector(bc, customer_dimension_posting="Code Mandatory")
    requests = erp.preview_invoice(plan=make_plan(customer_dimensions={"BRANCH": "RAL"}), key="K")
    assert bc.sent == []
    customer = requests[1]
    assert (customer["url"], customer["headers"]) == ("$batch", {"Isolation": "snapshot"})
    [_, default] = customer["body"]["requests"]
    assert (default["url"], default["body"]) == ("$1/defaultDimensions", {
        "dimensionId": "<id of dimension BRANCH>", "dimensionValueId": "<id of BRANCH value RAL>",
        "postingValidation": "Code_x0020_Mandatory",
    })  # fmt: skip


# --- the error table ----------------------------------------------------------------------------

ERROR_CODES = (
    Path(__file__).resolve().parents[2] / "shared/validators/business-central/error-codes.json"
)


def test_every_documented_business_central_error_code_has_a_category_and_plain_words():
    """Every code in ../shared's error-codes.json when it is there, else the codes the fake uses."""
    if ERROR_CODES.exists():
        codes = set(json.loads(ERROR_CODES.read_text())["codes"]) - {"Unknown"}
    else:
        codes = {"Internal_RecordNotFound", "Application_DialogException", "Request_EntityChanged"}
    for code in codes:
        meaning = meaning_of(code)
        assert meaning is not None, f"{code} has no meaning in errors.CODES"
        assert meaning.category in vars(FailureCategory).values() and meaning.words
    assert meaning_of("Authorization_Whatever") is not None


def test_an_unknown_code_falls_back_on_the_http_status():
    error = error_for(status=503, body={"error": {"code": "Nope", "message": "busy"}},
                      what="read", creates=True, retry_after=30)  # fmt: skip
    assert (error.category, error.transient, error.retry_after_seconds) == ("CONNECTION", True, 30)
    assert error.outcome_unknown is False  # a 503 answer means it was not taken
    lost = error_for(status=504, body=None, what="create", creates=True)
    assert lost.outcome_unknown is True
