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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import F, Q, QuerySet

from mappings import preview, transfer
from mappings import services as rules
from mappings.catalog import connection_today
from mappings.diff import Change, ruleset_diff
from mappings.models import CatalogEntry, RuleAudit, RuleDraft, RuleVersion, SourceValue
from mappings.ruleset import (
    DIMENSION_SOURCES,
    DOCUMENT_KINDS,
    EMPTY_CONTENT,
    LINE_KINDS,
    MAP_KINDS,
    NUMBERING_ENTITIES,
    OWNED_ENTITIES,
    OWNERS,
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


# --- dimensions, numbering and field owners -----------------------------------------------------
#
# The three list sections of a rule set share one editable table: each row is one item, keyed
# by one or two of its fields (`SectionKind.columns` with `key=True`), which are fixed once the
# row exists. A dimension's value map is a table of its own (`dimension_page`).


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    input: str = "text"  # text, number, select or checkbox
    choices: tuple[str, ...] = ()
    key: bool = False  # identifies the row: typed when adding, fixed afterwards
    required: bool = False
    list_id: str = ""  # the <datalist> picker of a text column


@dataclass(frozen=True)
class SectionKind:
    key: str
    label: str
    item: str  # one row, for messages: "dimension setting"
    columns: tuple[Column, ...]

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.key)


SECTIONS: dict[str, SectionKind] = {
    "dimensions": SectionKind(
        "dimensions",
        "Dimensions",
        "dimension setting",
        (
            Column("dimension", "Dimension", key=True, required=True, list_id="catalog-DIMENSION"),
            Column("source", "Filled from", "select", DIMENSION_SOURCES, required=True),
            Column("default", "Default value"),
            Column("pass_through", "Pass the source value through", "checkbox"),
            Column("required", "Required", "checkbox"),
            Column("customer_default", "Default of customers Crosswalk creates", "checkbox"),
        ),
    ),
    "numbering": SectionKind(
        "numbering",
        "Numbering",
        "numbering rule",
        (
            Column("entity", "Entity", "select", NUMBERING_ENTITIES, key=True, required=True),
            Column("prefix", "Prefix"),
            Column("start", "First number", "number", required=True),
            Column("end", "Last number", "number", required=True),
            Column("width", "Digits (0: as is)", "number"),
        ),
    ),
    "ownership": SectionKind(
        "ownership",
        "Field owners",
        "field owner",
        (
            Column("entity", "Entity", "select", OWNED_ENTITIES, key=True, required=True),
            Column("field", "Field", key=True, required=True),
            Column("owner", "Owner", "select", OWNERS, required=True),
        ),
    ),
}


def dimension_list_id(dimension: str) -> str:
    """The id of the <datalist> of one dimension's values (codes hold any character)."""
    return "dimension-values-" + hashlib.sha1(dimension.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SectionCell:
    column: Column
    value: str  # as typed; a checkbox is "true" or ""
    list_id: str
    errors: tuple[str, ...] = ()  # what stopped the last save, about this field
    has_issue: bool = False  # a check of the saved rules names this field


@dataclass(frozen=True)
class SectionRow:
    section: str
    key: tuple[str, ...]
    cells: tuple[SectionCell, ...]
    issues: tuple[Issue, ...] = ()
    errors: tuple[str, ...] = ()  # about the row as a whole
    value_count: int | None = None  # a dimension's mapped values
    value_problems: int = 0  # checks failing among them

    @property
    def subject(self) -> str:
        return ".".join([self.section, *self.key])

    @property
    def label(self) -> str:
        return " ".join(self.key)

    @property
    def dom_id(self) -> str:
        return f"{self.section}-" + hashlib.sha1(self.subject.encode()).hexdigest()[:12]

    @property
    def key_items(self) -> list[tuple[str, str]]:
        """The key fields and their values: `[("entity", "CUSTOMER"), ("field", "tax_code")]`."""
        names = [column.name for column in SECTIONS[self.section].key_columns]
        return list(zip(names, self.key, strict=True))

    @property
    def query(self) -> str:
        """The row's key as a query string: `entity=CUSTOMER&field=tax_code`."""
        return urlencode(self.key_items)

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == ERROR for issue in self.issues)

    @property
    def field_errors(self) -> bool:
        return bool(self.errors) or any(cell.errors for cell in self.cells)


def _cell_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else ""
    return "" if value is None else str(value)


def _section_row(kind: SectionKind, item: Mapping[str, Any], issues: list[Issue]) -> SectionRow:
    key = tuple(_cell_text(item.get(column.name)) for column in kind.key_columns)
    subject = ".".join([kind.key, *key])
    # A dimension's values have their own page, which shows their checks; the row counts them.
    values = f"{subject}.values."
    mine = tuple(i for i in issues if _about(i, subject) and not i.subject.startswith(values))
    value_problems = sum(1 for issue in issues if issue.subject.startswith(values))
    cells = tuple(
        SectionCell(
            column=column,
            value=_cell_text(item.get(column.name)),
            list_id=_list_id(kind, column, item),
            has_issue=any(_about(issue, f"{subject}.{column.name}") for issue in issues),
        )
        for column in kind.columns
    )
    if kind.key != "dimensions":
        return SectionRow(kind.key, key, cells, mine)
    count = len(item.get("values", {}))
    return SectionRow(kind.key, key, cells, mine, value_count=count, value_problems=value_problems)


def _list_id(kind: SectionKind, column: Column, item: Mapping[str, Any]) -> str:
    if kind.key == "dimensions" and column.name == "default":
        return dimension_list_id(_cell_text(item.get("dimension")))
    return column.list_id


_ERROR_PATH = re.compile(r"^(?:\w+\[\d+\]\.)?(?P<field>\w+)(?:\.[^:]*)?: (?P<message>.+)$")


def section_form_row(
    kind: SectionKind, data: Mapping[str, str], error: str = "", *, key: tuple[str, ...] = ()
) -> SectionRow:
    """A row as typed into a form, with what stopped its save next to the field it names.

    The services' messages carry the rule set's path (`numbering[2].start: expected a whole
    number`); a message naming no field of the row (a range that is empty) is the row's."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    names = {column.name for column in kind.columns}
    for part in filter(None, (text.strip() for text in error.split("; "))):
        match = _ERROR_PATH.match(part)
        if match and match["field"] in names:
            by_field.setdefault(match["field"], []).append(match["message"])
        else:
            general.append(part)
    item = {column.name: data.get(column.name, "").strip() for column in kind.columns}
    for column in kind.columns:
        if column.input == "checkbox":
            item[column.name] = "true" if data.get(column.name) else ""
    cells = tuple(
        SectionCell(
            column=column,
            value=item[column.name],
            list_id=_list_id(kind, column, item),
            errors=tuple(by_field.get(column.name, ())),
        )
        for column in kind.columns
    )
    row_key = key or tuple(item[column.name] for column in kind.key_columns)
    return SectionRow(kind.key, row_key, cells, errors=tuple(general))


@dataclass(frozen=True)
class SectionPage:
    state: RulesState
    kind: SectionKind
    rows: list[SectionRow]
    issues: list[Issue]  # every check about the section, for the panel above the table
    pickers: dict[str, list[Choice]]  # <datalist> id → its options


def _section_items(state: RulesState, kind: SectionKind) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = state.content.get(kind.key, [])
    return items


def section_page(*, connection: Connection, kind: SectionKind, now: datetime) -> SectionPage:
    state = rules_state(connection=connection, now=now)
    issues = rules_issues(state, now=now)
    items = _section_items(state, kind)
    return SectionPage(
        state=state,
        kind=kind,
        rows=[_section_row(kind, item, issues) for item in items],
        issues=[issue for issue in issues if _about(issue, kind.key)],
        pickers=_section_pickers(connection, kind, items),
    )


def _section_pickers(
    connection: Connection, kind: SectionKind, items: list[dict[str, Any]]
) -> dict[str, list[Choice]]:
    """The dimensions table picks a dimension from the ERP's, and a default among the values
    of the row's dimension; the other sections have no catalog."""
    if kind.key != "dimensions":
        return {}
    dimensions = catalog_choices(connection=connection, kinds=[CatalogKind.DIMENSION])
    pickers = {"catalog-DIMENSION": dimensions[CatalogKind.DIMENSION]}
    known = [choice.code for choice in dimensions[CatalogKind.DIMENSION]]
    codes = [item["dimension"] for item in items] + known
    for code in dict.fromkeys(codes):
        pickers[dimension_list_id(code)] = dimension_value_choices(
            connection=connection, dimension=code
        )
    return pickers


def section_row(
    *, connection: Connection, kind: SectionKind, key: tuple[str, ...], now: datetime
) -> SectionRow | None:
    state = rules_state(connection=connection, now=now)
    names = [column.name for column in kind.key_columns]
    for item in _section_items(state, kind):
        if tuple(_cell_text(item.get(name)) for name in names) == key:
            return _section_row(kind, item, rules_issues(state, now=now))
    return None


# --- one dimension's values ---------------------------------------------------------------------

DIMENSION_SEARCH_LIMIT = 50


def dimension_value_choices(
    *, connection: Connection, dimension: str, query: str = ""
) -> list[Choice]:
    """The ERP's values of one dimension for a picker: usable first, then by code; with
    `query`, those whose code or name holds it (the picker's search as you type)."""
    entries = CatalogEntry.objects.filter(
        connection=connection, kind=CatalogKind.DIMENSION_VALUE, parent=dimension
    )
    limit = CHOICES_LIMIT
    if query.strip():
        text = query.strip()
        entries = entries.filter(Q(code__icontains=text) | Q(name__icontains=text))
        limit = DIMENSION_SEARCH_LIMIT
    rows = entries.order_by("-active", F("missing_since").asc(nulls_first=True), "code")
    return [
        Choice(code, name, _unusable(active=active, present=missing_since is None))
        for code, name, active, missing_since in rows.values_list(
            "code", "name", "active", "missing_since"
        )[:limit]
    ]


@dataclass(frozen=True)
class DimensionValueRow:
    dimension: str
    source: str
    code: str
    name: str = ""
    issues: tuple[Issue, ...] = ()

    @property
    def subject(self) -> str:
        return f"dimensions.{self.dimension}.values.{self.source}"

    @property
    def dom_id(self) -> str:
        return "value-" + hashlib.sha1(norm(self.source).encode()).hexdigest()[:12]

    @property
    def list_id(self) -> str:
        return dimension_list_id(self.dimension)

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == ERROR for issue in self.issues)


@dataclass(frozen=True)
class DimensionPage:
    state: RulesState
    dimension: str
    setting: dict[str, Any]
    rows: list[DimensionValueRow]
    issues: list[Issue]  # about the setting itself (an unknown dimension, its default)
    choices: list[Choice]
    source_values: list[str]

    @property
    def list_id(self) -> str:
        return dimension_list_id(self.dimension)


def _dimension_setting(state: RulesState, dimension: str) -> dict[str, Any] | None:
    settings: list[dict[str, Any]] = state.content.get("dimensions", [])
    return next((s for s in settings if s["dimension"] == dimension), None)


def _value_rows(
    connection: Connection, dimension: str, values: dict[str, str], issues: list[Issue]
) -> list[DimensionValueRow]:
    names = {
        code: name
        for code, name in CatalogEntry.objects.filter(
            connection=connection,
            kind=CatalogKind.DIMENSION_VALUE,
            parent=dimension,
            code__in=set(values.values()),
        ).values_list("code", "name")
    }
    rows = []
    for source, code in sorted(values.items(), key=lambda item: norm(item[0])):
        subject = f"dimensions.{dimension}.values.{source}"
        mine = tuple(issue for issue in issues if issue.subject == subject)
        rows.append(DimensionValueRow(dimension, source, code, names.get(code, ""), mine))
    return rows


def dimension_page(
    *, connection: Connection, dimension: str, now: datetime
) -> DimensionPage | None:
    """One dimension's value map, or None when the rules have no setting for it."""
    state = rules_state(connection=connection, now=now)
    setting = _dimension_setting(state, dimension)
    if setting is None:
        return None
    issues = rules_issues(state, now=now)
    subject = f"dimensions.{dimension}"
    return DimensionPage(
        state=state,
        dimension=dimension,
        setting=setting,
        rows=_value_rows(connection, dimension, setting.get("values", {}), issues),
        issues=[
            issue
            for issue in issues
            if _about(issue, subject) and not issue.subject.startswith(f"{subject}.values.")
        ],
        choices=dimension_value_choices(connection=connection, dimension=dimension),
        source_values=recent_source_values(connection=connection, attribute=setting["source"]),
    )


def dimension_value_row(
    *, connection: Connection, dimension: str, source: str, now: datetime
) -> DimensionValueRow | None:
    state = rules_state(connection=connection, now=now)
    setting = _dimension_setting(state, dimension) or {}
    values: dict[str, str] = setting.get("values", {})
    found = next((existing for existing in values if norm(existing) == norm(source)), None)
    if found is None:
        return None
    rows = _value_rows(connection, dimension, {found: values[found]}, rules_issues(state, now=now))
    return rows[0]


# --- files: export and import -------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    text: str


def rules_export(
    *, connection: Connection, now: datetime, version: int | None, part: str
) -> ExportFile | None:
    """The rules shown in the editor (the draft, else the version in force), or `version`, as
    a file: `part` is "json" (the whole rule set), "routing" or a map kind (CSV). None when
    there is no such version or part, or no rules at all."""
    state = rules_state(connection=connection, now=now)
    if version is not None:
        chosen = RuleVersion.objects.filter(connection=connection, number=version).first()
        if chosen is None:
            return None
        content, number, effective = chosen.content, chosen.number, chosen.effective_from
        tag = f"v{number}"
    elif state.draft is not None:
        content, number, effective, tag = state.draft.content, None, None, "draft"
    elif state.in_force is not None:
        chosen = state.in_force
        content, number, effective = chosen.content, chosen.number, chosen.effective_from
        tag = f"v{number}"
    else:
        return None
    name = f"{connection.slug}-rules-{tag}"
    if part == "json":
        text = transfer.ruleset_to_json(
            content=content, connection=connection.slug, version=number, effective_from=effective
        )
        return ExportFile(f"{name}.json", "application/json", text)
    if part == "routing":
        text = transfer.routing_to_csv(rules=content.get("routing", []))
        return ExportFile(f"{name}-routing.csv", "text/csv; charset=utf-8", text)
    if part in MAP_KINDS:
        text = transfer.map_to_csv(kind=part, rows=content.get("maps", {}).get(part, {}))
        return ExportFile(f"{name}-{part}.csv", "text/csv; charset=utf-8", text)
    return None


@dataclass(frozen=True)
class ImportCount:
    label: str
    added: int
    changed: int
    removed: int

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.removed)


def _count(label: str, before: Mapping[Any, Any], after: Mapping[Any, Any]) -> ImportCount:
    return ImportCount(
        label=label,
        added=len(after.keys() - before.keys()),
        changed=sum(1 for key in after.keys() & before.keys() if after[key] != before[key]),
        removed=len(before.keys() - after.keys()),
    )


def _rows_by_source(rows: Mapping[str, Any] | None) -> dict[str, Any]:
    return {norm(source): row for source, row in (rows or {}).items()}


def _by(items: list[dict[str, Any]] | None, *names: str) -> dict[tuple[Any, ...], Any]:
    return {tuple(item.get(name) for name in names): item for item in items or []}


def import_counts(
    result: rules.DraftImported, *, map_kind: str | None, routing: bool
) -> list[ImportCount]:
    """What an import did to the draft, per part: rows added, changed and removed."""
    after = result.draft.content
    if map_kind is not None:
        label = f"{MAP_KINDS[map_kind].label} map rows"
        new = after.get("maps", {}).get(map_kind, {})
        return [_count(label, _rows_by_source(result.before), _rows_by_source(new))]
    if routing:
        return [_count("Routing rules", _by(result.before, "id"), _by(after["routing"], "id"))]
    before = parse_ruleset(result.before or EMPTY_CONTENT).to_content()
    counts = [
        _count(
            f"{kind.label} map rows",
            _rows_by_source(before["maps"].get(kind.key)),
            _rows_by_source(after.get("maps", {}).get(kind.key)),
        )
        for kind in MAP_KINDS.values()
    ]
    counts += [
        _count("Routing rules", _by(before["routing"], "id"), _by(after["routing"], "id")),
        _count("Defaults", before["defaults"], after["defaults"]),
    ]
    for key, kind in SECTIONS.items():
        names = [column.name for column in kind.key_columns]
        counts.append(_count(kind.label, _by(before[key], *names), _by(after[key], *names)))
    return counts


# --- checking a target value as it is typed -----------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    ok: bool
    text: str


def target_check(*, connection: Connection, kind: str, code: str) -> TargetCheck | None:
    """What publishing would say of one typed target value, said while it is typed: whether the
    ERP has it, and whether it is usable. None for an empty value (nothing to say yet)."""
    code = code.strip()
    if not code:
        return None
    label = kind.replace("_", " ").lower()
    entries = CatalogEntry.objects.filter(connection=connection, kind=kind, parent="", code=code)
    entry = entries.first()
    if entry is None:
        return TargetCheck(False, f"{code} is not in the ERP's {label} list.")
    named = f"{code} {entry.name}".strip()
    if entry.missing_since is not None:
        return TargetCheck(False, f"{named}: no longer in the ERP.")
    if not entry.active:
        return TargetCheck(False, f"{named}: inactive in the ERP.")
    if not entry.accepts_postings:
        return TargetCheck(False, f"{named}: takes no postings.")
    return TargetCheck(True, named)
