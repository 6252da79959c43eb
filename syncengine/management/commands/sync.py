"""python manage.py sync --until-idle — post every due record in the foreground, then exit.

The same work Celery workers do, for a laptop, a cron job or a script that must know it finished.

`sync --send-kept-procurement [--connection SLUG]` sends the PartsLedger purchase orders and
receipts a connection kept unposted while its ERP did not take them, now that it does
(`services.procurement_kept_release`); with `--until-idle` too, they are then posted here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from syncengine import services
from syncengine.erps.base import ConnectorError
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import SyncRecord


class Command(BaseCommand):
    help = "Post due sync records in this process until none is runnable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Exit when nothing is runnable (the only mode; workers run continuously).",
        )
        parser.add_argument(
            "--send-kept-procurement",
            action="store_true",
            help="Send the purchase orders and receipts kept unposted while the connection's "
            "ERP did not take them, now that it does.",
        )
        parser.add_argument(
            "--connection", help="With --send-kept-procurement: connection slug (default: the "
            "only one).",
        )  # fmt: skip

    def handle(
        self,
        *args: Any,
        until_idle: bool,
        send_kept_procurement: bool,
        connection: str | None,
        **options: Any,
    ) -> None:
        if not until_idle and not send_kept_procurement:
            raise CommandError(
                "Pass --until-idle. For continuous posting run Celery workers (see README)."
            )
        if send_kept_procurement:
            self._send_kept_procurement(connection)
        if until_idle:
            self._until_idle()

    def _send_kept_procurement(self, slug: str | None) -> None:
        target = connection_from_option(slug)
        self.stdout.write(f"Sending the purchase orders and receipts {target.name} kept unposted…")
        with tqdm(desc="Sending", unit="record", disable=None) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                released = services.procurement_kept_release(
                    connection=target, actor="manage.py sync --send-kept-procurement",
                    now=timezone.now(), on_progress=progress,
                )  # fmt: skip
            except (ValueError, ConnectorError, LookupError) as error:
                raise CommandError(str(error)) from None
        for why in released.left:
            self.stderr.write(why)
        self.stdout.write(
            f"{released.orders} purchase order(s) and {released.receipts} receipt(s) sent again; "
            f"{len(released.left)} receipt(s) left kept."
        )

    def _until_idle(self) -> None:
        due = SyncRecord.objects.runnable(timezone.now()).count()
        outcomes: Counter[str] = Counter()
        with tqdm(total=due, desc="Posting", unit="record", disable=due < 20) as bar:

            def count(record: SyncRecord) -> None:
                outcomes[record.get_state_display()] += 1
                bar.update(1)

            attempts = services.sync_run_until_idle(now=timezone.now, on_record=count)
        summary = ", ".join(f"{n} {state.lower()}" for state, n in sorted(outcomes.items()))
        self.stdout.write(f"{attempts} attempt(s): {summary or 'nothing was due'}.")
