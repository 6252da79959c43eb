"""The crosswalk as data: one rule set per connection, edited as a draft, published as versions.

A rule set is a plain JSON document (stored on `RuleDraft.content` and `RuleVersion.content`,
exported by `manage.py rules export`, documented in docs/rules-format.md):

    {
      "defaults":   {"receivable_account": "1200", "revenue_account": "", "tax_account": "",
                     "tax_code_source": "RATE"},
      "maps":       {"SERVICE_LINE": {"HVAC": {"revenue_account": "4010", "cost_code": "100"}}},
      "routing":    [{"id": 1, "conditions": {"service_line": "HVAC", "line_kind": "labor"},
                      "account": "4011", "priority": 0, "note": ""}],
      "dimensions": [{"dimension": "DEPARTMENT", "source": "service_line",
                      "values": {"HVAC": "D10"}, "default": "", "pass_through": false,
                      "required": false}],
      "numbering":  [{"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 9999, "width": 5}],
      "ownership":  [{"entity": "CUSTOMER", "field": "tax_code", "owner": "ERP"}]
    }

`parse_ruleset` turns such a document into frozen dataclasses or raises `RuleSetFormatError`
listing every problem with its path (``maps.SERVICE_LINE.HVAC.revenue_account: expected text``).
Source values are stored as people typed them; lookups compare them normalised (`norm`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

# --- vocabulary ---------------------------------------------------------------------------------


class CatalogKind:
    """The ERP lists a rule can point at (`CatalogEntry.kind`)."""

    ACCOUNT = "ACCOUNT"
    DIMENSION = "DIMENSION"
    DIMENSION_VALUE = "DIMENSION_VALUE"
    TAX_CODE = "TAX_CODE"
    TAX_GROUP = "TAX_GROUP"
    TAX_AREA = "TAX_AREA"
    PAYMENT_TERM = "PAYMENT_TERM"
    COST_CENTER = "COST_CENTER"
    PRICE_METHOD = "PRICE_METHOD"
    DEPARTMENT = "DEPARTMENT"
    EMPLOYEE = "EMPLOYEE"
    PAY_TYPE = "PAY_TYPE"
    JOB_PHASE = "JOB_PHASE"
    COST_TYPE = "COST_TYPE"
    COST_CODE = "COST_CODE"
    WORK_STATE = "WORK_STATE"
    TAX_CLASS = "TAX_CLASS"
    CUSTOMER = "CUSTOMER"
    ITEM = "ITEM"
    VENDOR = "VENDOR"
    PROJECT = "PROJECT"  # an ERP job / project, e.g. Business Central's projects

    ALL = (
        ACCOUNT, DIMENSION, DIMENSION_VALUE, TAX_CODE, TAX_GROUP, TAX_AREA, PAYMENT_TERM,
        COST_CENTER, PRICE_METHOD, DEPARTMENT, EMPLOYEE, PAY_TYPE, JOB_PHASE, COST_TYPE,
        COST_CODE, WORK_STATE, TAX_CLASS, CUSTOMER, ITEM, VENDOR, PROJECT,
    )  # fmt: skip


@dataclass(frozen=True)
class MapKind:
    key: str
    label: str
    source: str  # the source attribute (or ERP list) whose values are the map's keys
    targets: dict[str, str]  # target field → catalog kind it must exist in


MAP_KINDS: dict[str, MapKind] = {
    kind.key: kind
    for kind in [
        MapKind("SERVICE_LINE", "Service line", "service_line",
                {"revenue_account": CatalogKind.ACCOUNT, "cost_code": CatalogKind.COST_CODE,
                 "cost_center": CatalogKind.COST_CENTER}),
        MapKind("OFFICE", "Office", "office", {"department": CatalogKind.DEPARTMENT}),
        MapKind("TECHNICIAN", "Technician", "technician", {"employee": CatalogKind.EMPLOYEE}),
        MapKind("LABOR_TYPE", "Labor type", "labor_type", {"pay_type": CatalogKind.PAY_TYPE}),
        MapKind("LOCATION_STATE", "Location state", "location_state",
                {"work_state": CatalogKind.WORK_STATE, "tax_class": CatalogKind.TAX_CLASS,
                 "tax_code": CatalogKind.TAX_CODE}),
        MapKind("TAX_RATE", "Tax rate", "tax_rate",
                {"tax_code": CatalogKind.TAX_CODE, "tax_account": CatalogKind.ACCOUNT}),
        MapKind("COST_CENTER", "Cost center", "cost_center",
                {"gl_account": CatalogKind.ACCOUNT, "price_method": CatalogKind.PRICE_METHOD}),
        MapKind("JOB_TYPE", "Job type", "job_type", {"gl_account": CatalogKind.ACCOUNT}),
        MapKind("ITEM_TYPE", "Item type", "item_type",
                {"item": CatalogKind.ITEM, "gl_account": CatalogKind.ACCOUNT,
                 "cost_account": CatalogKind.ACCOUNT, "cost_offset_account": CatalogKind.ACCOUNT}),
    ]
}  # fmt: skip

# Attributes a GL routing rule may test, in the order they are shown.
ROUTING_ATTRIBUTES = (
    "document_kind", "line_kind", "service_line", "office", "job_type", "customer_tag", "state",
)  # fmt: skip
# job_cost and purchase_invoice rules are read by `mappings.resolve_cost` only: a rule for them
# never codes an invoice, and an invoice rule never codes a cost.
DOCUMENT_KINDS = ("invoice", "credit_memo", "job_cost", "purchase_invoice")
LINE_KINDS = ("labor", "part", "other")

# Source attributes a dimension can be fed from.
DIMENSION_SOURCES = (
    "service_line", "office", "job", "job_type", "location_state", "customer", "item_type",
)  # fmt: skip
# Those read from each line; the others are the document's, the same on every line.
LINE_DIMENSION_SOURCES = ("service_line", "item_type")
TAX_CODE_SOURCES = ("RATE", "STATE")
NUMBERING_ENTITIES = ("CUSTOMER", "SITE", "JOB")
OWNED_ENTITIES = ("CUSTOMER", "LOCATION", "CONTACT")
OWNERS = ("ERP", "SOURCE", "LATEST")


# Resolution normalises the same few thousand source values (service lines, offices, rates …) on
# every line, and the Decimal parse that fails for non-numbers costs about a microsecond; a
# bounded cache makes repeats a dictionary hit. `typed` keeps 1 and True apart.
@lru_cache(maxsize=16_384, typed=True)
def norm(value: str) -> str:
    """How source values compare: case, spacing and trailing zeros of rates do not matter."""
    text = " ".join(str(value).split()).casefold()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return format(number.normalize(), "f") if number.is_finite() else text


# --- the rule set -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defaults:
    receivable_account: str = ""
    revenue_account: str = ""
    tax_account: str = ""
    tax_code_source: str = "RATE"
    # Costs and purchases (`mappings.resolve_cost`). Written to the rule-set document only when
    # set, so rule sets without them read and serialise exactly as before.
    cost_account: str = ""  # job cost / WIP debited by a job item cost
    cost_offset_account: str = ""  # credited by a job item cost (inventory, accrued cost)
    payable_account: str = ""  # credited by a purchase invoice
    inventory_adjustment_account: str = ""  # the other side of an inventory adjustment


COST_DEFAULTS = (
    "cost_account", "cost_offset_account", "payable_account", "inventory_adjustment_account",
)  # fmt: skip


@dataclass(frozen=True)
class RoutingRule:
    id: int
    conditions: dict[str, str]
    account: str
    priority: int = 0
    note: str = ""

    @property
    def specificity(self) -> int:
        return len(self.conditions)


@dataclass(frozen=True)
class DimensionSetting:
    dimension: str
    source: str
    values: dict[str, str] = field(default_factory=dict)
    default: str = ""
    pass_through: bool = False
    required: bool = False
    # Also set as the default dimension of a customer the connector creates (Business Central's
    # customer default dimensions); only for a dimension filled from the document.
    customer_default: bool = False


@dataclass(frozen=True)
class NumberingRule:
    entity: str
    prefix: str
    start: int
    end: int
    width: int = 0


@dataclass(frozen=True)
class FieldOwner:
    entity: str
    field: str
    owner: str


@dataclass(frozen=True)
class RuleSet:
    defaults: Defaults = field(default_factory=Defaults)
    maps: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    routing: tuple[RoutingRule, ...] = ()
    dimensions: tuple[DimensionSetting, ...] = ()
    numbering: tuple[NumberingRule, ...] = ()
    ownership: tuple[FieldOwner, ...] = ()

    def to_content(self) -> dict[str, Any]:
        """The JSON document, in a canonical order so equal rule sets serialise identically."""
        return {
            "defaults": {
                "receivable_account": self.defaults.receivable_account,
                "revenue_account": self.defaults.revenue_account,
                "tax_account": self.defaults.tax_account,
                "tax_code_source": self.defaults.tax_code_source,
                **{
                    name: getattr(self.defaults, name)
                    for name in COST_DEFAULTS
                    if getattr(self.defaults, name)
                },
            },
            "maps": {
                kind: {source: dict(sorted(row.items())) for source, row in sorted(rows.items())}
                for kind, rows in sorted(self.maps.items())
                if rows
            },
            "routing": [
                {"id": rule.id, "conditions": dict(sorted(rule.conditions.items())),
                 "account": rule.account, "priority": rule.priority, "note": rule.note}
                for rule in sorted(self.routing, key=lambda rule: rule.id)
            ],
            "dimensions": [
                {"dimension": d.dimension, "source": d.source,
                 "values": dict(sorted(d.values.items())), "default": d.default,
                 "pass_through": d.pass_through, "required": d.required,
                 # Written only when set: rule sets without it read and serialise as before.
                 **({"customer_default": True} if d.customer_default else {})}
                for d in sorted(self.dimensions, key=lambda d: d.dimension)
            ],
            "numbering": [
                {"entity": n.entity, "prefix": n.prefix, "start": n.start, "end": n.end,
                 "width": n.width}
                for n in sorted(self.numbering, key=lambda n: n.entity)
            ],
            "ownership": [
                {"entity": o.entity, "field": o.field, "owner": o.owner}
                for o in sorted(self.ownership, key=lambda o: (o.entity, o.field))
            ],
        }  # fmt: skip


EMPTY_CONTENT: dict[str, Any] = RuleSet().to_content()


class RuleSetFormatError(ValueError):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


# --- parsing ------------------------------------------------------------------------------------


class _Reader:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.errors.append(f"{path}: expected an object")
        return {}

    def items(self, value: Any, path: str) -> list[Any]:
        if isinstance(value, list):
            return value
        self.errors.append(f"{path}: expected a list")
        return []

    def text(self, value: Any, path: str, *, allow_empty: bool = True) -> str:
        if value is None:
            value = ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.errors.append(f"{path}: expected text")
            return ""
        text = str(value).strip()
        if not text and not allow_empty:
            self.errors.append(f"{path}: required")
        return text

    def integer(self, value: Any, path: str, default: int | None = None) -> int:
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.errors.append(f"{path}: expected a whole number")
            return default or 0
        return value

    def flag(self, value: Any, path: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.errors.append(f"{path}: expected true or false")
            return False
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str:
        text = self.text(value, path, allow_empty=False)
        if text and text not in choices:
            self.errors.append(f"{path}: {text!r} is not one of {', '.join(choices)}")
        return text

    def unknown_keys(self, obj: dict[str, Any], path: str, known: set[str]) -> None:
        for key in sorted(set(obj) - known):
            self.errors.append(f"{path}.{key}: unknown field")


def parse_ruleset(content: Any) -> RuleSet:
    """A rule-set document → `RuleSet`, or `RuleSetFormatError` with every problem's path."""
    r = _Reader()
    root = r.obj(content, "rule set")
    r.unknown_keys(root, "rule set", set(EMPTY_CONTENT))
    ruleset = RuleSet(
        defaults=_defaults(r, root.get("defaults", {})),
        maps=_maps(r, root.get("maps", {})),
        routing=_routing(r, root.get("routing", [])),
        dimensions=_dimensions(r, root.get("dimensions", [])),
        numbering=_numbering(r, root.get("numbering", [])),
        ownership=_ownership(r, root.get("ownership", [])),
    )
    if r.errors:
        raise RuleSetFormatError(r.errors)
    return ruleset


def _defaults(r: _Reader, value: Any) -> Defaults:
    obj = r.obj(value, "defaults")
    r.unknown_keys(obj, "defaults", {*EMPTY_CONTENT["defaults"], *COST_DEFAULTS})
    source = obj.get("tax_code_source") or "RATE"
    return Defaults(
        receivable_account=r.text(obj.get("receivable_account"), "defaults.receivable_account"),
        revenue_account=r.text(obj.get("revenue_account"), "defaults.revenue_account"),
        tax_account=r.text(obj.get("tax_account"), "defaults.tax_account"),
        tax_code_source=r.choice(source, "defaults.tax_code_source", TAX_CODE_SOURCES),
        **{name: r.text(obj.get(name), f"defaults.{name}") for name in COST_DEFAULTS},
    )


def _maps(r: _Reader, value: Any) -> dict[str, dict[str, dict[str, str]]]:
    maps: dict[str, dict[str, dict[str, str]]] = {}
    for kind, rows in r.obj(value, "maps").items():
        path = f"maps.{kind}"
        if kind not in MAP_KINDS:
            r.errors.append(f"{path}: unknown map; known maps: {', '.join(MAP_KINDS)}")
            continue
        parsed: dict[str, dict[str, str]] = {}
        seen: dict[str, str] = {}
        for source, targets in r.obj(rows, path).items():
            row_path = f"{path}.{source}"
            key = norm(source)
            if not key:
                r.errors.append(f"{row_path}: the source value is empty")
                continue
            if key in seen:
                r.errors.append(f"{row_path}: same source value as {seen[key]!r}")
                continue
            seen[key] = source
            parsed[source.strip()] = _targets(r, targets, row_path, MAP_KINDS[kind])
        maps[kind] = parsed
    return maps


def _targets(r: _Reader, value: Any, path: str, kind: MapKind) -> dict[str, str]:
    errors_before = len(r.errors)
    obj = r.obj(value, path)
    r.unknown_keys(obj, path, set(kind.targets))
    targets = {
        name: r.text(obj.get(name), f"{path}.{name}") for name in kind.targets if name in obj
    }
    targets = {name: code for name, code in targets.items() if code}
    if not targets and len(r.errors) == errors_before:
        r.errors.append(f"{path}: maps to nothing; give at least one of {', '.join(kind.targets)}")
    return targets


def _routing(r: _Reader, value: Any) -> tuple[RoutingRule, ...]:
    rules = []
    ids: set[int] = set()
    for index, item in enumerate(r.items(value, "routing")):
        path = f"routing[{index}]"
        obj = r.obj(item, path)
        r.unknown_keys(obj, path, {"id", "conditions", "account", "priority", "note"})
        rule_id = r.integer(obj.get("id"), f"{path}.id")
        if rule_id in ids:
            r.errors.append(f"{path}.id: rule {rule_id} appears twice")
        ids.add(rule_id)
        conditions = {}
        for attribute, wanted in r.obj(obj.get("conditions", {}), f"{path}.conditions").items():
            condition_path = f"{path}.conditions.{attribute}"
            if attribute not in ROUTING_ATTRIBUTES:
                r.errors.append(f"{condition_path}: not one of {', '.join(ROUTING_ATTRIBUTES)}")
                continue
            text = r.text(wanted, condition_path, allow_empty=False)
            if attribute == "document_kind" and text and text not in DOCUMENT_KINDS:
                r.errors.append(f"{condition_path}: not one of {', '.join(DOCUMENT_KINDS)}")
            if attribute == "line_kind" and text and text not in LINE_KINDS:
                r.errors.append(f"{condition_path}: not one of {', '.join(LINE_KINDS)}")
            conditions[attribute] = text
        rules.append(
            RoutingRule(
                id=rule_id,
                conditions=conditions,
                account=r.text(obj.get("account"), f"{path}.account", allow_empty=False),
                priority=r.integer(obj.get("priority"), f"{path}.priority", default=0),
                note=r.text(obj.get("note"), f"{path}.note"),
            )
        )
    return tuple(rules)


def _dimensions(r: _Reader, value: Any) -> tuple[DimensionSetting, ...]:
    settings = []
    seen: set[str] = set()
    for index, item in enumerate(r.items(value, "dimensions")):
        path = f"dimensions[{index}]"
        obj = r.obj(item, path)
        r.unknown_keys(obj, path, set(EMPTY_CONTENT_DIMENSION))
        dimension = r.text(obj.get("dimension"), f"{path}.dimension", allow_empty=False)
        if dimension in seen:
            r.errors.append(f"{path}.dimension: {dimension} is set twice")
        seen.add(dimension)
        values = {
            str(source).strip(): r.text(code, f"{path}.values.{source}", allow_empty=False)
            for source, code in r.obj(obj.get("values", {}), f"{path}.values").items()
        }
        source = r.choice(obj.get("source"), f"{path}.source", DIMENSION_SOURCES)
        customer_default = r.flag(obj.get("customer_default"), f"{path}.customer_default")
        if customer_default and source in LINE_DIMENSION_SOURCES:
            r.errors.append(
                f"{path}.customer_default: a customer's default dimension must come from the "
                f"document (office, job …), not from each line's {source.replace('_', ' ')}"
            )
        settings.append(
            DimensionSetting(
                dimension=dimension,
                source=source,
                values=values,
                default=r.text(obj.get("default"), f"{path}.default"),
                pass_through=r.flag(obj.get("pass_through"), f"{path}.pass_through"),
                required=r.flag(obj.get("required"), f"{path}.required"),
                customer_default=customer_default,
            )
        )
    return tuple(settings)


EMPTY_CONTENT_DIMENSION = ("dimension", "source", "values", "default", "pass_through", "required",
                           "customer_default")  # fmt: skip


def _numbering(r: _Reader, value: Any) -> tuple[NumberingRule, ...]:
    rules = []
    entities: set[str] = set()
    for index, item in enumerate(r.items(value, "numbering")):
        path = f"numbering[{index}]"
        obj = r.obj(item, path)
        r.unknown_keys(obj, path, {"entity", "prefix", "start", "end", "width"})
        rule = NumberingRule(
            entity=r.choice(obj.get("entity"), f"{path}.entity", NUMBERING_ENTITIES),
            prefix=r.text(obj.get("prefix"), f"{path}.prefix"),
            start=r.integer(obj.get("start"), f"{path}.start"),
            end=r.integer(obj.get("end"), f"{path}.end"),
            width=r.integer(obj.get("width"), f"{path}.width", default=0),
        )
        if rule.entity in entities:
            r.errors.append(f"{path}.entity: {rule.entity} is numbered twice")
        entities.add(rule.entity)
        if rule.start < 0 or rule.end < rule.start:
            r.errors.append(f"{path}: the range {rule.start}–{rule.end} is empty or negative")
        rules.append(rule)
    return tuple(rules)


def _ownership(r: _Reader, value: Any) -> tuple[FieldOwner, ...]:
    owners = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(r.items(value, "ownership")):
        path = f"ownership[{index}]"
        obj = r.obj(item, path)
        r.unknown_keys(obj, path, {"entity", "field", "owner"})
        owner = FieldOwner(
            entity=r.choice(obj.get("entity"), f"{path}.entity", OWNED_ENTITIES),
            field=r.text(obj.get("field"), f"{path}.field", allow_empty=False),
            owner=r.choice(obj.get("owner"), f"{path}.owner", OWNERS),
        )
        if (owner.entity, owner.field) in seen:
            r.errors.append(f"{path}: {owner.entity}.{owner.field} has two owners")
        seen.add((owner.entity, owner.field))
        owners.append(owner)
    return tuple(owners)
