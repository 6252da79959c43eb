"""Every console page: who may see it, what it shows, and its htmx partial."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection as django_connection
from django.urls import reverse

from console.access import Role
from syncengine import services
from syncengine.models import Connection, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

pytestmark = pytest.mark.django_db


def user_with(role: str | None, *connections: Connection, name: str = "user") -> User:
    user = User.objects.create_user(username=name, password="pw")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    for connection in connections:
        connection.members.add(user)
    return user


@pytest.fixture
def posted(connection):
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    return SyncRecord.objects.get()


@pytest.fixture
def other_connection(db):
    return Connection.objects.create(name="Other company", slug="other")


def test_every_page_sends_anonymous_visitors_to_the_login_page(client, posted):
    for url in [
        reverse("console:sync-log"),
        reverse("console:search"),
        reverse("console:record-detail", args=[posted.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_the_sync_log_lists_the_posted_record_with_its_erp_number(client, connection, posted):
    client.force_login(user_with(Role.AR, connection))
    response = client.get(reverse("console:sync-log"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "10482" in page and posted.erp_document_number in page and "Posted" in page


def test_the_sync_log_answers_htmx_with_only_its_rows(client, connection, posted):
    client.force_login(user_with(Role.AR, connection))
    response = client.get(
        reverse("console:sync-log"), {"state": "POSTED"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert 'id="rows"' in page and "<html" not in page
    assert "10482" in page


def test_the_sync_log_filters_by_state_and_text(client, connection, posted):
    client.force_login(user_with(Role.AR, connection))
    assert (
        "10482" not in client.get(reverse("console:sync-log"), {"state": "FAILED"}).content.decode()
    )
    assert "10482" in client.get(reverse("console:sync-log"), {"q": "Harbor"}).content.decode()


def test_the_sync_log_pages_by_keyset_without_repeating_rows(client, connection):
    for number in range(60):
        ingest(connection, envelope(id=1000 + number, invoiceNumber=f"P-{number:03d}"))
    client.force_login(user_with(Role.AR, connection))
    first = client.get(reverse("console:sync-log"))
    next_before = first.context["next_before"]
    second = client.get(reverse("console:sync-log"), {"before": next_before})
    first_ids = {record.pk for record in first.context["records"]}
    second_ids = {record.pk for record in second.context["records"]}
    assert len(first_ids) == 50 and len(second_ids) == 10
    assert not first_ids & second_ids
    assert second.context["next_before"] is None


def test_search_finds_an_invoice_by_exact_number_and_links_to_the_erp_document(
    client, connection, posted
):
    client.force_login(user_with(Role.AR, connection))
    response = client.get(reverse("console:search"), {"q": "10482"})
    assert [record.pk for record in response.context["exact"]] == [posted.pk]
    link = reverse("console:ledger-invoice", args=["demo", posted.erp_document_number])
    assert link in response.content.decode()


@pytest.mark.parametrize("text", ["048", "harbor", "414.74", "$414.74"])
def test_search_finds_by_part_of_the_number_customer_or_amount(client, connection, posted, text):
    client.force_login(user_with(Role.AR, connection))
    response = client.get(reverse("console:search"), {"q": text})
    assert [record.pk for record in response.context["partial"]] == [posted.pk]


def test_search_explains_a_blocked_invoice_in_plain_words(client, connection):
    items = [
        {
            "id": 1,
            "itemType": "labor",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": "Backflow Testing"},
        }
    ]
    ingest(connection, envelope(items=items))
    services.sync_run_until_idle(now=lambda: NOW)
    client.force_login(user_with(Role.AR, connection))
    page = client.get(reverse("console:search"), {"q": "10482"}).content.decode()
    assert "No revenue account for service line &#x27;Backflow Testing&#x27;" in page


def test_records_of_another_connection_are_invisible(client, connection, posted, other_connection):
    client.force_login(user_with(Role.ADMIN, other_connection))
    assert client.get(reverse("console:record-detail", args=[posted.pk])).status_code == 404
    response = client.get(reverse("console:search"), {"q": "10482"})
    assert response.context["exact"] == [] and response.context["partial"] == []
    assert "10482" not in client.get(reverse("console:sync-log")).content.decode()
    ledger = reverse("console:ledger-invoice", args=["demo", posted.erp_document_number])
    assert client.get(ledger).status_code == 404


def test_a_user_without_a_role_is_refused(client, connection, posted):
    client.force_login(user_with(None, connection))
    assert client.get(reverse("console:sync-log")).status_code == 403
    assert client.get(reverse("console:search"), {"q": "1"}).status_code == 403


def test_the_record_page_shows_the_plan_reasons_and_the_timeline(client, connection, posted):
    client.force_login(user_with(Role.FINANCE, connection))
    response = client.get(reverse("console:record-detail", args=[posted.pk]))
    page = response.content.decode()
    assert "from the service-line map (HVAC)" in page
    assert [event.to_state for event in response.context["events"]] == [
        "READY",
        "POSTING",
        "POSTED",
    ]


def test_the_ledger_page_shows_the_posted_invoice(client, connection, posted):
    client.force_login(user_with(Role.AR, connection))
    url = reverse("console:ledger-invoice", args=["demo", posted.erp_document_number])
    page = client.get(url).content.decode()
    assert "ST-INV-4242" in page and "414.74" in page


@pytest.fixture
def blocked(connection):
    items = [
        {
            "id": 1,
            "itemType": "labor",
            "quantity": "1",
            "price": "80",
            "serviceLine": {"name": "Backflow Testing"},
        }
    ]
    ingest(connection, envelope(items=items))
    services.sync_run_until_idle(now=lambda: NOW)
    return SyncRecord.objects.get()


def test_only_admins_may_retry_a_record(client, connection, blocked):
    url = reverse("console:record-retry", args=[blocked.pk])
    client.force_login(user_with(Role.AR, connection, name="clerk"))
    assert client.post(url).status_code == 403
    client.force_login(user_with(Role.ADMIN, connection, name="boss"))
    response = client.post(url)
    assert response.status_code == 302
    blocked.refresh_from_db()
    assert blocked.state == SyncState.READY
    assert blocked.events.last().actor == "user:boss"


def test_retry_is_post_only_and_refuses_a_posted_record(client, connection, posted):
    client.force_login(user_with(Role.ADMIN, connection))
    url = reverse("console:record-retry", args=[posted.pk])
    assert client.get(url).status_code == 405
    response = client.post(url, follow=True)
    assert "Only blocked or failed records can be retried" in response.content.decode()
    posted.refresh_from_db()
    assert posted.state == SyncState.POSTED


def test_the_retry_button_is_offered_to_admins_on_blocked_records_only(client, connection, blocked):
    client.force_login(user_with(Role.FINANCE, connection, name="fin"))
    assert (
        client.get(reverse("console:record-detail", args=[blocked.pk])).context["can_retry"]
        is False
    )
    client.force_login(user_with(Role.ADMIN, connection, name="adm"))
    assert (
        client.get(reverse("console:record-detail", args=[blocked.pk])).context["can_retry"] is True
    )


def test_the_login_page_logs_a_demo_user_in(client, connection):
    response = client.post(reverse("login"), {"username": "ar", "password": "crosswalk-demo"})
    assert response.status_code == 302
    assert client.get(reverse("console:sync-log")).status_code == 200


@pytest.mark.skipif(
    django_connection.vendor != "postgresql", reason="trigram indexes exist only on PostgreSQL"
)
def test_substring_search_uses_the_trigram_indexes_on_postgresql(connection):
    query = SyncRecord.objects.matching("1048").values("pk")
    sql, params = query.query.sql_with_params()
    with django_connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "syncengine_doc_number_trgm" in plan
    assert "syncengine_rec_erp_number_trgm" in plan


def test_the_newest_matches_are_the_same_whether_the_recent_window_holds_them_or_not(
    connection, monkeypatch
):
    for source_id in range(1, 9):
        customer = {"id": 500 + source_id, "name": "Harbor Foods" if source_id % 2 else "Acme"}
        ingest(
            connection, envelope(id=source_id, invoiceNumber=f"N-{source_id}", customer=customer)
        )
    records = SyncRecord.objects.all()
    by_indexes = list(records.matching("foods").order_by("-pk")[:3])
    assert [r.document.number for r in by_indexes] == ["N-7", "N-5", "N-3"]
    # A window of 6 (2 per row wanted) holds 3 matches: answered by walking it.
    monkeypatch.setattr("syncengine.models.MATCH_WINDOW_PER_ROW", 2)
    assert records.newest_matching("foods", limit=3) == by_indexes
    # A window of 3 holds 1: the indexes answer, with the same result.
    monkeypatch.setattr("syncengine.models.MATCH_WINDOW_PER_ROW", 1)
    assert records.newest_matching("foods", limit=3) == by_indexes
    assert records.newest_matching("nothing like it", limit=3) == []
    assert SyncRecord.objects.none().newest_matching("foods", limit=3) == []
