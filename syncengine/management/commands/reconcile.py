"""python manage.py reconcile [--connection SLUG] — compare source, sync records and the ERP now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from syncengine.management.commands._connections import connection_from_option
from syncengine.reconcile import reconciliation_run


class Command(BaseCommand):
    help = "Reconcile one connection: find what is missing, duplicated or differs, to the cent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", help="Connection slug (default: the only one).")

    def handle(self, *args: Any, connection: str | None, **options: Any) -> None:
        run = reconciliation_run(
            connection=connection_from_option(connection), actor="manage.py reconcile",
            now=timezone.now(),
        )  # fmt: skip
        self.stdout.write(
            f"Posted source invoices {run.posted_source_total}; ERP invoices "
            f"{run.erp_invoice_total} (difference {run.difference:+}); ERP credit memos "
            f"{run.erp_credit_total}."
        )
        for finding in run.findings.order_by("kind", "key"):
            action = f" [{finding.action}]" if finding.action else ""
            self.stdout.write(
                f"{finding.get_kind_display()}: {finding.key} {finding.detail}{action}"
            )
        if not run.counts:
            self.stdout.write("Everything ties out.")
