"""Rule sets in and out of files: the whole rule set as JSON, one map or the routing rules as CSV.

Pure: text in, rule-set content out (and back), no database. `manage.py rules` reads and writes
the files and puts what comes in into the draft through `services.draft_replace`.

Exports are canonical (`RuleSet.to_content()` order, UTF-8, ``\\n`` line endings), so export →
import → export gives the same bytes. Imports check the whole file and raise `TransferError`
listing every problem where a person would look for it: ``row 7, column revenue_account: …``
(the header is row 1) for CSV, ``line 3, column 9: …`` or a path like
``rules.maps.SERVICE_LINE.HVAC.revenue_account: …`` for JSON. The layouts are documented in
docs/rules-format.md.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from mappings.ruleset import (
    MAP_KINDS,
    ROUTING_ATTRIBUTES,
    MapKind,
    RuleSetFormatError,
    norm,
    parse_ruleset,
)

FORMAT = "crosswalk-rules"
FORMAT_VERSION = 1
ENVELOPE_FIELDS = ("format", "format_version", "connection", "version", "effective_from", "rules")
SOURCE_COLUMN = "source_value"
ROUTING_COLUMNS = ("id", "priority", "account", "note", *ROUTING_ATTRIBUTES)


class TransferError(ValueError):
    """A file that cannot be imported; `errors` names every problem, each on its own."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class RuleSetDocument:
    """A whole-rule-set JSON file: the canonical content and where it was exported from."""

    content: dict[str, Any]
    connection: str | None = None
    version: int | None = None
    effective_from: date | None = None


# --- JSON ---------------------------------------------------------------------------------------


def ruleset_to_json(
    *,
    content: dict[str, Any],
    connection: str,
    version: int | None,
    effective_from: date | None,
) -> str:
    """The whole rule set as a JSON document (with a trailing newline), in canonical order."""
    return (
        json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "connection": connection,
                "version": version,
                "effective_from": effective_from.isoformat() if effective_from else None,
                "rules": _canonical(content),
            },
            indent=2,
            sort_keys=False,
            ensure_ascii=False,
        )
        + "\n"
    )


def ruleset_from_json(*, text: str | bytes) -> RuleSetDocument:
    """Read a file written by `ruleset_to_json` (or edited by hand). Raises TransferError."""
    try:
        data = json.loads(_decode(text), object_pairs_hook=_Object.from_pairs)
    except json.JSONDecodeError as error:
        raise TransferError([f"line {error.lineno}, column {error.colno}: {error.msg}"]) from None
    if not isinstance(data, dict):
        raise TransferError([f"the file must hold one JSON object, not {_json_kind(data)}"])
    marker = data.get("format")
    if marker != FORMAT:
        found = "missing" if "format" not in data else f"got {json.dumps(marker)[:60]}"
        raise TransferError(
            [f'format: expected "{FORMAT}" ({found}); this is not a Crosswalk rules export']
        )
    errors: list[str] = []
    errors.extend(_duplicate_keys(data, ""))
    format_version = data.get("format_version")
    if "format_version" not in data:
        errors.append(f"format_version: missing; expected {FORMAT_VERSION}")
    elif format_version != FORMAT_VERSION or isinstance(format_version, bool):
        newer = isinstance(format_version, int) and format_version > FORMAT_VERSION
        errors.append(
            f"format_version: {json.dumps(format_version)} is "
            + ("newer than this Crosswalk reads" if newer else "not a known version")
            + f"; expected {FORMAT_VERSION}"
        )
    errors.extend(f"{key}: unknown field" for key in data if key not in ENVELOPE_FIELDS)
    connection = data.get("connection")
    if connection is not None and not isinstance(connection, str):
        errors.append("connection: expected text (the slug the rules came from) or null")
        connection = None
    version = data.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        errors.append("version: expected a version number (1, 2, …) or null")
        version = None
    effective_from = _iso_date(data.get("effective_from"), errors)
    if "rules" not in data:
        errors.append("rules: missing; it holds the rule set itself")
    content: dict[str, Any] = {}
    try:
        content = parse_ruleset(data.get("rules", {})).to_content()
    except RuleSetFormatError as error:
        errors.extend(_rules_path(message) for message in error.errors)
    errors.extend(f"{path}: contains a NUL character" for path in _nul_paths(content, "rules"))
    if errors:
        raise TransferError(errors)
    return RuleSetDocument(
        content=content, connection=connection, version=version, effective_from=effective_from
    )


class _Object(dict[str, Any]):
    """A JSON object that remembers keys it was given twice (json.loads keeps only the last)."""

    duplicates: list[str]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _Object:
        obj = cls()
        obj.duplicates = []
        for key, value in pairs:
            if key in obj and key not in obj.duplicates:
                obj.duplicates.append(key)
            obj[key] = value
        return obj


def _duplicate_keys(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, _Object):
        for key in value.duplicates:
            where = f"{path}.{key}" if path else key
            yield f"{where}: given twice; JSON keeps only the last, so remove one of them"
        for key, item in value.items():
            yield from _duplicate_keys(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _duplicate_keys(item, f"{path}[{index}]")


def _nul_paths(value: Any, path: str) -> Iterator[str]:
    """Where a NUL character sits: PostgreSQL cannot store one in a JSON document."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_paths(key, path)  # a key: name the object holding it
            yield from _nul_paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, f"{path}[{index}]")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "a single value"


def _iso_date(value: Any, errors: list[str]) -> date | None:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    errors.append(f"effective_from: expected a date like 2025-01-01 or null, got {value!r}")
    return None


def _rules_path(message: str) -> str:
    """A `parse_ruleset` error as a path in the file: everything sits under "rules"."""
    if message.startswith("rule set:"):
        return "rules" + message.removeprefix("rule set")
    if message.startswith("rule set."):
        return "rules." + message.removeprefix("rule set.")
    return f"rules.{message}"


def _canonical(content: dict[str, Any]) -> dict[str, Any]:
    # Stored content may come back from the database with its keys reordered (PostgreSQL jsonb).
    try:
        return parse_ruleset(content).to_content()
    except RuleSetFormatError as error:
        raise TransferError(error.errors) from None


# --- CSV: one map -------------------------------------------------------------------------------


def map_to_csv(*, kind: str, rows: dict[str, dict[str, str]]) -> str:
    """One map as CSV: `source_value` then the map's target fields; rows sorted by source value."""
    targets = list(_map_kind(kind).targets)
    lines = [_csv_line([SOURCE_COLUMN, *targets])]
    for source, row in sorted(rows.items()):
        lines.append(_csv_line([source, *(row.get(name, "") for name in targets)]))
    return "".join(lines)


def map_from_csv(*, kind: str, text: str | bytes) -> dict[str, dict[str, str]]:
    """A map's rows from CSV, as `{source value: {target field: code}}`. Raises TransferError.

    Target columns may be left out (they are then empty for every row); `source_value` may not.
    """
    map_kind = _map_kind(kind)
    targets = tuple(map_kind.targets)
    table = _Table.read(
        _decode(text),
        known=(SOURCE_COLUMN, *targets),
        required=(SOURCE_COLUMN,),
        what=f"the {kind} map",
    )
    errors = table.errors
    present_targets = [name for name in targets if name in table.columns]
    if table.columns and not present_targets:
        errors.append(
            f"row {table.header_row}: no target column; give at least one of {', '.join(targets)}"
        )
    rows: dict[str, dict[str, str]] = {}
    row_of: dict[str, int] = {}
    first_of: dict[str, tuple[str, int]] = {}
    for number, cells in table.rows():
        if SOURCE_COLUMN not in table.columns:
            break
        source = cells.get(SOURCE_COLUMN, "")
        values = {name: cells[name] for name in present_targets if cells.get(name)}
        if not source:
            errors.append(
                f"row {number}, column {SOURCE_COLUMN}: empty; every row needs the source "
                "value it maps (delete the row if it is not needed)"
            )
            continue
        key = norm(source)
        if key in first_of:
            earlier, earlier_row = first_of[key]
            errors.append(
                f"row {number}, column {SOURCE_COLUMN}: {source!r} is the same value as "
                f"{earlier!r} on row {earlier_row} (values are compared ignoring case, spacing "
                "and trailing zeros); keep one of the rows"
            )
            continue
        first_of[key] = (source, number)
        if present_targets and not values:
            errors.append(
                f"row {number}, column{'s' if len(present_targets) > 1 else ''} "
                f"{', '.join(present_targets)}: all empty, so {source!r} maps to nothing; fill "
                "in at least one, or delete the row"
            )
            continue
        rows[source] = values
        row_of[source] = number
    try:
        parse_ruleset({"maps": {kind: rows}})
    except RuleSetFormatError as error:
        errors.extend(_map_error_at_row(message, kind, row_of) for message in error.errors)
    if errors:
        raise TransferError(errors)
    return rows


def _map_kind(kind: str) -> MapKind:
    if kind not in MAP_KINDS:
        raise TransferError([f"unknown map {kind!r}; the maps are {', '.join(MAP_KINDS)}"])
    return MAP_KINDS[kind]


def _map_error_at_row(message: str, kind: str, row_of: dict[str, int]) -> str:
    """`maps.KIND.<source>.<field>: …` → `row N, column <field>: …`; sources may hold dots."""
    prefix = f"maps.{kind}."
    if not message.startswith(prefix):
        return message
    rest = message.removeprefix(prefix)
    for source in sorted(row_of, key=len, reverse=True):
        if rest.startswith(source + ":"):
            return f"row {row_of[source]}: {rest.removeprefix(source + ':').strip()}"
        if rest.startswith(source + "."):
            field, _, problem = rest.removeprefix(source + ".").partition(": ")
            return f"row {row_of[source]}, column {field}: {problem}"
    return message


# --- CSV: routing rules -------------------------------------------------------------------------


def routing_to_csv(*, rules: Iterable[dict[str, Any]]) -> str:
    """GL routing rules as CSV, one row per rule by id, one column per routing attribute."""
    lines = [_csv_line(list(ROUTING_COLUMNS))]
    for rule in sorted(rules, key=lambda rule: rule["id"]):
        conditions = rule.get("conditions", {})
        lines.append(
            _csv_line(
                [
                    str(rule["id"]),
                    str(rule.get("priority", 0)),
                    rule.get("account", ""),
                    rule.get("note", ""),
                    *(conditions.get(attribute, "") for attribute in ROUTING_ATTRIBUTES),
                ]
            )
        )
    return "".join(lines)


def routing_from_csv(*, text: str | bytes) -> list[dict[str, Any]]:
    """Routing rules from CSV, as rule-set `routing` items. Raises TransferError.

    `id` and `account` are required columns; `priority` (0 when empty), `note` and the attribute
    columns may be left out. An empty attribute cell means the rule does not test it.
    """
    table = _Table.read(
        _decode(text), known=ROUTING_COLUMNS, required=("id", "account"), what="routing rules"
    )
    errors = table.errors
    attributes = [name for name in ROUTING_ATTRIBUTES if name in table.columns]
    rules: list[dict[str, Any]] = []
    row_numbers: list[int] = []
    first_row_of_id: dict[int, int] = {}
    for number, cells in table.rows():
        if "id" not in table.columns or "account" not in table.columns:
            break
        problems = len(errors)
        rule_id = _whole_number(cells.get("id", ""), number, "id", errors, required=True)
        priority = _whole_number(cells.get("priority", ""), number, "priority", errors)
        account = cells.get("account", "")
        if not account:
            errors.append(
                f"row {number}, column account: empty; every rule needs the account it posts to"
            )
        if rule_id is not None and rule_id in first_row_of_id:
            errors.append(
                f"row {number}, column id: rule {rule_id} is already on row "
                f"{first_row_of_id[rule_id]}; ids must be unique"
            )
        if len(errors) > problems or rule_id is None:
            continue
        first_row_of_id[rule_id] = number
        rules.append(
            {
                "id": rule_id,
                "conditions": {name: cells[name] for name in attributes if cells.get(name)},
                "account": account,
                "priority": priority or 0,
                "note": cells.get("note", ""),
            }
        )
        row_numbers.append(number)
    try:
        parsed = parse_ruleset({"routing": rules}).to_content()["routing"]
    except RuleSetFormatError as error:
        errors.extend(_routing_error_at_row(message, row_numbers) for message in error.errors)
    if errors:
        raise TransferError(errors)
    return list(parsed)


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_ROUTING_PATH = re.compile(r"routing\[(\d+)\](?:\.conditions)?(?:\.(\w+))?: (.*)", re.DOTALL)


def _whole_number(
    text: str, row: int, column: str, errors: list[str], *, required: bool = False
) -> int | None:
    if not text:
        if required:
            errors.append(f"row {row}, column {column}: empty; every rule needs a whole-number id")
        return None
    if not _WHOLE_NUMBER.fullmatch(text):
        errors.append(f"row {row}, column {column}: {text!r} is not a whole number")
        return None
    return int(text)


def _routing_error_at_row(message: str, row_numbers: list[int]) -> str:
    match = _ROUTING_PATH.fullmatch(message)
    if match is None or int(match[1]) >= len(row_numbers):
        return message
    row = row_numbers[int(match[1])]
    return f"row {row}, column {match[2]}: {match[3]}" if match[2] else f"row {row}: {match[3]}"


# --- CSV plumbing -------------------------------------------------------------------------------


def _csv_line(cells: list[str]) -> str:
    # Written by hand rather than with csv.writer: Python 3.11's writer leaves a lone "\r" inside
    # a value unquoted when the line ending is "\n", and such a file does not read back.
    return ",".join(_csv_cell(cell) for cell in cells) + "\n"


def _csv_cell(value: str) -> str:
    if any(char in value for char in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


class _Table:
    """A CSV file's header checked against the known columns, and its rows by column name."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.columns: dict[str, int] = {}  # known column name → position
        self.unnamed: set[int] = set()  # positions with an empty header cell
        self.header_row = 1
        self.width = 0
        self.records: list[tuple[int, list[str]]] = []

    @classmethod
    def read(
        cls, text: str, *, known: tuple[str, ...], required: tuple[str, ...], what: str
    ) -> _Table:
        table = cls()
        table._split(text)
        if not table.records:
            table.errors.append(
                f"row 1: the file is empty; the first row names the columns: {', '.join(known)}"
            )
            return table
        table.header_row, header = table.records.pop(0)
        table.width = len(header)
        row = table.header_row
        for position, cell in enumerate(header):
            name = cell.strip().lower()
            if not name:
                table.unnamed.add(position)
                continue
            if name not in known:
                hint = ""
                if len(header) == 1 and (";" in name or "\t" in name):
                    hint = " (the file seems to separate values with ';' or tabs, not commas)"
                table.errors.append(
                    f"row {row}, column {cell.strip()}: unknown column{hint}; the columns of "
                    f"{what} are {', '.join(known)}"
                )
            elif name in table.columns:
                table.errors.append(f"row {row}, column {name}: appears twice")
            else:
                table.columns[name] = position
        for name in required:
            if name not in table.columns:
                table.errors.append(
                    f"row {row}, column {name}: missing; the header must name the {name} column"
                )
        return table

    def _split(self, text: str) -> None:
        reader = csv.reader(io.StringIO(text, newline=""))
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):
                if any(cell.strip() for cell in cells):
                    self.records.append((number, cells))
        except csv.Error as error:
            self.errors.append(f"row {number + 1}: {error}; nothing after it could be read")

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(row number, {known column: trimmed value}) per data row; blank rows are skipped."""
        for number, cells in self.records:
            # Values under an unknown column are reported once, at the header.
            for position, cell in enumerate(cells):
                if not cell.strip():
                    continue
                if position >= self.width:
                    self.errors.append(
                        f"row {number}, column {position + 1}: a value beyond the last column "
                        "of the header"
                    )
                elif position in self.unnamed:
                    self.errors.append(
                        f"row {number}, column {position + 1}: a value under a column with no "
                        "name in the header"
                    )
            values = {
                name: cells[position].strip() if position < len(cells) else ""
                for name, position in self.columns.items()
            }
            for name, value in values.items():
                if "\x00" in value:
                    # PostgreSQL cannot store it in a JSON document; no real code holds one.
                    self.errors.append(f"row {number}, column {name}: contains a NUL character")
                    values[name] = value.replace("\x00", "")
            yield number, values


def _decode(text: str | bytes) -> str:
    """Text of a file: UTF-8 (a leading byte-order mark, as spreadsheets write, is dropped)."""
    if isinstance(text, bytes):
        data = text
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise TransferError(
                [
                    f"line {line}: byte 0x{data[error.start]:02X} is not UTF-8; save the file as "
                    "UTF-8 (in a spreadsheet: “CSV UTF-8”)"
                ]
            ) from None
    return text.removeprefix("\ufeff")
