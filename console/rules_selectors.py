"""Reads for the posting-rules pages: what the rules are now, what the draft changes, what its
checks say and which catalog values a target field can point at.

Every page starts from `rules_state`: the version in force today (on the connection's calendar),
the latest version and the draft. The editors show the draft when there is one, else the version
in force; the first edit starts a draft from the latest version (`draft_for_update`).

Values shown to people (a diff's before and after, an audit row's JSON) are turned into short
text here, so templates need no custom filters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import F, Q, QuerySet

from mappings import preview
from mappings import services as rules
from mappings.catalog import connection_today
from mappings.diff import Change, ruleset_diff
from mappings.models import CatalogEntry, RuleAudit, RuleDraft, RuleVersion, SourceValue
from mappings.ruleset import (
    DOCUMENT_KINDS,
    EMPTY_CONTENT,
    LINE_KINDS,
    MAP_KINDS,
    ROUTING_ATTRIBUTES,
    TAX_CODE_SOURCES,
    CatalogKind,
    MapKind,
    norm,
    parse_ruleset,
)
from mappings.validation import ERROR, Issue, validate_ruleset
from syncengine.models import Connection, SourceDocument, SyncRecord

# A <datalist> is a picker, not a report: past a few hundred values people type to filter anyway.
CHOICES_LIMIT = 500
# The review page lists this many of the records a draft fixes; the count covers them all.
IMPACT_LISTED = 50
HISTORY_LIMIT = 200


# --- the state of a connection's rules ----------------------------------------------------------


@dataclass(frozen=True)
class RulesState:
    connection: Connection
    today: date
    in_force: RuleVersion | None  # the version governing documents dated today
    latest: RuleVersion | None  # what a new draft starts from
    draft: RuleDraft | None

    @property
    def content(self) -> dict[str, Any]:
        """What the editors show: the draft, else the version in force."""
        if self.draft is not None:
            return self.draft.content
        if self.in_force is not None:
            return self.in_force.content
        return EMPTY_CONTENT

    @property
    def base_number(self) -> int | None:
        draft = self.draft
        return draft.base_version.number if draft and draft.base_version else None


def rules_state(*, connection: Connection, now: datetime) -> RulesState:
    today = connection_today(connection, now)
    versions = RuleVersion.objects.filter(connection=connection)
    drafts = RuleDraft.objects.select_related("base_version").filter(connection=connection)
    return RulesState(
        connection=connection,
        today=today,
        in_force=RuleVersion.objects.in_force_on(connection, today),
        latest=versions.order_by("-number").first(),
        draft=drafts.first(),
    )


def rules_issues(state: RulesState, *, now: datetime) -> list[Issue]:
    """The checks of what the editors show: the draft's (as publishing would run them), else the
    version in force's against today's catalog."""
    if state.draft is not None:
        return rules.draft_validate(connection=state.connection, now=now)
    if state.in_force is None:
        return []
    return validate_ruleset(
        parse_ruleset(state.in_force.content),
        rules.catalog_for(connection=state.connection),
        rules.seen_values(connection=state.connection, now=now),
    )


def _about(issue: Issue, subject: str) -> bool:
    # "maps.SERVICE_LINE.HVAC" is about its fields too, but not about "maps.SERVICE_LINE.HVAC 2".
    return issue.subject == subject or issue.subject.startswith(subject + ".")


# --- display text -------------------------------------------------------------------------------


def show(value: Any) -> str:
    """A rule value as short text: `revenue_account: 4010, cost_code: 100`."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        # Sorted: an audit row's "after" keeps the order fields were posted in, its "before" the
        # stored (sorted) order, and the two must read alike to be compared.
        items = sorted(value.items())
        return ", ".join(f"{key}: {_nested(item)}" for key, item in items) or "(nothing)"
    if isinstance(value, list):
        return ", ".join(_nested(item) for item in value) or "(nothing)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if text else "(empty)"


def _nested(value: Any) -> str:
    return f"({show(value)})" if isinstance(value, dict | list) and value else show(value)


@dataclass(frozen=True)
class ChangeRow:
    path: str
    change: str  # added, removed, changed
    before: str
    after: str


def change_rows(before: dict[str, Any], after: dict[str, Any]) -> list[ChangeRow]:
    return [_change_row(change) for change in ruleset_diff(before, after)]


def _change_row(change: Change) -> ChangeRow:
    return ChangeRow(
        path=change.path, change=change.change, before=show(change.before), after=show(change.after)
    )


# --- the catalog as pickers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    code: str
    name: str
    note: str = ""  # why the value cannot be used although it is listed

    @property
    def label(self) -> str:
        return f"{self.name} ({self.note})" if self.note else self.name


def catalog_choices(*, connection: Connection, kinds: Iterable[str]) -> dict[str, list[Choice]]:
    """Per catalog kind, its values for a <datalist>: usable ones first, then by code."""
    choices: dict[str, list[Choice]] = {}
    for kind in dict.fromkeys(kinds):
        entries = (
            CatalogEntry.objects.filter(connection=connection, kind=kind, parent="")
            .order_by("-active", F("missing_since").asc(nulls_first=True), "code")
            .values_list("code", "name", "active", "missing_since")[:CHOICES_LIMIT]
        )
        choices[kind] = [
            Choice(code, name, _unusable(active=active, present=missing_since is None))
            for code, name, active, missing_since in entries
        ]
    return choices


def _unusable(*, active: bool, present: bool) -> str:
    if not present:
        return "no longer in the ERP"
    return "" if active else "inactive"


def catalog_names(*, connection: Connection, codes: dict[str, set[str]]) -> dict[str, str]:
    """`"KIND/code" → name` for the codes a page shows, in one query."""
    wanted = Q()
    for kind, kind_codes in codes.items():
        if kind_codes:
            wanted |= Q(kind=kind, code__in=kind_codes)
    if not wanted:
        return {}
    entries = CatalogEntry.objects.filter(wanted, connection=connection, parent="")
    return {
        f"{kind}/{code}": name for kind, code, name in entries.values_list("kind", "code", "name")
    }


def recent_source_values(*, connection: Connection, attribute: str) -> list[str]:
    """What the source sent lately for an attribute (service lines …), for the source picker."""
    values = SourceValue.objects.filter(connection=connection, attribute=attribute)
    return list(values.order_by("-last_seen_at", "value").values_list("value", flat=True)[:500])


# --- value maps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetField:
    name: str
    catalog_kind: str

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def list_id(self) -> str:
        return f"catalog-{self.catalog_kind}"


def target_fields(kind: MapKind) -> list[TargetField]:
    return [TargetField(name, catalog_kind) for name, catalog_kind in kind.targets.items()]


@dataclass(frozen=True)
class Cell:
    field: TargetField
    code: str
    name: str
    has_issue: bool


@dataclass(frozen=True)
class MapRow:
    kind: str
    source: str
    targets: dict[str, str]
    cells: tuple[Cell, ...]
    issues: tuple[Issue, ...]

    @property
    def subject(self) -> str:
        return f"maps.{self.kind}.{self.source}"

    @property
    def dom_id(self) -> str:
        # Source values hold spaces and punctuation; the id only has to be stable and unique.
        return "row-" + hashlib.sha1(norm(self.source).encode()).hexdigest()[:12]

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == ERROR for issue in self.issues)


def _map_row(
    kind: MapKind, source: str, targets: dict[str, str], issues: list[Issue], names: dict[str, str]
) -> MapRow:
    subject = f"maps.{kind.key}.{source}"
    mine = tuple(issue for issue in issues if _about(issue, subject))
    cells = tuple(
        Cell(
            field=target,
            code=targets.get(target.name, ""),
            name=names.get(f"{target.catalog_kind}/{targets.get(target.name, '')}", ""),
            has_issue=any(_about(issue, f"{subject}.{target.name}") for issue in mine),
        )
        for target in target_fields(kind)
    )
    return MapRow(kind=kind.key, source=source, targets=targets, cells=cells, issues=mine)


def map_form_row(kind: MapKind, source: str, data: Mapping[str, str]) -> MapRow:
    """A row as typed into a form (to show it again with what stopped it)."""
    cells = tuple(
        Cell(field=target, code=data.get(target.name, "").strip(), name="", has_issue=False)
        for target in target_fields(kind)
    )
    return MapRow(kind=kind.key, source=source, targets={}, cells=cells, issues=())


def _names_for_rows(
    connection: Connection, kind: MapKind, rows: dict[str, dict[str, str]]
) -> dict[str, str]:
    codes: dict[str, set[str]] = {}
    for targets in rows.values():
        for name, code in targets.items():
            codes.setdefault(kind.targets.get(name, ""), set()).add(code)
    return catalog_names(connection=connection, codes=codes)


@dataclass(frozen=True)
class MapPage:
    state: RulesState
    kind: MapKind
    fields: list[TargetField]
    rows: list[MapRow]
    issues: list[Issue]  # about the map as a whole: recent values nothing maps
    choices: dict[str, list[Choice]]
    source_values: list[str]


def map_page(*, connection: Connection, kind: MapKind, now: datetime) -> MapPage:
    state = rules_state(connection=connection, now=now)
    rows: dict[str, dict[str, str]] = state.content.get("maps", {}).get(kind.key, {})
    issues = rules_issues(state, now=now)
    names = _names_for_rows(connection, kind, rows)
    return MapPage(
        state=state,
        kind=kind,
        fields=target_fields(kind),
        rows=[
            _map_row(kind, source, targets, issues, names)
            for source, targets in sorted(rows.items(), key=lambda item: norm(item[0]))
        ],
        issues=[issue for issue in issues if issue.subject == f"maps.{kind.key}"],
        choices=catalog_choices(connection=connection, kinds=kind.targets.values()),
        source_values=recent_source_values(connection=connection, attribute=kind.source),
    )


def map_row(*, connection: Connection, kind: MapKind, source: str, now: datetime) -> MapRow | None:
    """One row as the editors show it, with its checks (one validation of the whole draft)."""
    state = rules_state(connection=connection, now=now)
    rows: dict[str, dict[str, str]] = state.content.get("maps", {}).get(kind.key, {})
    found = next((existing for existing in rows if norm(existing) == norm(source)), None)
    if found is None:
        return None
    names = _names_for_rows(connection, kind, {found: rows[found]})
    return _map_row(kind, found, rows[found], rules_issues(state, now=now), names)


# --- routing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    attribute: str
    value: str  # "" where the rule does not test the attribute
    choices: tuple[str, ...]  # the allowed values, for a <select>; empty for free text

    @property
    def label(self) -> str:
        return self.attribute.replace("_", " ").capitalize()


_ATTRIBUTE_CHOICES = {"document_kind": DOCUMENT_KINDS, "line_kind": LINE_KINDS}


def _conditions(values: Mapping[str, str]) -> tuple[Condition, ...]:
    return tuple(
        Condition(attribute, values.get(attribute, ""), _ATTRIBUTE_CHOICES.get(attribute, ()))
        for attribute in ROUTING_ATTRIBUTES
    )


@dataclass(frozen=True)
class RoutingRow:
    id: int | None  # None for the add form
    conditions: tuple[Condition, ...]
    account: str
    account_name: str = ""
    priority: str = "0"
    note: str = ""
    issues: tuple[Issue, ...] = ()

    @property
    def dom_id(self) -> str:
        return f"rule-{self.id}" if self.id is not None else "rule-new"

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == ERROR for issue in self.issues)


def routing_form_row(rule_id: int | None, data: Mapping[str, str]) -> RoutingRow:
    """A rule as typed into a form: conditions posted as `cond_<attribute>`."""
    return RoutingRow(
        id=rule_id,
        conditions=_conditions(
            {name: data.get(f"cond_{name}", "").strip() for name in ROUTING_ATTRIBUTES}
        ),
        account=data.get("account", "").strip(),
        priority=data.get("priority", "0").strip(),
        note=data.get("note", "").strip(),
    )


@dataclass(frozen=True)
class RoutingPage:
    state: RulesState
    rows: list[RoutingRow]
    issues: list[Issue]  # every routing issue: a tie names two rules but is filed under one
    choices: dict[str, list[Choice]]
    attributes: tuple[str, ...] = ROUTING_ATTRIBUTES


def _routing_rows(
    connection: Connection, rules_list: list[dict[str, Any]], issues: list[Issue]
) -> list[RoutingRow]:
    names = catalog_names(
        connection=connection, codes={CatalogKind.ACCOUNT: {rule["account"] for rule in rules_list}}
    )
    return [
        RoutingRow(
            id=rule["id"],
            conditions=_conditions(rule["conditions"]),
            account=rule["account"],
            account_name=names.get(f"{CatalogKind.ACCOUNT}/{rule['account']}", ""),
            priority=str(rule["priority"]),
            note=rule["note"],
            issues=tuple(issue for issue in issues if _about(issue, f"routing.{rule['id']}")),
        )
        for rule in sorted(rules_list, key=lambda rule: rule["id"])
    ]


def routing_page(*, connection: Connection, now: datetime) -> RoutingPage:
    state = rules_state(connection=connection, now=now)
    issues = rules_issues(state, now=now)
    return RoutingPage(
        state=state,
        rows=_routing_rows(connection, state.content.get("routing", []), issues),
        issues=[issue for issue in issues if _about(issue, "routing")],
        choices=catalog_choices(connection=connection, kinds=[CatalogKind.ACCOUNT]),
    )


def routing_row(*, connection: Connection, rule_id: int, now: datetime) -> RoutingRow | None:
    state = rules_state(connection=connection, now=now)
    found = [rule for rule in state.content.get("routing", []) if rule["id"] == rule_id]
    if not found:
        return None
    return _routing_rows(connection, found, rules_issues(state, now=now))[0]


# --- defaults -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultsPage:
    state: RulesState
    defaults: dict[str, str]
    issues: list[Issue]
    choices: dict[str, list[Choice]]
    tax_code_sources: tuple[str, ...] = TAX_CODE_SOURCES


def defaults_page(*, connection: Connection, now: datetime) -> DefaultsPage:
    state = rules_state(connection=connection, now=now)
    issues = rules_issues(state, now=now)
    return DefaultsPage(
        state=state,
        defaults={**EMPTY_CONTENT["defaults"], **state.content.get("defaults", {})},
        issues=[issue for issue in issues if _about(issue, "defaults")],
        choices=catalog_choices(connection=connection, kinds=[CatalogKind.ACCOUNT]),
    )


# --- overview -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    rows: int


@dataclass(frozen=True)
class Overview:
    state: RulesState
    change_count: int  # changes of the draft against the version it started from
    maps: list[Section]
    routing_rules: int
    upcoming: list[RuleVersion]  # published, effective after today


def rules_overview(*, connection: Connection, now: datetime) -> Overview:
    state = rules_state(connection=connection, now=now)
    content = state.content
    change_count = 0
    if state.draft is not None:
        base = state.draft.base_version
        change_count = len(ruleset_diff(base.content if base else EMPTY_CONTENT, content))
    upcoming = RuleVersion.objects.filter(connection=connection, effective_from__gt=state.today)
    return Overview(
        state=state,
        change_count=change_count,
        maps=[
            Section(kind.key, kind.label, len(content.get("maps", {}).get(kind.key, {})))
            for kind in MAP_KINDS.values()
        ],
        routing_rules=len(content.get("routing", [])),
        upcoming=list(upcoming.order_by("effective_from", "number")),
    )


# --- review and publish -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPage:
    state: RulesState
    changes: list[ChangeRow]  # the draft against the version in force today
    errors: list[Issue]
    warnings: list[Issue]
    impact: preview.Impact | None
    fixed_listed: tuple[preview.ImpactRecord, ...]
    # The oldest document among those the draft fixes: publishing effective later leaves it (and
    # any other older one) governed by the version in force on its date, still blocked.
    earliest_fixed: date | None


def review_page(*, connection: Connection, now: datetime) -> ReviewPage:
    state = rules_state(connection=connection, now=now)
    if state.draft is None:
        return ReviewPage(state, [], [], [], None, (), None)
    issues = rules_issues(state, now=now)
    impact = preview.draft_impact(connection=connection)
    return ReviewPage(
        state=state,
        changes=[_change_row(change) for change in draft_changes(state)],
        errors=[issue for issue in issues if issue.severity == ERROR],
        warnings=[issue for issue in issues if issue.severity != ERROR],
        impact=impact,
        fixed_listed=impact.fixed[:IMPACT_LISTED],
        earliest_fixed=_earliest_date([record.document_id for record in impact.fixed]),
    )


def draft_changes(state: RulesState) -> list[Change]:
    """What publishing the draft would change: the draft against the version in force today
    (not the version it started from, which a later publish may have replaced). The review page
    and the API's draft diff show these."""
    if state.draft is None:
        return []
    in_force = state.in_force.content if state.in_force else EMPTY_CONTENT
    return ruleset_diff(in_force, state.draft.content)


def _earliest_date(document_ids: list[int]) -> date | None:
    if not document_ids:
        return None
    dates = SourceDocument.objects.filter(pk__in=document_ids).values_list(
        "canonical__transaction_date", flat=True
    )
    # ISO dates sort as text.
    earliest = min((value for value in dates if value), default=None)
    return date.fromisoformat(earliest) if earliest else None


@dataclass(frozen=True)
class PublishedPage:
    version: RuleVersion
    fixed_count: int
    fixed_listed: list[SyncRecord]


def published_page(*, connection: Connection, version: RuleVersion) -> PublishedPage:
    fixed = preview.records_fixed_by(connection=connection, version=version)
    listed = SyncRecord.objects.filter(pk__in=fixed[:IMPACT_LISTED]).select_related("document")
    return PublishedPage(
        version=version, fixed_count=len(fixed), fixed_listed=list(listed.order_by("pk"))
    )


# --- versions and history -----------------------------------------------------------------------


@dataclass(frozen=True)
class VersionsPage:
    state: RulesState
    versions: list[RuleVersion]
    a: RuleVersion | None
    b: RuleVersion | None
    changes: list[ChangeRow] | None  # None until two versions are picked


def versions_page(
    *, connection: Connection, now: datetime, a: int | None = None, b: int | None = None
) -> VersionsPage:
    state = rules_state(connection=connection, now=now)
    versions = list(RuleVersion.objects.filter(connection=connection).order_by("-number"))
    by_number = {version.number: version for version in versions}
    first, second = by_number.get(a or -1), by_number.get(b or -1)
    changes = change_rows(first.content, second.content) if first and second else None
    return VersionsPage(state=state, versions=versions, a=first, b=second, changes=changes)


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    subject: str
    before: str
    after: str
    reason: str


def rule_history(*, connection: Connection, subject: str) -> list[AuditRow]:
    """Who changed `subject` (e.g. maps.SERVICE_LINE.HVAC), newest first; every rule change
    when `subject` is empty."""
    return [
        AuditRow(
            at=row.at,
            actor=row.actor,
            action=row.get_action_display(),
            subject=row.subject,
            before=_audit_text(row.before),
            after=_audit_text(row.after),
            reason=row.reason,
        )
        for row in rule_audit(connection=connection, subject=subject).order_by("-id")[
            :HISTORY_LIMIT
        ]
    ]


def rule_audit(*, connection: Connection, subject: str = "") -> QuerySet[RuleAudit]:
    """The audit rows of one rule (`maps.SERVICE_LINE.HVAC`, `routing.7` …), or of every rule
    and catalog change when `subject` is empty. The console's history page and the API's read
    this; unordered, so each pages it its own way."""
    audit = RuleAudit.objects.filter(connection=connection)
    if subject:
        # Audit subjects keep the source value as typed ("hvac" or "HVAC"): match either.
        audit = audit.filter(subject__iexact=subject)
    return audit


def _audit_text(value: Any) -> str:
    # A whole rule set (an import, a discarded draft) is too big to read in a table cell.
    if isinstance(value, dict) and "maps" in value and "defaults" in value:
        return "(a whole rule set)"
    text = show(value)
    return text if len(text) <= 400 else json.dumps(value)[:400] + "…"
