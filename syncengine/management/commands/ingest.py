"""python manage.py ingest FILE... — accept ServiceTrade invoices, timecards or job item costs,
or PartsLedger / PartsManager procurement, from files (shapes in docs/source-formats.md).

Each file is kept as received; every invoice in it is accepted or rejected on its own. Rejections
name the file, the invoice and the field; the exit status is 1 when anything was rejected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from syncengine import services
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import SourceReceipt

INGESTERS = {
    "invoices": services.invoices_ingest,
    "timecards": services.timecards_ingest,
    "job-costs": services.job_costs_ingest,
    "procurement": services.procurement_ingest,
}
NOUNS = {"invoices": "invoice", "timecards": "timecard", "job-costs": "job item cost",
         "procurement": "procurement record"}  # fmt: skip


class Command(BaseCommand):
    help = 'Ingest ServiceTrade invoice JSON files ({"data": {...}} or a list page).'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--connection", help="Connection slug (default: the only one).")
        parser.add_argument(
            "--kind", choices=sorted(INGESTERS), default="invoices",
            help="What the files hold (default: invoices).",
        )  # fmt: skip

    def handle(
        self, *args: Any, files: list[Path], connection: str | None, kind: str, **options: Any
    ) -> None:
        target = connection_from_option(connection)
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise CommandError(f"Not a readable file: {', '.join(missing)}")
        accepted = unchanged = rejected = 0
        for path in tqdm(files, desc="Ingesting", unit="file", disable=len(files) < 2):
            ingest = INGESTERS[kind]
            result = ingest(
                connection=target,
                body=path.read_bytes(),
                channel=SourceReceipt.Channel.FILE,
                origin=str(path),
                now=timezone.now(),
            )
            accepted += len(result.accepted)
            unchanged += result.unchanged
            rejected += len(result.errors)
            for error in result.errors:
                self.stderr.write(f"{path}: {error}")
        self.stdout.write(
            f"{accepted} {NOUNS[kind]}(s) accepted, {unchanged} already up to date, "
            f"{rejected} problem(s) found."
        )
        if rejected:
            raise SystemExit(1)
