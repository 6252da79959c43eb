"""python manage.py preview_posting --connection SLUG --document FILE [--kind KIND] — print the
exact requests the connection's connector would send for each document in FILE, sending nothing.

FILE is any file `manage.py ingest` takes: ServiceTrade invoices (credits too), timecards, job
item costs, or a PartsLedger procurement file (`"format": "crosswalk-procurement/1"`: purchase
orders, receipts, purchase invoices, inventory adjustments, vendors). Its kind is told by its
shape unless `--kind` says it. Each document is coded as the engine would code it (the rules in
force on its date, the connection's stored catalog, its posting policies) and shown as the
requests its ERP would receive; nothing is stored and the ERP is not called
(syncengine/preview.py).

A document the connection keeps without posting (e.g. a purchase order for the sandbox ledger,
a timecard not approved) prints why. A document the rules or the connector would refuse prints
every problem to stderr, and the exit status is then 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from syncengine.erps import wire
from syncengine.erps.base import ConnectorError
from syncengine.management.commands._connections import connection_from_option
from syncengine.preview import KINDS, DocumentPreview, Unreadable, posting_preview


class Command(BaseCommand):
    help = "Print the requests each document of a file would be posted with, sending nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", help="Connection slug (default: the only one).")
        parser.add_argument(
            "--document", type=Path, required=True,
            help="A file as `ingest` takes it: invoices, timecards, job item costs or a "
                 "PartsLedger procurement file.",
        )  # fmt: skip
        parser.add_argument(
            "--kind", choices=KINDS, default="",
            help="What the file holds (default: told by its shape, as in docs/source-formats.md).",
        )  # fmt: skip

    def handle(
        self, *args: Any, connection: str | None, document: Path, kind: str, **options: Any
    ) -> None:
        target = connection_from_option(connection)
        if not document.is_file():
            raise CommandError(f"Not a readable file: {document}")
        try:
            previews = posting_preview(connection=target, body=document.read_bytes(), kind=kind)
        except Unreadable as unreadable:
            raise CommandError(f"{document}: " + "; ".join(unreadable.errors)) from None
        except (ConnectorError, LookupError) as error:
            raise CommandError(f"{target.name}: {error}") from None
        for preview in previews:
            self._print(preview)
        blocked = sum(1 for preview in previews if preview.problems)
        if blocked:
            raise CommandError(f"{blocked} of {len(previews)} document(s) cannot be posted as "
                               "they stand; see the problems above.")  # fmt: skip

    def _print(self, preview: DocumentPreview) -> None:
        if preview.problems:
            self.stderr.write(f"{preview.title} is blocked:")
            for problem in preview.problems:
                self.stderr.write(f"  - {problem}")
            return
        if preview.not_posted:
            self.stdout.write(f"{preview.title}: {preview.not_posted}")
            return
        self.stdout.write(f"{preview.title}{preview.summary}:")
        self.stdout.write(wire.dumps(preview.requests, indent=2))
        for note in preview.notes:
            self.stdout.write(f"Note: {note}")
