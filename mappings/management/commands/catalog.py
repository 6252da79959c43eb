"""`manage.py catalog`: refresh a connection's ERP catalog, or import one list from CSV.

    python manage.py catalog refresh [--connection SLUG]
    python manage.py catalog import --kind ACCOUNT accounts.csv [--connection SLUG] [--reason TEXT]

Both print what changed and the issues the rules in force now have against the catalog. Errors
go to stderr and the exit status is 1; a refused import stores nothing. See docs/catalogs.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from mappings.catalog import (
    CatalogImportError,
    RefreshResult,
    catalog_import_csv,
    catalog_kind_clean,
    catalog_refresh,
)
from mappings.ruleset import CatalogKind
from syncengine.erps.base import ConnectorError
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import Connection

MAX_ERRORS_SHOWN = 50
_CONNECTION_HELP = "Connection slug; may be left out when there is exactly one connection."


class Command(BaseCommand):
    help = "Refresh a connection's ERP catalog, or import one of its lists from a CSV file."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        refresh = actions.add_parser("refresh", help="Read every list from the connection's ERP.")
        refresh.add_argument("--connection", metavar="SLUG", help=_CONNECTION_HELP)
        imports = actions.add_parser(
            "import", help="Replace one list with a CSV file (for an ERP that cannot be reached)."
        )
        imports.add_argument(
            "--kind", required=True, help=f"The list in the file: {', '.join(CatalogKind.ALL)}."
        )
        imports.add_argument("file", metavar="FILE", type=Path, help="CSV file, UTF-8.")
        imports.add_argument("--connection", metavar="SLUG", help=_CONNECTION_HELP)
        imports.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connection_from_option(options["connection"])
        if options["action"] == "refresh":
            self._refresh(connection)
        else:
            self._import(connection, options["kind"], options["file"], options["reason"])

    def _refresh(self, connection: Connection) -> None:
        try:
            result = catalog_refresh(connection=connection, actor="catalog refresh",
                                     now=timezone.now())  # fmt: skip
        except (ConnectorError, LookupError) as error:
            raise CommandError(
                f"Could not read the catalog of {connection.slug}: {error}"
            ) from None
        self._report(f"Catalog of {connection.slug} refreshed", result)

    def _import(self, connection: Connection, kind: str, path: Path, reason: str) -> None:
        try:
            kind = catalog_kind_clean(kind)
            text = path.read_text(encoding="utf-8-sig")
        except CatalogImportError as error:
            raise CommandError(str(error)) from None
        except UnicodeDecodeError:
            raise CommandError(f"{path}: not UTF-8 text; save the file as CSV UTF-8.") from None
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}") from None
        try:
            result = catalog_import_csv(
                connection=connection, kind=kind, text=text, actor="catalog import",
                now=timezone.now(), reason=reason.strip() or f"Imported from {path.name}",
            )  # fmt: skip
        except CatalogImportError as error:
            for message in error.errors[:MAX_ERRORS_SHOWN]:
                self.stderr.write(f"{path}: {message}")
            if len(error.errors) > MAX_ERRORS_SHOWN:
                self.stderr.write(f"{path}: …and {len(error.errors) - MAX_ERRORS_SHOWN} more.")
            raise CommandError(
                f"Nothing imported: {len(error.errors)} problem(s) in {path}."
            ) from None
        self._report(f"{kind} list of {connection.slug} imported from {path.name}", result)

    def _report(self, what: str, result: RefreshResult) -> None:
        self.stdout.write(
            f"{what}: {result.returned} value(s) listed, {result.added} added, "
            f"{result.changed} changed, {result.missing} now missing, "
            f"{len(result.issues)} rule issue(s)."
        )
        for issue in result.issues:
            self.stdout.write(f"  {issue.severity} {issue.subject}: {issue.message}")
