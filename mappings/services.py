"""Writes and reads of the crosswalk: drafts, edits, publishing, rollback, the audit trail, and the
catalog and rules the engine resolves with.

Every write runs in one transaction with its `RuleAudit` row (who, when, before, after, why); a
failed audit write rolls the change back. Public writes raise `RulesError` with a message for
the person who asked, and `PublishRefused` when validation finds errors.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Max

from mappings import transfer
from mappings.models import CatalogEntry, RuleAudit, RuleDraft, RuleVersion, SourceValue
from mappings.resolve import Catalog, CatalogValue, CompiledRules, compile_rules
from mappings.ruleset import (
    EMPTY_CONTENT,
    MAP_KINDS,
    RuleSet,
    RuleSetFormatError,
    norm,
    parse_ruleset,
)
from mappings.validation import ERROR, Issue, SeenValue, validate_ruleset
from syncengine.models import Connection

RECENT_DAYS = 90


class RulesError(ValueError):
    pass


class PublishRefused(RulesError):
    def __init__(self, issues: list[Issue]):
        errors = [issue for issue in issues if issue.severity == ERROR]
        super().__init__(f"{len(errors)} error(s) stop publishing: " + errors[0].message)
        self.issues = issues


# --- audit --------------------------------------------------------------------------------------


def _audit(
    connection: Connection,
    action: str,
    subject: str,
    *,
    actor: str,
    now: datetime,
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> RuleAudit:
    return RuleAudit.objects.create(
        connection=connection, at=now, actor=actor, action=action, subject=subject[:300],
        before=before, after=after, reason=reason,
    )  # fmt: skip


# --- drafts -------------------------------------------------------------------------------------


def _latest_version(connection: Connection) -> RuleVersion | None:
    return RuleVersion.objects.filter(connection=connection).order_by("-number").first()


def draft_for_update(*, connection: Connection, actor: str, now: datetime) -> RuleDraft:
    """The connection's draft, locked; started from the latest version when there is none.

    Call inside a transaction.
    """
    draft = RuleDraft.objects.select_for_update().filter(connection=connection).first()
    if draft is not None:
        return draft
    latest = _latest_version(connection)
    content = copy.deepcopy(latest.content if latest else EMPTY_CONTENT)
    draft = RuleDraft.objects.create(
        connection=connection, content=content, base_version=latest, updated_at=now,
        updated_by=actor,
    )  # fmt: skip
    _audit(
        connection,
        RuleAudit.Action.DRAFT_CREATED,
        "draft",
        actor=actor,
        now=now,
        after={"base_version": latest.number if latest else None},
    )
    return draft


def _save_draft(draft: RuleDraft, content: dict[str, Any], *, actor: str, now: datetime) -> None:
    try:
        ruleset = parse_ruleset(content)
    except RuleSetFormatError as error:
        raise RulesError("; ".join(error.errors)) from None
    draft.content = ruleset.to_content()
    draft.updated_at = now
    draft.updated_by = actor
    draft.save()


def _edit(
    *,
    connection: Connection,
    actor: str,
    now: datetime,
    action: str,
    subject: str,
    change: Any,
    reason: str = "",
) -> RuleDraft:
    """Apply `change(content) -> (before, after)` to the draft, validate its shape, audit it."""
    with transaction.atomic():
        draft = draft_for_update(connection=connection, actor=actor, now=now)
        content = copy.deepcopy(draft.content)
        before, after = change(content)
        _save_draft(draft, content, actor=actor, now=now)
        _audit(
            connection,
            action,
            subject,
            actor=actor,
            now=now,
            before=before,
            after=after,
            reason=reason,
        )
    return draft


def draft_map_row_set(
    *,
    connection: Connection,
    map_kind: str,
    source_value: str,
    targets: dict[str, str],
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Map one source value (e.g. service line "HVAC") to its targets in the draft.

    Raises RulesError for an unknown map, an unknown target field or an empty row.
    """
    if map_kind not in MAP_KINDS:
        raise RulesError(f"Unknown map {map_kind!r}; maps are {', '.join(MAP_KINDS)}.")
    source = source_value.strip()
    cleaned = {name: code.strip() for name, code in targets.items() if code and code.strip()}

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        rows = content.setdefault("maps", {}).setdefault(map_kind, {})
        existing = _find_source(rows, source)
        before = rows.pop(existing) if existing is not None else None
        rows[source] = cleaned
        return before, cleaned

    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=RuleAudit.Action.MAP_ROW_SET,
        subject=f"maps.{map_kind}.{source}",
        change=change,
        reason=reason,
    )


def draft_map_row_delete(
    *,
    connection: Connection,
    map_kind: str,
    source_value: str,
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Remove one mapped source value. Raises RulesError when it is not mapped."""

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        rows = content.get("maps", {}).get(map_kind, {})
        existing = _find_source(rows, source_value)
        if existing is None:
            raise RulesError(f"{source_value!r} is not in the {map_kind} map.")
        return rows.pop(existing), None

    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=RuleAudit.Action.MAP_ROW_DELETED,
        subject=f"maps.{map_kind}.{source_value}",
        change=change,
        reason=reason,
    )


def _find_source(rows: dict[str, Any], source: str) -> str | None:
    key = norm(source)
    return next((existing for existing in rows if norm(existing) == key), None)


def draft_routing_rule_set(
    *,
    connection: Connection,
    conditions: dict[str, str],
    account: str,
    actor: str,
    now: datetime,
    rule_id: int | None = None,
    priority: int = 0,
    note: str = "",
    reason: str = "",
) -> RuleDraft:
    """Add (rule_id None) or replace a GL routing rule. Ids are never reused."""

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        rules = content.setdefault("routing", [])
        before = next((rule for rule in rules if rule["id"] == rule_id), None)
        if rule_id is not None and before is None:
            raise RulesError(f"There is no routing rule {rule_id}.")
        new_id = rule_id if rule_id is not None else _next_rule_id(connection, rules)
        after = {
            "id": new_id,
            "conditions": conditions,
            "account": account,
            "priority": priority,
            "note": note,
        }
        if before is not None:
            rules.remove(before)
        rules.append(after)
        return before, after

    subject = f"routing.{rule_id}" if rule_id is not None else "routing.new"
    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=RuleAudit.Action.ROUTING_RULE_SET,
        subject=subject,
        change=change,
        reason=reason,
    )


def _next_rule_id(connection: Connection, rules: list[dict[str, Any]]) -> int:
    # Past versions may hold ids deleted since; never hand one out again.
    highest = max((rule["id"] for rule in rules), default=0)
    for version in RuleVersion.objects.filter(connection=connection).only("content"):
        highest = max([highest, *(rule["id"] for rule in version.content.get("routing", []))])
    return highest + 1


def draft_routing_rule_delete(
    *, connection: Connection, rule_id: int, actor: str, now: datetime, reason: str = ""
) -> RuleDraft:
    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        rules = content.get("routing", [])
        before = next((rule for rule in rules if rule["id"] == rule_id), None)
        if before is None:
            raise RulesError(f"There is no routing rule {rule_id}.")
        rules.remove(before)
        return before, None

    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=RuleAudit.Action.ROUTING_RULE_DELETED,
        subject=f"routing.{rule_id}",
        change=change,
        reason=reason,
    )


def draft_dimension_set(
    *,
    connection: Connection,
    setting: dict[str, Any],
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Add or replace the setting of one ERP dimension (keyed by `setting["dimension"]`)."""

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        settings = content.setdefault("dimensions", [])
        before = next((s for s in settings if s["dimension"] == setting.get("dimension")), None)
        if before is not None:
            settings.remove(before)
        settings.append(setting)
        return before, setting

    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=RuleAudit.Action.DIMENSION_SET,
        subject=f"dimensions.{setting.get('dimension')}",
        change=change,
        reason=reason,
    )


def draft_dimension_delete(
    *, connection: Connection, dimension: str, actor: str, now: datetime, reason: str = ""
) -> RuleDraft:
    """Remove the setting of one ERP dimension. Raises RulesError when it has none."""
    return _keyed_delete(
        connection=connection,
        section="dimensions",
        key=(dimension.strip(),),
        label=f"dimension {dimension.strip()!r}",
        action=RuleAudit.Action.DIMENSION_DELETED,
        actor=actor,
        now=now,
        reason=reason,
    )


def draft_dimension_update(
    *,
    connection: Connection,
    dimension: str,
    fields: dict[str, Any],
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Change some fields of one dimension's setting (source, default, pass_through, required,
    customer_default),
    keeping its value map; starts the setting, with no values, when the dimension has none.

    `draft_dimension_set` replaces the whole setting; the console's settings table edits the
    fields and the values apart, each under the draft's lock so neither loses the other's work.
    Raises RulesError for a setting the rule set cannot hold (an unknown source …).
    """
    name = dimension.strip()
    if not name:
        raise RulesError("dimension: required")
    if "values" in fields or "dimension" in fields:
        raise RulesError("Change a dimension's values one at a time, and not its code.")

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        settings = content.setdefault("dimensions", [])
        before = next((s for s in settings if s["dimension"] == name), None)
        after = {**(before or {"dimension": name, "values": {}}), **fields}
        if before is not None:
            settings.remove(before)
        settings.append(after)
        return before, after

    return _edit(
        connection=connection, actor=actor, now=now, action=RuleAudit.Action.DIMENSION_SET,
        subject=f"dimensions.{name}", change=change, reason=reason,
    )  # fmt: skip


def draft_dimension_value_set(
    *,
    connection: Connection,
    dimension: str,
    source_value: str,
    code: str,
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Fill `dimension` with `code` for one source value (replacing the code it had, matched
    ignoring case and spacing). Audited under `dimensions.<dimension>.values.<source value>`.
    Raises RulesError when the dimension has no setting or the value or code is empty."""
    name, source, code = dimension.strip(), source_value.strip(), code.strip()
    if not source:
        raise RulesError("source_value: required")
    if not code:
        raise RulesError("code: required; give the dimension value for this source value")

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        values = _dimension_values(content, name)
        existing = _find_source(values, source)
        before = values.pop(existing) if existing is not None else None
        values[source] = code
        return before, code

    return _edit(
        connection=connection, actor=actor, now=now, action=RuleAudit.Action.DIMENSION_SET,
        subject=f"dimensions.{name}.values.{source}", change=change, reason=reason,
    )  # fmt: skip


def draft_dimension_value_delete(
    *,
    connection: Connection,
    dimension: str,
    source_value: str,
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Stop filling `dimension` for one source value. Raises RulesError when it was not filled;
    audited as DIMENSION_SET with no `after` (see `draft_numbering_rule_delete`)."""
    name = dimension.strip()

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        values = _dimension_values(content, name)
        existing = _find_source(values, source_value)
        if existing is None:
            raise RulesError(f"{source_value!r} has no value for dimension {name!r}.")
        return values.pop(existing), None

    return _edit(
        connection=connection, actor=actor, now=now, action=RuleAudit.Action.DIMENSION_SET,
        subject=f"dimensions.{name}.values.{source_value.strip()}", change=change, reason=reason,
    )  # fmt: skip


def _dimension_values(content: dict[str, Any], dimension: str) -> dict[str, str]:
    setting = next((s for s in content.get("dimensions", []) if s["dimension"] == dimension), None)
    if setting is None:
        raise RulesError(f"The draft has no setting for dimension {dimension!r}; add it first.")
    values: dict[str, str] = setting.setdefault("values", {})
    return values


def draft_numbering_rule_set(
    *, connection: Connection, rule: dict[str, Any], actor: str, now: datetime, reason: str = ""
) -> RuleDraft:
    """Add or replace the numbering rule of one entity (keyed by `rule["entity"]`, e.g.
    CUSTOMER). Raises RulesError for a rule the rule set cannot hold (an empty range …)."""
    return _keyed_set(
        connection=connection,
        section="numbering",
        item=rule,
        action=RuleAudit.Action.NUMBERING_SET,
        actor=actor,
        now=now,
        reason=reason,
    )


def draft_numbering_rule_delete(
    *, connection: Connection, entity: str, actor: str, now: datetime, reason: str = ""
) -> RuleDraft:
    """Remove the numbering rule of one entity. Raises RulesError when it has none.

    Audited as NUMBERING_SET with no `after`: the audit actions have no "numbering deleted" (a
    new choice would need a migration of the audit table for a label)."""
    return _keyed_delete(
        connection=connection,
        section="numbering",
        key=(entity.strip(),),
        label=f"numbering rule for {entity.strip()!r}",
        action=RuleAudit.Action.NUMBERING_SET,
        actor=actor,
        now=now,
        reason=reason,
    )


def draft_field_owner_set(
    *,
    connection: Connection,
    entity: str,
    field: str,
    owner: str,
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Say which side owns one field of an entity (ERP, SOURCE or LATEST). Raises RulesError
    for an unknown entity or owner."""
    return _keyed_set(
        connection=connection,
        section="ownership",
        item={"entity": entity.strip(), "field": field.strip(), "owner": owner.strip()},
        action=RuleAudit.Action.OWNERSHIP_SET,
        actor=actor,
        now=now,
        reason=reason,
    )


def draft_field_owner_delete(
    *,
    connection: Connection,
    entity: str,
    field: str,
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Forget who owns one field. Raises RulesError when nobody was set; audited as
    OWNERSHIP_SET with no `after` (see `draft_numbering_rule_delete`)."""
    return _keyed_delete(
        connection=connection,
        section="ownership",
        key=(entity.strip(), field.strip()),
        label=f"owner of {entity.strip()}.{field.strip()}",
        action=RuleAudit.Action.OWNERSHIP_SET,
        actor=actor,
        now=now,
        reason=reason,
    )


# The key of an item in the list sections of a rule set; `diff.py` compares them by the same.
_SECTION_KEYS = {
    "dimensions": ("dimension",),
    "numbering": ("entity",),
    "ownership": ("entity", "field"),
}


def _item_key(section: str, item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item.get(name) for name in _SECTION_KEYS[section])


def _keyed_set(
    *,
    connection: Connection,
    section: str,
    item: dict[str, Any],
    action: str,
    actor: str,
    now: datetime,
    reason: str,
) -> RuleDraft:
    key = _item_key(section, item)

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        items = content.setdefault(section, [])
        before = next((old for old in items if _item_key(section, old) == key), None)
        if before is not None:
            items.remove(before)
        items.append(item)
        return before, item

    return _edit(
        connection=connection, actor=actor, now=now, action=action,
        subject=".".join([section, *map(str, key)]), change=change, reason=reason,
    )  # fmt: skip


def _keyed_delete(
    *,
    connection: Connection,
    section: str,
    key: tuple[str, ...],
    label: str,
    action: str,
    actor: str,
    now: datetime,
    reason: str,
) -> RuleDraft:
    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        items = content.get(section, [])
        before = next((old for old in items if _item_key(section, old) == key), None)
        if before is None:
            raise RulesError(f"The draft has no {label}.")
        items.remove(before)
        return before, None

    return _edit(
        connection=connection, actor=actor, now=now, action=action,
        subject=".".join([section, *key]), change=change, reason=reason,
    )  # fmt: skip


def draft_defaults_set(
    *,
    connection: Connection,
    defaults: dict[str, str],
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Change some of the connection defaults (receivable account, revenue account …)."""

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        current = content.setdefault("defaults", {})
        before = {name: current.get(name) for name in defaults}
        current.update(defaults)
        return before, defaults

    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=RuleAudit.Action.DEFAULTS_SET,
        subject="defaults",
        change=change,
        reason=reason,
    )


def draft_section_set(
    *,
    connection: Connection,
    section: str,
    items: list[dict[str, Any]],
    actor: str,
    now: datetime,
    reason: str = "",
) -> RuleDraft:
    """Replace the numbering rules or the field owners as a whole."""
    actions = {
        "numbering": RuleAudit.Action.NUMBERING_SET,
        "ownership": RuleAudit.Action.OWNERSHIP_SET,
    }
    if section not in actions:
        raise RulesError(f"Unknown section {section!r}.")

    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        before = content.get(section, [])
        content[section] = items
        return before, items

    return _edit(
        connection=connection,
        actor=actor,
        now=now,
        action=actions[section],
        subject=section,
        change=change,
        reason=reason,
    )


def draft_replace(
    *, connection: Connection, content: dict[str, Any], actor: str, now: datetime, reason: str
) -> RuleDraft:
    """Replace the whole draft (an import). All or nothing; raises RulesError on a bad shape."""
    return _edit(
        connection=connection, actor=actor, now=now, action=RuleAudit.Action.DRAFT_REPLACED,
        subject="draft", change=_content_replacer(content), reason=reason,
    )  # fmt: skip


@dataclass(frozen=True)
class DraftImported:
    draft: RuleDraft
    summary: str  # what was imported, for people: "the TAX_RATE map (3 row(s))"
    # What the import replaced, as it was in the draft: the map's rows, the routing rules or the
    # whole content. The console counts the rows added, changed and removed from it.
    before: Any = None


def draft_import(
    *,
    connection: Connection,
    data: str | bytes,
    source: str,
    actor: str,
    now: datetime,
    map_kind: str | None = None,
    routing: bool = False,
    reason: str = "",
) -> DraftImported:
    """Import a rules file into the draft (started if need be), all or nothing, audited.

    `data` is a whole rule set as JSON (it replaces the draft), or CSV of one map (`map_kind`:
    that map is replaced, the rest of the draft kept) or of the routing rules (`routing`).
    `source` names where it came from ("rules.json", "through the API") for the default
    reason. Used by `manage.py rules import` and the API's import endpoints.

    Raises `transfer.TransferError` naming the row and column (CSV) or line, column or path
    (JSON) of every problem, and RulesError; nothing is stored then.
    """
    if map_kind is not None and routing:
        raise RulesError("Import one map or the routing rules, not both at once.")
    origin = ""
    if map_kind is not None:
        rows = transfer.map_from_csv(kind=map_kind, text=data)
        subject, summary = f"maps.{map_kind}", f"the {map_kind} map ({len(rows)} row(s))"
        change = _map_replacer(map_kind, rows)
    elif routing:
        routing_rules = transfer.routing_from_csv(text=data)
        subject, summary = "routing", f"the routing rules ({len(routing_rules)})"
        change = _routing_replacer(routing_rules)
    else:
        document = transfer.ruleset_from_json(text=data)
        subject, summary, origin = "draft", "the whole rule set", _import_origin(document)
        change = _content_replacer(document.content)
    replaced: list[Any] = []

    def recorded(content: dict[str, Any]) -> tuple[Any, Any]:
        before, after = change(content)
        replaced.append(copy.deepcopy(before))
        return before, after

    draft = _edit(
        connection=connection, actor=actor, now=now, action=RuleAudit.Action.DRAFT_REPLACED,
        subject=subject, change=recorded, reason=reason.strip() or f"Imported {source}{origin}",
    )  # fmt: skip
    return DraftImported(draft=draft, summary=summary, before=replaced[0])


ContentChange = Callable[[dict[str, Any]], tuple[Any, Any]]


def _map_replacer(map_kind: str, rows: dict[str, dict[str, str]]) -> ContentChange:
    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        maps = content.setdefault("maps", {})
        before = maps.get(map_kind, {})
        maps[map_kind] = rows  # an empty map is dropped when the draft is saved
        return before, rows

    return change


def _routing_replacer(routing_rules: list[dict[str, Any]]) -> ContentChange:
    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        before = content.get("routing", [])
        content["routing"] = routing_rules
        return before, routing_rules

    return change


def _content_replacer(new_content: dict[str, Any]) -> ContentChange:
    def change(content: dict[str, Any]) -> tuple[Any, Any]:
        before = copy.deepcopy(content)
        content.clear()
        content.update(new_content)
        return before, new_content

    return change


def _import_origin(document: transfer.RuleSetDocument) -> str:
    if document.connection is None:
        return ""
    version = f" version {document.version}" if document.version else " draft"
    return f" (exported from {document.connection}{version})"


@transaction.atomic
def draft_discard(*, connection: Connection, actor: str, now: datetime, reason: str = "") -> None:
    draft = RuleDraft.objects.select_for_update().filter(connection=connection).first()
    if draft is None:
        raise RulesError("There is no draft to discard.")
    _audit(
        connection,
        RuleAudit.Action.DRAFT_DISCARDED,
        "draft",
        actor=actor,
        now=now,
        before=draft.content,
        reason=reason,
    )
    draft.delete()


# --- publishing ---------------------------------------------------------------------------------


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def draft_validate(*, connection: Connection, now: datetime) -> list[Issue]:
    draft = RuleDraft.objects.filter(connection=connection).first()
    if draft is None:
        raise RulesError("There is no draft: edit a rule to start one.")
    return validate_ruleset(
        parse_ruleset(draft.content),
        catalog_for(connection=connection),
        seen_values(connection=connection, now=now),
    )


@transaction.atomic
def draft_publish(
    *, connection: Connection, effective_from: date, reason: str, actor: str, now: datetime
) -> RuleVersion:
    """Validate the draft and freeze it as the next numbered version; the draft is consumed.

    Raises RulesError without a reason or draft, PublishRefused when validation finds errors.
    """
    if not reason.strip():
        raise RulesError("Say why: publishing needs a reason.")
    draft = RuleDraft.objects.select_for_update().filter(connection=connection).first()
    if draft is None:
        raise RulesError("There is no draft to publish.")
    issues = validate_ruleset(
        parse_ruleset(draft.content),
        catalog_for(connection=connection),
        seen_values(connection=connection, now=now),
    )
    if any(issue.severity == ERROR for issue in issues):
        raise PublishRefused(issues)
    version = _create_version(
        connection,
        draft.content,
        effective_from=effective_from,
        reason=reason,
        actor=actor,
        now=now,
    )
    _audit(
        connection,
        RuleAudit.Action.PUBLISHED,
        f"version.{version.number}",
        actor=actor,
        now=now,
        before={"base_version": draft.base_version.number if draft.base_version else None},
        after={
            "version": version.number,
            "effective_from": effective_from.isoformat(),
            "warnings": [issue.message for issue in issues],
        },
        reason=reason,
    )
    draft.delete()
    return version


def _create_version(
    connection: Connection,
    content: dict[str, Any],
    *,
    effective_from: date,
    reason: str,
    actor: str,
    now: datetime,
    rolled_back_from: int | None = None,
) -> RuleVersion:
    # Serialised per connection by locking the connection row: version numbers never collide.
    # The revision tells every worker's cache of versions in force to look again.
    Connection.objects.select_for_update().filter(pk=connection.pk).first()
    Connection.objects.filter(pk=connection.pk).update(rules_revision=F("rules_revision") + 1)
    number = (
        RuleVersion.objects.filter(connection=connection).aggregate(n=Max("number"))["n"] or 0
    ) + 1
    return RuleVersion.objects.create(
        connection=connection, number=number, content=content, content_hash=content_hash(content),
        effective_from=effective_from, reason=reason.strip(), published_by=actor,
        published_at=now, rolled_back_from=rolled_back_from,
    )  # fmt: skip


@transaction.atomic
def version_rollback(
    *,
    connection: Connection,
    number: int,
    effective_from: date,
    reason: str,
    actor: str,
    now: datetime,
) -> RuleVersion:
    """Publish an earlier version's rules again, as a new version. Validated like a publish."""
    if not reason.strip():
        raise RulesError("Say why: a rollback needs a reason.")
    earlier = RuleVersion.objects.filter(connection=connection, number=number).first()
    if earlier is None:
        raise RulesError(f"There is no version {number}.")
    issues = validate_ruleset(parse_ruleset(earlier.content), catalog_for(connection=connection))
    if any(issue.severity == ERROR for issue in issues):
        raise PublishRefused(issues)
    version = _create_version(
        connection,
        earlier.content,
        effective_from=effective_from,
        reason=reason,
        actor=actor,
        now=now,
        rolled_back_from=number,
    )
    _audit(
        connection,
        RuleAudit.Action.ROLLED_BACK,
        f"version.{version.number}",
        actor=actor,
        now=now,
        before={"version": number},
        after={"version": version.number},
        reason=reason,
    )
    return version


# --- reading rules and catalog for resolution ---------------------------------------------------


@dataclass(frozen=True)
class RulesInForce:
    version: RuleVersion
    compiled: CompiledRules


_COMPILED: dict[tuple[int, str], CompiledRules] = {}


def compiled_version(version: RuleVersion) -> CompiledRules:
    """Compiled rules of a version, cached per process (versions never change)."""
    key = (version.pk, version.content_hash)
    if key not in _COMPILED:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[key] = compile_rules(parse_ruleset(version.content), version=version.number)
    return _COMPILED[key]


_IN_FORCE: dict[tuple[int, int, date], RulesInForce | None] = {}


def rules_in_force(*, connection: Connection, on: date) -> RulesInForce | None:
    """The version coding documents dated `on`, cached per process until the connection's
    `rules_revision` moves (any publish or rollback), so posting costs no query here.

    Pass a connection loaded for this unit of work (the engine loads it with the record).
    """
    key = (connection.pk, connection.rules_revision, on)
    if key not in _IN_FORCE:
        if len(_IN_FORCE) > 4096:
            _IN_FORCE.clear()
        version = RuleVersion.objects.in_force_on(connection, on)
        _IN_FORCE[key] = (
            RulesInForce(version=version, compiled=compiled_version(version)) if version else None
        )
    return _IN_FORCE[key]


def compiled_draft(*, connection: Connection) -> CompiledRules | None:
    draft = RuleDraft.objects.filter(connection=connection).first()
    return compile_rules(parse_ruleset(draft.content)) if draft else None


def catalog_for(*, connection: Connection) -> Catalog:
    lists: dict[str, dict[str, CatalogValue]] = {}
    for entry in CatalogEntry.objects.filter(connection=connection).iterator(chunk_size=5000):
        key = f"{entry.parent}/{entry.code}" if entry.parent else entry.code
        lists.setdefault(entry.kind, {})[key] = CatalogValue(
            code=entry.code, name=entry.name, active=entry.active,
            accepts_postings=entry.accepts_postings, present=entry.missing_since is None,
        )  # fmt: skip
    return Catalog(lists=lists)


def seen_values(*, connection: Connection, now: datetime) -> list[SeenValue]:
    recent = SourceValue.objects.filter(
        connection=connection, last_seen_at__gte=now - timedelta(days=RECENT_DAYS)
    )
    return [SeenValue(value.attribute, value.value, value.documents) for value in recent]


def ruleset_of(version: RuleVersion) -> RuleSet:
    return parse_ruleset(version.content)
