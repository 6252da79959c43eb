"""`manage.py payments sync [--connection SLUG]`: read payments applied in the ERP now, update
each posted invoice's payment status and tell ServiceTrade what changed (syncengine/payments.py).
Without --connection, every connection; beat does the same hourly."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from syncengine.erps.base import ConnectorError
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import Connection
from syncengine.payments import PaymentsResult, payments_sync


class Command(BaseCommand):
    help = "Bring payments applied in the ERP back to the invoices in ServiceTrade."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sync = actions.add_parser("sync", help="Read new payments now and tell ServiceTrade.")
        sync.add_argument("--connection", metavar="SLUG")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["connection"]
        connections = (
            [connection_from_option(slug)] if slug else list(Connection.objects.order_by("pk"))
        )
        failed = 0
        for connection in connections:
            try:
                result = payments_sync(connection=connection, now=timezone.now())
            except (ConnectorError, LookupError) as error:
                self.stderr.write(f"{connection.slug}: payments not read: {error}")
                failed += 1
                continue
            self.stdout.write(f"{connection.slug}: {_summary(result)}")
        if failed:
            raise CommandError(f"{failed} connection(s) could not be read; see above.")


def _summary(result: PaymentsResult) -> str:
    text = (
        f"{result.read} payment(s) read, {result.changed} new or changed, "
        f"{result.invoices_changed} invoice(s) changed status or amount, "
        f"{result.told} told to ServiceTrade"
    )
    if result.unmatched:
        text += f", {result.unmatched} on invoices Crosswalk did not post"
    if result.tell_failures:
        text += f", {result.tell_failures} not told (tried again next run)"
    return text + "."
