"""`manage.py ledger export`: the sandbox ledger's posted books as JSON or Beancount.

    python manage.py ledger export --format beancount --connection demo --output books.beancount
    python manage.py ledger export --format json            # stdout; fine with one connection
    python manage.py ledger pay --invoice SI-000042 --amount 100.00 [--reverse --reason NSF]

The file named by --output is written beside its final path and moved into place at the end, so
an export that fails halfway never leaves a truncated file that looks complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from syncengine.erps.sandbox.export import FORMATS, write_ledger
from syncengine.erps.sandbox.payments import PaymentRefused, ledger_payment_record
from syncengine.models import Connection


class Command(BaseCommand):
    help = "Work with the sandbox ledger's books."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        export = actions.add_parser(
            "export", help="Write the posted journal entries as JSON or Beancount."
        )
        export.add_argument("--format", dest="fmt", choices=FORMATS, required=True)
        export.add_argument(
            "--connection",
            metavar="SLUG",
            help="Connection to export; may be left out when there is exactly one.",
        )
        export.add_argument(
            "--output", metavar="FILE", default="-", help="File to write; '-' (default) is stdout."
        )

        pay = actions.add_parser(
            "pay", help="Record a customer payment (or its reversal) on a sandbox invoice."
        )
        pay.add_argument("--connection", metavar="SLUG")
        pay.add_argument("--invoice", required=True, help="SI-… number or the ST-INV-… key.")
        pay.add_argument("--amount", required=True, type=_amount, help="e.g. 12.34")
        pay.add_argument("--reverse", action="store_true", help="Reverse that much (NSF, void).")
        pay.add_argument("--reason", default="", help="Why a reversal happened, e.g. NSF.")
        pay.add_argument("--date", type=date.fromisoformat, help="Payment date (default today).")
        pay.add_argument("--cash-account", default="1100", help="Account debited (default 1100).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self._export(options)
        elif options["action"] == "pay":
            self._pay(options)

    def _pay(self, options: dict[str, Any]) -> None:
        connection = resolve_connection(options["connection"])
        try:
            payment = ledger_payment_record(
                connection=connection, invoice=options["invoice"], amount=options["amount"],
                reverse=options["reverse"], reason=options["reason"],
                payment_date=options["date"] or timezone.localdate(), now=timezone.now(),
                cash_account=options["cash_account"],
            )  # fmt: skip
        except PaymentRefused as refused:
            raise CommandError(str(refused)) from refused
        self.stdout.write(
            f"{payment.number}: {payment.get_kind_display().lower()} of {payment.amount} on "
            f"invoice {payment.invoice.number} (journal entry {payment.journal_entry.number})."
        )

    def _export(self, options: dict[str, Any]) -> None:
        connection = resolve_connection(options["connection"])
        if options["output"] == "-":
            write_ledger(connection=connection, fmt=options["fmt"], stream=_Unterminated(self))
            return
        path = Path(options["output"])

        def write(stream: TextIO) -> None:
            write_ledger(connection=connection, fmt=options["fmt"], stream=stream)

        _write_file_atomically(path, write)
        self.stderr.write(f"Wrote the {options['fmt']} export of {connection.slug} to {path}.")


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None


def resolve_connection(slug: str | None) -> Connection:
    slugs = list(Connection.objects.order_by("slug").values_list("slug", flat=True))
    if not slugs:
        raise CommandError("There are no connections, so there is no ledger to export.")
    if slug is None:
        if len(slugs) == 1:
            return Connection.objects.get(slug=slugs[0])
        raise CommandError(
            f"There are {len(slugs)} connections; choose one with --connection: {', '.join(slugs)}."
        )
    if slug not in slugs:
        raise CommandError(f"No connection {slug!r}; the connections are: {', '.join(slugs)}.")
    return Connection.objects.get(slug=slug)


class _Unterminated:
    """Passes text to the command's stdout as is; OutputWrapper would end every piece a line."""

    def __init__(self, command: BaseCommand):
        self.command = command

    def write(self, text: str) -> None:
        self.command.stdout.write(text, ending="")


def _write_file_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    if not path.parent.is_dir():
        raise CommandError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with open(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            write(stream)
        # mkstemp creates the file private (0600); give it the mode a plain open() would have.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    # The umask can only be read by setting it; a management command runs single-threaded.
    mask = os.umask(0)
    os.umask(mask)
    return mask
