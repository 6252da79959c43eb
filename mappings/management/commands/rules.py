"""`manage.py rules`: a connection's posting rules in and out of files.

    python manage.py rules export rules.json                        # latest published version
    python manage.py rules export --version 3 rules-v3.json
    python manage.py rules export --draft --map SERVICE_LINE service-lines.csv
    python manage.py rules export --routing - > routing.csv          # '-' is stdout
    python manage.py rules import rules.json --reason "Copied from staging"
    python manage.py rules import --map SERVICE_LINE service-lines.csv

A .json file holds the whole rule set, a .csv file one map (--map KIND) or the routing rules
(--routing). Imports go into the draft, all or nothing and audited; publishing stays a separate,
reviewed step. The formats are described in docs/rules-format.md.
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from mappings import services, transfer
from mappings.models import RuleDraft, RuleVersion
from mappings.ruleset import MAP_KINDS, RuleSetFormatError, parse_ruleset
from mappings.validation import ERROR
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import Connection

ISSUES_SHOWN = 10


class Command(BaseCommand):
    help = "Export or import posting rules: the whole rule set as JSON, one map or routing as CSV."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        export = actions.add_parser(
            "export", help="Write a published version (default: the latest) or the draft."
        )
        _connection_argument(export)
        which = export.add_mutually_exclusive_group()
        which.add_argument(
            "--version", dest="version_number", type=int, metavar="N", help="Export version N."
        )
        which.add_argument("--draft", action="store_true", help="Export the draft.")
        _table_arguments(export)
        export.add_argument(
            "file", metavar="FILE", help="A .json or .csv file to write, or '-' for stdout."
        )

        load = actions.add_parser("import", help="Replace the draft, one map or the routing.")
        _connection_argument(load)
        _table_arguments(load)
        load.add_argument("--reason", default="", help="Why; kept in the audit trail.")
        load.add_argument(
            "--actor", default="", help="Who, for the audit trail (default: the OS user)."
        )
        load.add_argument("file", metavar="FILE", help="A .json or .csv file, or '-' for stdin.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self._export(options)
        else:
            self._import(options)

    # --- export ---------------------------------------------------------------------------------

    def _export(self, options: dict[str, Any]) -> None:
        file, map_kind, routing = options["file"], options["map_kind"], options["routing"]
        kind = _file_kind(file, map_kind, routing)
        connection = connection_from_option(options["connection"])
        content, version, effective_from, described = _rules_to_export(connection, options)
        try:
            if kind == "json":
                text = transfer.ruleset_to_json(
                    content=content,
                    connection=connection.slug,
                    version=version,
                    effective_from=effective_from,
                )
            else:
                canonical = _canonical(content)
                text = (
                    transfer.map_to_csv(kind=map_kind, rows=canonical["maps"].get(map_kind, {}))
                    if map_kind
                    else transfer.routing_to_csv(rules=canonical["routing"])
                )
            data = text.encode("utf-8")
        except transfer.TransferError as error:
            raise CommandError(f"Cannot export {described}: {error}") from None
        except UnicodeEncodeError as error:
            raise CommandError(
                f"Cannot export {described}: it holds invalid text ({error})."
            ) from None
        if file == "-":
            self._write_stdout(text, data)
            return
        _write_atomically(Path(file), data)
        part = (
            f"the {map_kind} map" if map_kind else "the routing rules" if routing else "the rules"
        )
        self.stderr.write(f"Wrote {part} of {described} to {file}.")

    def _write_stdout(self, text: str, data: bytes) -> None:
        # The real stdout gets the exact UTF-8 bytes, whatever the locale or platform line ending.
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is None:
            self.stdout.write(text, ending="")
            return
        self.stdout.flush()
        buffer.write(data)
        buffer.flush()

    # --- import ---------------------------------------------------------------------------------

    def _import(self, options: dict[str, Any]) -> None:
        file, map_kind, routing = options["file"], options["map_kind"], options["routing"]
        _file_kind(file, map_kind, routing)
        connection = connection_from_option(options["connection"])
        data = self._read(file, options)
        name = "stdin" if file == "-" else Path(file).name
        try:
            imported = services.draft_import(
                connection=connection, data=data, source=name, map_kind=map_kind,
                routing=routing, actor=options["actor"].strip() or _os_user(),
                now=timezone.now(), reason=options["reason"],
            )  # fmt: skip
        except transfer.TransferError as error:
            raise CommandError(
                f"Nothing was imported: {file} has {len(error.errors)} problem(s):\n"
                + "\n".join(f"  {message}" for message in error.errors)
            ) from None
        except services.RulesError as error:
            raise CommandError(f"Nothing was imported: {error}") from None
        self.stdout.write(
            f"Imported {imported.summary} from {name} into the draft of {connection.slug}."
        )
        self._report_issues(connection)

    def _read(self, file: str, options: dict[str, Any]) -> bytes:
        if file == "-":
            stream = options.get("stdin") or sys.stdin.buffer
            data = stream.read()
            return data.encode("utf-8") if isinstance(data, str) else data
        try:
            return Path(file).read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}.") from None

    def _report_issues(self, connection: Connection) -> None:
        issues = services.draft_validate(connection=connection, now=timezone.now())
        errors = [issue for issue in issues if issue.severity == ERROR]
        warnings = len(issues) - len(errors)
        if not errors:
            self.stdout.write(f"The draft is ready to publish ({warnings} warning(s)).")
            return
        self.stdout.write(
            f"Publishing the draft would be refused until {len(errors)} error(s) are fixed "
            f"({warnings} warning(s) besides):"
        )
        for issue in errors[:ISSUES_SHOWN]:
            self.stdout.write(f"  {issue.subject}: {issue.message}")
        if len(errors) > ISSUES_SHOWN:
            self.stdout.write(f"  …and {len(errors) - ISSUES_SHOWN} more.")


def _connection_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--connection", metavar="SLUG", help="May be left out when there is exactly one."
    )


def _table_arguments(parser: CommandParser) -> None:
    table = parser.add_mutually_exclusive_group()
    table.add_argument(
        "--map",
        dest="map_kind",
        type=str.upper,
        choices=list(MAP_KINDS),
        metavar="KIND",
        help=f"One map as CSV: {', '.join(MAP_KINDS)}.",
    )
    table.add_argument("--routing", action="store_true", help="The GL routing rules as CSV.")


def _file_kind(file: str, map_kind: str | None, routing: bool) -> str:
    """ "json" or "csv", from the file name (or, for '-', from --map / --routing)."""
    table = bool(map_kind or routing)
    if file == "-":
        return "csv" if table else "json"
    suffix = Path(file).suffix.lower()
    if suffix == ".json":
        if table:
            raise CommandError(
                "A .json file holds the whole rule set; --map and --routing go with a .csv file."
            )
        return "json"
    if suffix == ".csv":
        if not table:
            raise CommandError(
                "A .csv file holds one map or the routing rules: add --map KIND "
                f"({', '.join(MAP_KINDS)}) or --routing."
            )
        return "csv"
    raise CommandError(
        f"{file}: the name must end in .json (the whole rule set) or .csv (one map with "
        "--map KIND, or --routing), or be '-'."
    )


def _rules_to_export(
    connection: Connection, options: dict[str, Any]
) -> tuple[dict[str, Any], int | None, Any, str]:
    """(content, version number, effective from, description) of what to export."""
    slug = connection.slug
    if options["draft"]:
        draft = RuleDraft.objects.filter(connection=connection).first()
        if draft is None:
            raise CommandError(
                f"Connection {slug!r} has no draft: one starts with the first edit or import. "
                "Leave out --draft to export the latest published version."
            )
        return draft.content, None, None, f"the draft of {slug}"
    versions = RuleVersion.objects.filter(connection=connection)
    number = options["version_number"]
    version = (
        versions.filter(number=number).first()
        if number is not None
        else versions.order_by("-number").first()
    )
    if version is None:
        numbers = list(versions.order_by("number").values_list("number", flat=True))
        if not numbers:
            raise CommandError(
                f"Connection {slug!r} has no published version of its rules yet, so there is "
                "nothing to export. Export the draft with --draft, or publish it first."
            )
        raise CommandError(
            f"Connection {slug!r} has no version {number}; its versions are "
            f"{', '.join(map(str, numbers))}."
        )
    return (
        version.content,
        version.number,
        version.effective_from,
        f"version {version.number} of {slug}",
    )


def _canonical(content: Any) -> dict[str, Any]:
    try:
        return parse_ruleset(content).to_content()
    except RuleSetFormatError as error:
        # Stored rules are always saved through parse_ruleset; this only guards against surprises.
        raise CommandError(f"The stored rules are not a valid rule set: {error}") from None


def _os_user() -> str:
    try:
        return f"{getpass.getuser()} (manage.py rules import)"
    except (KeyError, OSError):
        return "manage.py rules import"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside the final path and move into place, so a failed export leaves no half file."""
    folder = path.parent
    if not folder.is_dir():
        raise CommandError(f"Cannot write {path}: the folder {folder} does not exist.")
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with open(descriptor, "wb") as stream:
            stream.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
