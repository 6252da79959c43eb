"""python manage.py sync --until-idle — post every due record in the foreground, then exit.

The same work Celery workers do, for a laptop, a cron job or a script that must know it finished.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from syncengine import services
from syncengine.models import SyncRecord


class Command(BaseCommand):
    help = "Post due sync records in this process until none is runnable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Exit when nothing is runnable (the only mode; workers run continuously).",
        )

    def handle(self, *args: Any, until_idle: bool, **options: Any) -> None:
        if not until_idle:
            raise CommandError(
                "Pass --until-idle. For continuous posting run Celery workers (see README)."
            )
        due = SyncRecord.objects.runnable(timezone.now()).count()
        outcomes: Counter[str] = Counter()
        with tqdm(total=due, desc="Posting", unit="record", disable=due < 20) as bar:

            def count(record: SyncRecord) -> None:
                outcomes[record.get_state_display()] += 1
                bar.update(1)

            attempts = services.sync_run_until_idle(now=timezone.now, on_record=count)
        summary = ", ".join(f"{n} {state.lower()}" for state, n in sorted(outcomes.items()))
        self.stdout.write(f"{attempts} attempt(s): {summary or 'nothing was due'}.")
