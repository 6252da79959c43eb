"""Two-way master data from the command line.

- `receive --connection SLUG --side SOURCE|ERP --entity CUSTOMER FILE`: changes from a JSON file,
  a list of {"source_ref", "values", "changed_at", "erp_ref"?}; with `--servicetrade`, the file
  is a ServiceTrade API answer (`{"data": {"companies"|"locations"|"contacts": [...]}}`).
- `read-erp [--connection SLUG]`: take the customers the ERP changed since the last read.
- `send [--connection SLUG]`: tell each side what it has not been told, with a progress bar.
- `show --connection SLUG`: records waiting to be told, and the latest lost changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from masterdata.models import Entity, MasterChange, MasterRecord, Side
from masterdata.services import (
    master_from_erp,
    master_from_servicetrade,
    master_outbox_send,
    master_records_receive,
)
from syncengine.erps.base import ConnectorError
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import Connection

LIST_KEYS: dict[str, str] = {
    Entity.CUSTOMER: "companies",
    Entity.LOCATION: "locations",
    Entity.CONTACT: "contacts",
}


class Command(BaseCommand):
    help = "Two-way master data (customers, locations, contacts): receive, send, show."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        receive = actions.add_parser("receive", help="Take changes from a JSON file.")
        receive.add_argument("--connection", metavar="SLUG", required=True)
        receive.add_argument("--side", choices=Side.values, required=True)
        receive.add_argument("--entity", choices=Entity.values, required=True)
        receive.add_argument("--servicetrade", action="store_true",
                             help="the file is a ServiceTrade API answer")  # fmt: skip
        receive.add_argument("file", type=Path)
        read = actions.add_parser("read-erp", help="Take the ERP's changed customers now.")
        read.add_argument("--connection", metavar="SLUG")
        send = actions.add_parser("send", help="Tell each side what it has not been told.")
        send.add_argument("--connection", metavar="SLUG")
        show = actions.add_parser("show", help="What waits to be told; the latest lost changes.")
        show.add_argument("--connection", metavar="SLUG", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action'].replace('-', '_')}")(options)

    def _receive(self, options: dict[str, Any]) -> None:
        connection = connection_from_option(options["connection"])
        try:
            document = json.loads(Path(options["file"]).read_bytes())
        except (OSError, ValueError) as error:
            raise CommandError(f"{options['file']}: not readable as JSON ({error}).") from None
        now, actor = timezone.now(), "manage.py masterdata"
        if options["servicetrade"]:
            data = document.get("data") if isinstance(document, dict) else None
            records = data.get(LIST_KEYS[options["entity"]]) if isinstance(data, dict) else None
            if not isinstance(records, list):
                raise CommandError(
                    f'Expected {{"data": {{"{LIST_KEYS[options["entity"]]}": [...]}}}}.'
                )
            taken, errors = master_from_servicetrade(connection=connection,
                                                     entity=options["entity"], records=records,
                                                     actor=actor, now=now)  # fmt: skip
        else:
            if not isinstance(document, list):
                raise CommandError("Expected a JSON list of changes.")
            taken, errors = master_records_receive(
                connection=connection, side=options["side"], entity=options["entity"],
                items=document, actor=actor, now=now,
            )  # fmt: skip
        for problem in errors:
            self.stderr.write(problem)
        self.stdout.write(f"{taken} change(s) taken, {len(errors)} refused.")
        if errors and not taken:
            raise CommandError("Nothing was taken; see above.")

    def _read_erp(self, options: dict[str, Any]) -> None:
        for connection in self._connections(options):
            try:
                result = master_from_erp(connection=connection, now=timezone.now())
            except ConnectorError as error:
                raise CommandError(f"{connection.slug}: not read: {error.message}") from None
            if not result.supported:
                self.stdout.write(f"{connection.slug}: its ERP connector reads no master data.")
                continue
            self.stdout.write(
                f"{connection.slug}: {result.read} customer(s) read, "
                f"{result.applied} field(s) applied, {result.lost} lost."
            )

    def _connections(self, options: dict[str, Any]) -> list[Connection]:
        slug = options["connection"]
        return [connection_from_option(slug)] if slug else list(Connection.objects.order_by("pk"))

    def _send(self, options: dict[str, Any]) -> None:
        failed = 0
        for connection in self._connections(options):
            waiting = MasterRecord.objects.filter(connection=connection).exclude(outbox={}).count()
            with tqdm(total=waiting, desc=f"Telling ({connection.slug})", unit="record",
                      disable=waiting < 20) as bar:  # fmt: skip
                sent = master_outbox_send(
                    connection=connection, now=timezone.now(),
                    progress=lambda done, total: bar.update(done - bar.n),
                )  # fmt: skip
            for error in sent.errors:
                self.stderr.write(error)
            self.stdout.write(f"{connection.slug}: {sent.told} told, {sent.failed} failed.")
            failed += sent.failed
        if failed:
            raise CommandError(f"{failed} could not be told; they stay queued and are retried.")

    def _show(self, options: dict[str, Any]) -> None:
        connection = connection_from_option(options["connection"])
        waiting = MasterRecord.objects.filter(connection=connection).exclude(outbox={})
        self.stdout.write(f"Waiting to be told: {waiting.count()}")
        for record in waiting.order_by("pk")[:50]:
            error = f"  (last error: {record.send_error})" if record.send_error else ""
            self.stdout.write(f"  {record}: {json.dumps(record.outbox, sort_keys=True)}{error}")
        lost = MasterChange.objects.filter(
            record__connection=connection, outcome=MasterChange.Outcome.LOST
        ).select_related("record")
        self.stdout.write("Latest lost changes:")
        for change in lost.order_by("-id")[:20]:
            self.stdout.write(
                f"  {change.record} {change.field}: {change.side} {change.value!r} at "
                f"{change.changed_at:%Y-%m-%d %H:%M:%S} lost to {change.standing_side} "
                f"{change.standing_value!r}"
                + (f" at {change.standing_at:%Y-%m-%d %H:%M:%S}" if change.standing_at else "")
                + f": {change.reason}"
            )
