"""Connection credentials: encrypted at rest, write-only, audited, rotatable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.db import connection as db_connection

from console import config
from syncengine import connections, secrets
from syncengine.models import Connection, ConnectionAudit
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


def test_credentials_are_stored_encrypted_and_read_back_only_by_the_connector(connection):
    connections.connection_credentials_set(
        connection=connection,
        side="erp",
        values={"client_id": "app-1", "client_secret": "s3cret-value"},
        actor="admin",
        now=NOW,
    )
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT erp_credentials FROM syncengine_connection WHERE id = %s", [connection.pk]
        )
        stored = cursor.fetchone()[0]
    assert "s3cret-value" not in stored and "client_secret" not in stored
    fresh = Connection.objects.get(pk=connection.pk)
    assert fresh.erp_secrets() == {"client_id": "app-1", "client_secret": "s3cret-value"}


def test_blank_fields_keep_their_saved_value_and_cleared_fields_are_removed(connection):
    connections.connection_credentials_set(
        connection=connection,
        side="source",
        values={"username": "ops", "password": "pw-1"},
        actor="admin",
        now=NOW,
    )
    connections.connection_credentials_set(
        connection=connection,
        side="source",
        values={"username": "ops2", "password": ""},
        actor="admin",
        now=NOW,
    )
    fresh = Connection.objects.get(pk=connection.pk)
    assert fresh.source_secrets() == {"username": "ops2", "password": "pw-1"}
    cleared = connections.connection_credentials_set(
        connection=fresh, side="source", values={}, clear=["password"], actor="admin", now=NOW
    )
    assert connections.credential_fields_set(connection=cleared, side="source") == ["username"]


def test_credential_changes_are_audited_by_field_name_without_any_value(connection):
    connections.connection_credentials_set(
        connection=connection,
        side="erp",
        values={"client_secret": "very-secret"},
        actor="alice",
        now=NOW,
        reason="new app registration",
    )
    audit = ConnectionAudit.objects.get(connection=connection)
    assert audit.action == "erp_credentials_changed"
    assert audit.after["changed"] == ["client_secret"]
    assert audit.actor == "alice" and audit.reason == "new app registration"
    assert "very-secret" not in str(audit.before) + str(audit.after)


def test_saving_the_same_credentials_again_writes_no_audit_row(connection):
    for _ in range(2):
        connections.connection_credentials_set(
            connection=connection, side="erp", values={"k": "v"}, actor="a", now=NOW
        )
    assert ConnectionAudit.objects.filter(connection=connection).count() == 1


def test_the_connection_audit_cannot_be_edited_or_deleted(connection):
    connections.connection_settings_update(
        connection=connection,
        side="erp",
        values={"base_url": "https://api.example.test"},
        actor="a",
        now=NOW,
    )
    audit = ConnectionAudit.objects.get(connection=connection)
    with pytest.raises(DatabaseError), transaction.atomic():
        ConnectionAudit.objects.filter(pk=audit.pk).update(actor="mallory")
    with pytest.raises(DatabaseError), transaction.atomic():
        ConnectionAudit.objects.filter(pk=audit.pk).delete()
    assert ConnectionAudit.objects.get(pk=audit.pk).actor == "a"


def test_rotating_keys_re_encrypts_so_the_old_key_can_be_dropped(connection, settings):
    old_key = settings.CROSSWALK_ENCRYPTION_KEYS[0]
    connections.connection_credentials_set(
        connection=connection, side="erp", values={"token": "t-1"}, actor="a", now=NOW
    )
    new_key = Fernet.generate_key().decode()
    settings.CROSSWALK_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_credentials")
    settings.CROSSWALK_ENCRYPTION_KEYS = [new_key]
    assert Connection.objects.get(pk=connection.pk).erp_secrets() == {"token": "t-1"}


def test_credentials_saved_under_a_lost_key_say_what_to_do(connection, settings):
    connections.connection_credentials_set(
        connection=connection, side="erp", values={"token": "t-1"}, actor="a", now=NOW
    )
    settings.CROSSWALK_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(secrets.CredentialsUnreadable, match="enter the credentials again"):
        Connection.objects.get(pk=connection.pk).erp_secrets()


def test_production_refuses_to_start_without_an_encryption_key(monkeypatch, tmp_path):
    monkeypatch.delenv("CROSSWALK_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ImproperlyConfigured, match="CROSSWALK_ENCRYPTION_KEYS is required"):
        config.encryption_keys(data_dir=tmp_path, production=True)


def test_a_malformed_encryption_key_is_rejected_at_start_up(monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSWALK_ENCRYPTION_KEYS", "not-a-key")
    with pytest.raises(ImproperlyConfigured, match="key 1 is not a Fernet key"):
        config.encryption_keys(data_dir=tmp_path, production=False)


def test_the_embedded_encryption_key_is_generated_once_and_kept_private(monkeypatch, tmp_path):
    monkeypatch.delenv("CROSSWALK_ENCRYPTION_KEYS", raising=False)
    first = config.encryption_keys(data_dir=tmp_path, production=False)
    assert config.encryption_keys(data_dir=tmp_path, production=False) == first
    assert (tmp_path / "encryption_key").stat().st_mode & 0o077 == 0
