"""Connection settings and credentials: changed only here, each change audited in its transaction.

Credentials are write-only: callers send the fields they want to set; a field left out keeps its
saved value, a field listed in `clear` is removed. Nothing here ever returns a secret's value —
only which fields are set, which is what the console and API show.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from django.db import transaction

from syncengine import secrets
from syncengine.models import Connection, ConnectionAudit

Side = Literal["erp", "source"]


def credential_fields_set(*, connection: Connection, side: Side) -> list[str]:
    """The names of the credential fields that hold a value, sorted; never the values."""
    values = connection.erp_secrets() if side == "erp" else connection.source_secrets()
    return sorted(name for name, value in values.items() if value not in ("", None))


@transaction.atomic
def connection_credentials_set(
    *,
    connection: Connection,
    side: Side,
    values: dict[str, Any],
    clear: Iterable[str] = (),
    actor: str,
    now: datetime,
    reason: str = "",
) -> Connection:
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    field = f"{side}_credentials"
    current = secrets.decrypt(getattr(connection, field))
    merged = {**current, **{name: value for name, value in values.items() if value != ""}}
    for name in clear:
        merged.pop(name, None)
    changed = sorted(
        name for name in set(current) | set(merged) if current.get(name) != merged.get(name)
    )
    if not changed:
        return connection
    setattr(connection, field, secrets.encrypt(merged))
    connection.save(update_fields=[field])
    ConnectionAudit.objects.create(
        connection=connection,
        actor=actor,
        at=now,
        action=f"{side}_credentials_changed",
        before={"fields_set": sorted(current)},
        after={"fields_set": sorted(merged), "changed": changed},
        reason=reason,
    )
    return connection


@transaction.atomic
def connection_settings_update(
    *,
    connection: Connection,
    side: Side,
    values: dict[str, Any],
    actor: str,
    now: datetime,
    reason: str = "",
) -> Connection:
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    field = f"{side}_settings"
    before = dict(getattr(connection, field))
    after = {**before, **values}
    after = {name: value for name, value in after.items() if value not in ("", None)}
    if after == before:
        return connection
    setattr(connection, field, after)
    connection.save(update_fields=[field])
    ConnectionAudit.objects.create(
        connection=connection,
        actor=actor,
        at=now,
        action=f"{side}_settings_changed",
        before=before,
        after=after,
        reason=reason,
    )
    return connection


def connection_credentials_rotate() -> int:
    """Re-encrypt every connection's credentials with the newest key; returns how many changed."""
    count = 0
    for connection in Connection.objects.exclude(erp_credentials="", source_credentials=""):
        with transaction.atomic():
            locked = Connection.objects.select_for_update().get(pk=connection.pk)
            locked.erp_credentials = secrets.rotate(locked.erp_credentials)
            locked.source_credentials = secrets.rotate(locked.source_credentials)
            locked.save(update_fields=["erp_credentials", "source_credentials"])
            count += 1
    return count
