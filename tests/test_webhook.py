import pytest
from django.urls import reverse

from syncengine.models import SourceReceipt, SyncRecord
from tests.conftest import envelope

pytestmark = pytest.mark.django_db

SECRET = "s3cret-hook-token"


@pytest.fixture
def hook_url(connection):
    connection.webhook_secret_hash = connection.hash_secret(SECRET)
    connection.save()
    return reverse("hooks:servicetrade", args=[connection.slug, SECRET])


def post(client, url, body, content_type="application/json"):
    return client.post(url, data=body, content_type=content_type)


def test_a_valid_invoice_is_stored_and_accepted(client, hook_url):
    response = post(client, hook_url, envelope())
    assert response.status_code == 202
    assert response.json() == {
        "receipt": SourceReceipt.objects.get().pk,
        "accepted": 1,
        "unchanged": 0,
        "errors": [],
    }
    assert SyncRecord.objects.count() == 1


def test_a_repeated_delivery_is_harmless(client, hook_url):
    post(client, hook_url, envelope())
    response = post(client, hook_url, envelope())
    assert response.json()["unchanged"] == 1
    assert SyncRecord.objects.count() == 1


def test_a_wrong_secret_or_connection_is_not_found_and_stores_nothing(client, connection, hook_url):
    bad = reverse("hooks:servicetrade", args=[connection.slug, "guess"])
    assert post(client, bad, envelope()).status_code == 404
    unknown = reverse("hooks:servicetrade", args=["nope", SECRET])
    assert post(client, unknown, envelope()).status_code == 404
    assert SourceReceipt.objects.count() == 0


def test_a_connection_without_a_secret_accepts_no_hooks(client, connection):
    url = reverse("hooks:servicetrade", args=[connection.slug, "anything"])
    assert post(client, url, envelope()).status_code == 404


def test_a_malformed_body_is_kept_and_answered_with_the_field_at_fault(client, hook_url):
    response = post(client, hook_url, b'{"data": {"id": 1}}')
    assert response.status_code == 400
    assert "data.invoiceNumber: required" in response.json()["errors"]
    assert SourceReceipt.objects.get().outcome == SourceReceipt.Outcome.REJECTED


def test_an_oversized_body_is_refused_with_413(client, hook_url, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.CROSSWALK_MAX_PAYLOAD_BYTES = 1024
    response = post(client, hook_url, b'{"data": "' + b"x" * 5000 + b'"}')
    assert response.status_code == 413


def test_only_post_is_allowed(client, hook_url):
    assert client.get(hook_url).status_code == 405


def test_the_hook_secret_never_reaches_the_logs(client, hook_url, caplog):
    import logging

    from console.logging import RedactHookSecrets

    with caplog.at_level(logging.WARNING, logger="django.request"):
        post(client, hook_url, b'{"data": {"id": 1}}')  # a 400 is logged with its path
    assert caplog.records, "Django logs the rejected request"
    for record in caplog.records:
        RedactHookSecrets().filter(record)
        assert SECRET not in record.getMessage()
        assert "/hooks/servicetrade/demo/[redacted]" in record.getMessage()
    for name in ("django.request", "django.server"):
        ours = [h for h in logging.getLogger(name).handlers if type(h) is logging.StreamHandler]
        assert ours and all(
            any(isinstance(f, RedactHookSecrets) for f in handler.filters) for handler in ours
        ), f"{name} writes through the redacting handler"


def test_a_new_hook_url_works_and_replaces_the_old_one(client, connection):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "webhook_secret", "--base-url", "https://cw.example.com", stdout=out, stderr=StringIO()
    )
    first = out.getvalue().strip()
    assert first.startswith("https://cw.example.com/hooks/servicetrade/demo/")
    path = first.removeprefix("https://cw.example.com")
    assert post(client, path, envelope()).status_code == 202
    call_command("webhook_secret", stdout=StringIO(), stderr=StringIO())
    assert post(client, path, envelope()).status_code == 404
