"""Connection settings and credentials: changed only here, each change audited in its transaction.

Credentials are write-only: callers send the fields they want to set; a field left out keeps its
saved value, a field listed in `clear` is removed. Nothing here ever returns a secret's value —
only which fields are set, which is what the console and API show.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
    _period_holds_release(connection, side, actor, now)
    return connection


def _period_holds_release(connection: Connection, side: Side, actor: str, now: datetime) -> None:
    """A reopened period (or a switch to re-dating) sends the records held for it; records
    waiting for something missing in the ERP are tried again (the connection may now create
    it, or point at another company)."""
    if side == "erp":
        from syncengine.services import period_holds_release, prerequisites_release

        period_holds_release(connection=connection, actor=actor, now=now)
        prerequisites_release(connection=connection, actor=actor, now=now,
                              detail="The ERP settings changed: sending again.")  # fmt: skip


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


# --- what each side asks for, for the console's settings form ------------------------------------


@dataclass(frozen=True)
class SettingField:
    """One non-secret setting as the form shows it: its kind says how the typed text is read."""

    name: str
    kind: str  # "text", "bool", "number" or "json"
    default: Any

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class SideForm:
    side: Side
    title: str
    fields: tuple[SettingField, ...]
    secrets: tuple[str, ...]


def _kind_of(annotation: object) -> str:
    text = str(annotation)
    if text == "bool":
        return "bool"
    if text in ("int", "float"):
        return "number"
    if text.startswith("dict"):
        return "json"
    return "text"


def _fields_of(settings_class: type) -> tuple[SettingField, ...]:
    result = []
    for item in dataclasses.fields(settings_class):
        if item.default is not dataclasses.MISSING:
            default: Any = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = ""
        result.append(SettingField(item.name, _kind_of(item.type), default))
    return tuple(result)


def side_forms(connection: Connection) -> list[SideForm]:
    """The ERP's settings and credentials (none for the sandbox), then ServiceTrade's."""
    from syncengine.erps.registry import erp_secret_names, erp_settings_class
    from syncengine.sources.servicetrade_api.client import StSettings
    from syncengine.sources.servicetrade_api.sync import SECRET_NAMES

    forms = []
    erp_class = erp_settings_class(connection.target)
    if erp_class is not None:
        forms.append(
            SideForm(
                "erp",
                connection.get_target_display(),
                _fields_of(erp_class),
                erp_secret_names(connection.target),
            )
        )
    forms.append(SideForm("source", "ServiceTrade", _fields_of(StSettings), SECRET_NAMES))
    return forms


class SettingsInvalid(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def settings_from_form(form: SideForm, data: Mapping[str, str]) -> dict[str, Any]:
    """The typed settings of one side, read by kind; every unreadable field is named at once.

    A field left empty takes its default (it is removed from the saved settings)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in form.fields:
        key = f"{form.side}-{field.name}"
        if field.kind == "bool":
            values[field.name] = key in data
            continue
        text = data.get(key, "").strip()
        if not text:
            values[field.name] = None
            continue
        if field.kind == "number":
            try:
                number = Decimal(text)
            except InvalidOperation:
                errors[field.name] = f"{text!r} is not a number."
                continue
            if not number.is_finite() or number < 0:
                errors[field.name] = "Give a number of zero or more."
                continue
            values[field.name] = int(number) if isinstance(field.default, int) else float(number)
        elif field.kind == "json":
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as error:
                errors[field.name] = f"Not valid JSON: {error.msg} (line {error.lineno})."
                continue
            if not isinstance(parsed, dict):
                errors[field.name] = 'Give an object, e.g. {"branch": "BRANCH"}.'
                continue
            values[field.name] = parsed
        else:
            values[field.name] = text
    if errors:
        raise SettingsInvalid(errors)
    return values


@transaction.atomic
def connection_side_save(
    *,
    connection: Connection,
    form: SideForm,
    settings: dict[str, Any],
    secrets_typed: dict[str, str],
    clear: Iterable[str],
    actor: str,
    now: datetime,
    reason: str,
) -> Connection:
    """One side's settings (every field: an empty one goes back to its default) and its
    credentials (typed ones replace, cleared ones go, the rest stay), audited."""
    field = f"{form.side}_settings"
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    before = dict(getattr(connection, field))
    after = {name: value for name, value in before.items() if name not in settings}
    after.update({name: value for name, value in settings.items() if value is not None})
    if after != before:
        setattr(connection, field, after)
        connection.save(update_fields=[field])
        ConnectionAudit.objects.create(
            connection=connection, actor=actor, at=now, action=f"{form.side}_settings_changed",
            before=before, after=after, reason=reason,
        )  # fmt: skip
        _period_holds_release(connection, form.side, actor, now)
    wanted = {name: value for name, value in secrets_typed.items() if name in form.secrets}
    allowed_clear = [name for name in clear if name in form.secrets]
    return connection_credentials_set(
        connection=connection, side=form.side, values=wanted, clear=allowed_clear,
        actor=actor, now=now, reason=reason,
    )  # fmt: skip


def connection_test(*, connection: Connection, side: Side) -> str:
    """Reach one side with the saved settings and credentials; what it found, in a sentence.

    Raises ConnectorError (the ERP) or ServiceTradeError (the source) with the reason."""
    if side == "erp":
        from syncengine.erps.registry import connector_for

        return connector_for(connection).check()
    from syncengine.sources.servicetrade_api.sync import client_for

    with client_for(connection) as client:
        offices = client.offices()
    return f"ServiceTrade answered: {len(offices)} offices."
