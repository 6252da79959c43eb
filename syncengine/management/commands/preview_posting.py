"""python manage.py preview_posting --connection SLUG --document FILE — print the exact requests
the connection's connector would send for the ServiceTrade invoice(s) in FILE, sending nothing.

The file is read as ingestion reads it, and coded with the rules in force on each invoice's date
and the connection's stored catalog, as the engine would code it. Nothing is stored and the ERP
is not called. When the rules block an invoice its problems are printed and the exit status is 1.

A PartsLedger procurement file (`"format": "crosswalk-procurement/1"`) previews its purchase
orders the same way: the requests for an ERP that takes them, else why they are not posted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mappings.catalog import catalog_cached
from mappings.resolve import resolve_invoice
from mappings.resolve_cost import resolve_purchase_invoice
from mappings.services import rules_in_force
from syncengine.canonical import ProcurementDocument, ProcurementKind
from syncengine.erps import wire
from syncengine.erps.base import ConnectorError, procurement_poster
from syncengine.erps.registry import connector_for
from syncengine.management.commands._connections import connection_from_option
from syncengine.models import Connection, DocumentKind, SourceDocument
from syncengine.services import NOT_POSTED, invoice_key, procurement_key
from syncengine.sources import procurement, servicetrade


class Command(BaseCommand):
    help = "Print the requests an invoice would be posted with, without sending them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", help="Connection slug (default: the only one).")
        parser.add_argument(
            "--document", type=Path, required=True,
            help='A ServiceTrade invoice JSON file ({"data": {...}} or a list page).',
        )  # fmt: skip

    def handle(self, *args: Any, connection: str | None, document: Path, **options: Any) -> None:
        target = connection_from_option(connection)
        if not document.is_file():
            raise CommandError(f"Not a readable file: {document}")
        try:
            envelope = servicetrade.loads(document.read_bytes())
        except servicetrade.InvalidDocument as invalid:
            raise CommandError(f"{document}: " + "; ".join(invalid.errors)) from None
        if isinstance(envelope, dict) and str(envelope.get("format", "")).startswith(
            "crosswalk-procurement"
        ):
            self._procurement(target, envelope, document)
            return
        try:
            elements = servicetrade.split_invoices(envelope)
        except servicetrade.InvalidDocument as invalid:
            raise CommandError(f"{document}: " + "; ".join(invalid.errors)) from None
        blocked = 0
        for element in elements:
            blocked += not self._preview(target, element)
        if blocked:
            raise CommandError(f"{blocked} of {len(elements)} invoice(s) cannot be posted as the "
                               "rules stand; see the problems above.")  # fmt: skip

    def _preview(self, connection: Connection, element: Any) -> bool:
        try:
            invoice = servicetrade.parse_invoice(
                element, currency=connection.currency, time_zone=connection.time_zone
            )
        except servicetrade.InvalidDocument as invalid:
            self._problems("The invoice cannot be read", invalid.errors)
            return False
        title = f"Invoice {invoice.number} (ServiceTrade {invoice.source_id})"
        rules = rules_in_force(connection=connection, on=invoice.transaction_date)
        if rules is None:
            self._problems(title, [f"No posting rules are in force on {invoice.transaction_date}."])
            return False
        catalog = catalog_cached(connection=connection)
        if not catalog.lists:
            self._problems(title, ["The ERP's catalog has not been read yet: refresh it first."])
            return False
        plan = resolve_invoice(invoice, rules.compiled, catalog)
        if isinstance(plan, list):
            self._problems(title, [f"{problem.code}: {problem.message}" for problem in plan])
            return False
        key = invoice_key(invoice.source_id)
        try:
            requests = connector_for(connection).preview_invoice(plan=plan, key=key)
        except ConnectorError as error:
            self._problems(title, [error.message])
            return False
        self.stdout.write(
            f"{title}, total {plan.total} {plan.currency}, key {key}, "
            f"rules version {rules.version.number}, "
            f"to {connection.get_target_display()}:"
        )
        self.stdout.write(wire.dumps(requests, indent=2))
        return True

    def _problems(self, title: str, problems: list[str]) -> None:
        self.stderr.write(f"{title} is blocked:")
        for problem in problems:
            self.stderr.write(f"  - {problem}")

    # --- PartsLedger purchase orders ------------------------------------------------------------

    def _procurement(self, connection: Connection, envelope: Any, path: Path) -> None:
        try:
            elements = procurement.split_procurement(envelope)
        except servicetrade.InvalidDocument as invalid:
            raise CommandError(f"{path}: " + "; ".join(invalid.errors)) from None
        documents, blocked = [], 0
        for element in elements:
            try:
                documents.append(procurement.parse_record(element, currency=connection.currency))
            except servicetrade.InvalidDocument as invalid:
                self._problems(f"{element.label}", invalid.errors)
                blocked += 1
        vendors = {d.source_id: d.vendor_name for d in documents
                   if d.kind == ProcurementKind.VENDOR}  # fmt: skip
        orders = [d for d in documents if d.kind == ProcurementKind.PURCHASE_ORDER]
        for order in orders:
            blocked += not self._preview_order(connection, order, vendors)
        if not orders:
            self.stdout.write("The file holds no purchase order: only those are previewed.")
        if blocked:
            raise CommandError(f"{blocked} record(s) cannot be posted as they stand; see the "
                               "problems above.")  # fmt: skip

    def _preview_order(
        self, connection: Connection, order: ProcurementDocument, vendors: dict[str, str]
    ) -> bool:
        title = f"Purchase order {order.number} (PartsLedger {order.source_id})"
        poster = procurement_poster(connector_for(connection), kind=DocumentKind.PURCHASE_ORDER)
        if poster is None:
            self.stdout.write(f"{title}: {NOT_POSTED[DocumentKind.PURCHASE_ORDER]}")
            return True
        name = vendors.get(order.vendor_id) or self._stored_vendor_name(connection, order)
        if name is None:
            self._problems(title, [f"Vendor {order.vendor_id} is in no import and not in this "
                                   "file."])  # fmt: skip
            return False
        rules = rules_in_force(connection=connection, on=order.document_date)
        if rules is None:
            self._problems(title, [f"No posting rules are in force on {order.document_date}."])
            return False
        catalog = catalog_cached(connection=connection)
        named = dataclasses.replace(order, vendor_name=name)
        coded = resolve_purchase_invoice(named, rules.compiled, catalog)
        if isinstance(coded, list):
            self._problems(title, [f"{problem.code}: {problem.message}" for problem in coded])
            return False
        plan = dataclasses.replace(coded, kind=ProcurementKind.PURCHASE_ORDER)
        key = procurement_key(ProcurementKind.PURCHASE_ORDER, order.source_id)
        try:
            requests = poster.preview_purchase_order(plan=plan, key=key)
        except ConnectorError as error:
            self._problems(title, [error.message])
            return False
        self.stdout.write(f"{title}, total {plan.total} {plan.currency}, key {key}, rules "
                          f"version {rules.version.number}, to "
                          f"{connection.get_target_display()}:")  # fmt: skip
        self.stdout.write(wire.dumps(requests, indent=2))
        return True

    def _stored_vendor_name(self, connection: Connection, order: ProcurementDocument) -> str | None:
        vendor = SourceDocument.objects.filter(
            connection=connection, kind=DocumentKind.VENDOR, source_id=order.vendor_id
        ).first()
        return None if vendor is None else str(vendor.canonical.get("vendor_name", ""))
