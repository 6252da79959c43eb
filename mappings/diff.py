"""What changed between two rule sets (a draft and the version it started from, or any two
versions), as rows finance can read: "maps.SERVICE_LINE.HVAC.revenue_account: 4010 → 4020".

Works on the canonical content (`RuleSet.to_content()`), so key order and spacing never show up
as changes. Map rows compare by normalised source value, routing rules by id, dimensions by
dimension code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mappings.ruleset import norm, parse_ruleset


@dataclass(frozen=True)
class Change:
    path: str
    change: str  # "added", "removed" or "changed"
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change, "before": self.before,
                "after": self.after}  # fmt: skip


def ruleset_diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Changes from `before` to `after` (both rule-set documents), in a stable order."""
    old = parse_ruleset(before).to_content()
    new = parse_ruleset(after).to_content()
    changes: list[Change] = []
    _compare_flat("defaults", old["defaults"], new["defaults"], changes)
    for kind in sorted(set(old["maps"]) | set(new["maps"])):
        _compare_rows(f"maps.{kind}", old["maps"].get(kind, {}), new["maps"].get(kind, {}), changes)
    _compare_keyed("routing", old["routing"], new["routing"], "id", changes)
    _compare_keyed("dimensions", old["dimensions"], new["dimensions"], "dimension", changes)
    _compare_keyed("numbering", old["numbering"], new["numbering"], "entity", changes)
    _compare_keyed("ownership", _owner_keys(old), _owner_keys(new), "key", changes)
    return changes


def _compare_flat(path: str, old: dict[str, Any], new: dict[str, Any], out: list[Change]) -> None:
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            out.append(_change(f"{path}.{name}", old.get(name), new.get(name)))


def _compare_rows(path: str, old: dict[str, Any], new: dict[str, Any], out: list[Change]) -> None:
    old_by_key = {norm(source): (source, row) for source, row in old.items()}
    new_by_key = {norm(source): (source, row) for source, row in new.items()}
    for key in sorted(set(old_by_key) | set(new_by_key)):
        old_source, old_row = old_by_key.get(key, (None, None))
        new_source, new_row = new_by_key.get(key, (None, None))
        label = new_source or old_source
        if old_row is None or new_row is None:
            out.append(_change(f"{path}.{label}", old_row, new_row))
        else:
            _compare_flat(f"{path}.{label}", old_row, new_row, out)


def _compare_keyed(
    path: str, old: list[dict[str, Any]], new: list[dict[str, Any]], key: str, out: list[Change]
) -> None:
    old_by_key = {item[key]: item for item in old}
    new_by_key = {item[key]: item for item in new}
    for name in sorted(set(old_by_key) | set(new_by_key), key=str):
        before, after = old_by_key.get(name), new_by_key.get(name)
        if before != after:
            out.append(_change(f"{path}.{name}", before, after))


def _owner_keys(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**owner, "key": f"{owner['entity']}.{owner['field']}"} for owner in content["ownership"]
    ]


def _change(path: str, before: Any, after: Any) -> Change:
    kind = "added" if before is None else "removed" if after is None else "changed"
    return Change(path=path, change=kind, before=before, after=after)
