"""python manage.py servicetrade {backfill,poll,subscribe,check,write-back,purchase-orders}:
the ServiceTrade API.

- `backfill --since DATE`: every invoice created since DATE, with a progress bar. Interrupted
  (Ctrl-C, a ServiceTrade outage), it keeps its position; run the same command again to continue.
  While one runs, a second backfill of the same connection is refused. `--master-data` then
  reads every company, location and contact updated since DATE into two-way master data
  (resumable the same way; the connection's `master_data` must be on); `--master-data-only`
  reads only those.
- `poll`: one poll now (beat polls on its own every `poll_interval_seconds`).
- `subscribe --base-url URL`: register Crosswalk's webhook in ServiceTrade (a new hook secret).
- `check`: what is wrong with the registered webhook, if anything (exit status 1 if so).
- `write-back`: tell ServiceTrade now how posting ended for invoices not told yet.
- `purchase-orders`: read the ERP's purchase orders changed since the last run and write each
  new line as a job item on the ServiceTrade job the order names (beat does it too when the
  connection's `purchase_order_job_items` is on).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from syncengine.erps.base import ConnectorError
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import SourceCursor
from syncengine.sources.servicetrade_api import purchase_orders, sync
from syncengine.sources.servicetrade_api.client import Page, ServiceTradeError


class Command(BaseCommand):
    help = "Read from and write to ServiceTrade's API for a connection."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        backfill = actions.add_parser("backfill", help="Ingest every invoice created since DATE.")
        backfill.add_argument("--since", required=True, type=date.fromisoformat,
                              help="YYYY-MM-DD (midnight UTC).")  # fmt: skip
        scope = backfill.add_mutually_exclusive_group()
        scope.add_argument("--master-data", action="store_true",
                           help="Then companies, locations and contacts updated since DATE "
                           "into two-way master data.")  # fmt: skip
        scope.add_argument("--master-data-only", action="store_true",
                           help="Only companies, locations and contacts updated since DATE, "
                           "no invoices or clock events.")  # fmt: skip
        subscribe = actions.add_parser("subscribe", help="Register the webhook in ServiceTrade.")
        subscribe.add_argument("--base-url", required=True,
                               help="Where ServiceTrade reaches Crosswalk, e.g. "
                               "https://crosswalk.example.com")  # fmt: skip
        for name in ("poll", "check", "write-back", "purchase-orders"):
            actions.add_parser(name)
        for action in actions.choices.values():
            action.add_argument("--connection", help="Connection slug (default: the only one).")

    def handle(self, *args: Any, action: str, connection: str | None, **options: Any) -> None:
        target = connection_from_option(connection)
        try:
            if action == "backfill":
                self._backfill(target, options["since"], master_data=options["master_data"],
                               only=options["master_data_only"])  # fmt: skip
            elif action == "poll":
                result = sync.servicetrade_poll(connection=target, now=timezone.now())
                self.stdout.write(f"{result.invoices} invoice(s) read, {result.accepted} new or "
                                  f"changed, {len(result.errors)} problem(s)"
                                  + self._master_summary(target, result) + ".")  # fmt: skip
            elif action == "subscribe":
                sub = sync.webhook_subscribe(connection=target, base_url=options["base_url"],
                                             now=timezone.now())  # fmt: skip
                self.stdout.write(f"Webhook {sub.remote_id} registered: {sub.hook_url_prefix}…")
            elif action == "check":
                self._check(target)
            elif action == "purchase-orders":
                self._purchase_orders(target)
            else:
                told = sync.servicetrade_write_back(connection=target, now=timezone.now())
                self.stdout.write(f"{told} outcome(s) told to ServiceTrade.")
        except (ServiceTradeError, ConnectorError) as error:
            raise CommandError(error.message) from None

    def _purchase_orders(self, connection: Any) -> None:
        result = purchase_orders.purchase_orders_to_job_items(connection=connection,
                                                              now=timezone.now())  # fmt: skip
        self.stdout.write(f"{result.orders} purchase order(s) read, {result.new_lines} new "
                          f"line(s); {result.written} job item(s) written, {result.unknown_job} "
                          f"waiting for an unknown job, {result.failed} failed.")  # fmt: skip
        for error in result.errors:
            self.stderr.write(error)

    def _master_summary(self, connection: Any, result: sync.ReadResult) -> str:
        if not sync.api_settings(connection).master_data:
            return ""
        for error in result.master.errors:
            self.stderr.write(error)
        return "; " + result.master.summary()

    def _backfill(self, connection: Any, since: date, *, master_data: bool, only: bool) -> None:
        # One bar per list (invoices, then companies, locations, contacts): each page moves it.
        bars: dict[str, Any] = {}

        def bar_of(entity: str) -> Any:
            if entity not in bars:
                for bar in bars.values():
                    bar.close()
                label = {"invoice": "invoices", "company": "companies"}.get(entity, entity + "s")
                bars[entity] = tqdm(desc=f"Backfilling {label}", unit=entity)
            return bars[entity]

        if not only:
            bar_of("invoice")

        def on_page(page: Page, cursor: SourceCursor) -> None:
            bar = bar_of(cursor.entity)
            bar.update(len(page.items))
            if cursor.entity == "invoice":
                bar.set_postfix(window=str(cursor.position_epoch), page=page.number)
            else:
                bar.set_postfix(page=f"{page.number}/{page.total_pages}")

        def close() -> None:
            for bar in bars.values():
                bar.close()

        try:
            result = sync.servicetrade_backfill(connection=connection, since=since,
                                                now=timezone.now(), on_page=on_page,
                                                invoices=not only,
                                                master_data=master_data or only)  # fmt: skip
        except (sync.BackfillRunning, sync.MasterDataOff) as refused:
            close()
            raise CommandError(refused.message) from None
        except (ServiceTradeError, KeyboardInterrupt) as stop:
            close()
            why = stop.message if isinstance(stop, ServiceTradeError) else "interrupted"
            raise CommandError(f"Backfill stopped ({why}). Its position is kept: run the same "
                               "command again to continue.") from None  # fmt: skip
        close()
        done = [] if only else [
            f"{result.invoices} invoice(s) read, {result.accepted} new or changed, "
            f"{result.unchanged} already up to date, {len(result.errors)} problem(s)"
        ]  # fmt: skip
        if master_data or only:
            for error in result.master.errors:
                self.stderr.write(error)
            done.append(result.master.summary())
        self.stdout.write("Backfill done: " + "; ".join(done) + ".")

    def _check(self, connection: Any) -> None:
        problems = sync.webhook_check(connection=connection, now=timezone.now())
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise SystemExit(1)
        self.stdout.write("The ServiceTrade webhook is registered, enabled and current.")
