"""python manage.py load_demo [--seed N] [--invoices N] — idempotent demo data.

Creates the demo connection (sandbox ledger, chart of accounts, tax codes, posting rules), the
demo users admin / finance / ar, ingests generated ServiceTrade invoices and timecards, and a
customer both sides edited (two-way master data).
Running it again with the same seed creates no duplicates: repeated invoices are recognised
as unchanged (each run's delivery is still kept as a receipt, as every delivery is).
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from tqdm import tqdm

from console import demo
from masterdata.models import Entity
from masterdata.services import master_changes_receive
from syncengine import services
from syncengine.models import SourceReceipt

BATCH = 500


class Command(BaseCommand):
    help = "Load deterministic ServiceTrade-shaped demo data into a sandbox connection."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--invoices", type=int, default=200)
        parser.add_argument("--timecard-weeks", type=int, default=2)

    def handle(
        self, *args: Any, seed: int, invoices: int, timecard_weeks: int, **options: Any
    ) -> None:
        connection = demo.demo_connection_setup()
        accepted = unchanged = 0
        generated = demo.demo_invoices(seed=seed, count=invoices)
        with tqdm(
            total=invoices, desc="Demo invoices", unit="invoice", disable=invoices < 1000
        ) as bar:
            while batch := list(itertools.islice(generated, BATCH)):
                body = json.dumps({"data": {"invoices": [item["data"] for item in batch]}})
                result = services.invoices_ingest(
                    connection=connection,
                    body=body.encode(),
                    channel=SourceReceipt.Channel.DEMO,
                    origin=f"load_demo --seed {seed}",
                    now=timezone.now(),
                )
                accepted += len(result.accepted)
                unchanged += result.unchanged
                for error in result.errors:
                    self.stderr.write(error)
                bar.update(len(batch))
        timecards = self._load_timecards(connection, seed, timecard_weeks)
        self._load_master_data(connection)
        self.stdout.write(
            f"Demo connection {connection.slug!r}: {accepted} invoice(s) new or changed, "
            f"{unchanged} unchanged, {timecards} timecard(s)."
        )
        self.stdout.write(
            "Demo logins (password "
            f"{demo.DEMO_PASSWORD!r}): " + ", ".join(name for name, _ in demo.DEMO_USERS)
        )

    def _load_master_data(self, connection: Any) -> None:
        """A customer both sides edited: ServiceTrade's newer phone wins over the ERP's older one
        (kept as lost), the ERP's payment terms are taken; the ERP is told the rest. Again, it
        changes nothing: a side repeating itself is no change."""
        now = timezone.now()
        for side, values, hours_ago in demo.DEMO_MASTER_DATA:
            master_changes_receive(
                connection=connection, entity=Entity.CUSTOMER, source_ref=demo.DEMO_MASTER_REF,
                side=side, values=values, changed_at=now - timedelta(hours=hours_ago),
                actor="load_demo", now=now,
            )  # fmt: skip

    def _load_timecards(self, connection: Any, seed: int, weeks: int) -> int:
        cards = [card["data"] for card in demo.demo_timecards(seed=seed, weeks=weeks)]
        if not cards:
            return 0
        result = services.timecards_ingest(
            connection=connection, body=json.dumps({"data": {"timecards": cards}}).encode(),
            channel=SourceReceipt.Channel.DEMO, origin=f"load_demo --seed {seed} (timecards)",
            now=timezone.now(),
        )  # fmt: skip
        for error in result.errors:
            self.stderr.write(error)
        return len(cards)
