"""Operations endpoints of one connection: its ERP catalog (read, refresh, CSV import), the
sandbox ledger (read only) and the webhook HMAC secret.

Access mirrors console/ops_views.py: everyone on the connection reads; only Admin refreshes or
imports the catalog or sets the webhook secret (403 for others, after the 404 for a connection
the user cannot see). Lists are keyset-paginated on id (`console.api.paging`).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from console.access import get_connection_for_admin, get_connection_for_user
from console.api import serializers as s
from console.api.errors import ErpUnavailable, import_invalid
from console.api.idempotency import idempotent
from console.api.paging import keyset_page
from console.api.rules_views import CsvBodyParser
from console.api.views import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    WRITE_ERRORS,
    ApiView,
    documented,
    problems,
)
from mappings.catalog import CatalogImportError, RefreshResult, catalog_import_csv, catalog_refresh
from mappings.models import CatalogEntry
from syncengine import webhooks
from syncengine.erps.base import ConnectorError
from syncengine.erps.sandbox.models import (
    JournalEntry,
    LedgerAccount,
    LedgerInvoice,
    LedgerTimeEntry,
)
from syncengine.models import Connection

CATALOG_PAGE_SIZE = 200
LEDGER_PAGE_SIZE = 50


def _admin(request: Request, slug: str) -> Connection:
    return get_connection_for_admin(request.user, slug)


# --- catalog -----------------------------------------------------------------------------------


class CatalogListView(ApiView):
    @documented(
        operation_id="catalog_list",
        parameters=[s.CatalogFilters],
        responses={200: s.CatalogPageSerializer, **problems(400), **READ_ERRORS},
        description=f"The connection's ERP catalog by id, {CATALOG_PAGE_SIZE} a page; follow "
        "`next`. Values the ERP stopped listing stay, with `missing_since` set.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        filters = self.valid(s.CatalogFilters, request.query_params)
        entries = CatalogEntry.objects.filter(connection=connection)
        if "kind" in filters:
            entries = entries.filter(kind=filters["kind"])
        page, next_url = keyset_page(
            request, entries, size=CATALOG_PAGE_SIZE, cursor="after", descending=False
        )
        return Response({"results": s.CatalogEntrySerializer(page, many=True).data,
                         "next": next_url})  # fmt: skip


class CatalogRefreshView(ApiView):
    @documented(
        operation_id="catalog_refresh",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.CatalogRefreshSerializer, **problems(502), **WRITE_ERRORS},
        description="Admin: read every list from the ERP now and store it. `issues` are the "
        "rules in force checked against the new catalog. An ERP that cannot be read is 502 "
        "`erp_unavailable` and nothing changes.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = _admin(request, slug)
        try:
            result = catalog_refresh(connection=connection, actor=self.actor(), now=timezone.now())
        except ConnectorError as error:
            raise ErpUnavailable(f"The ERP could not be read; nothing changed. {error}") from error
        return _catalog_written(result)


def _catalog_written(result: RefreshResult) -> Response:
    issues = s.RuleIssueSerializer(result.issues, many=True).data
    return Response({"counts": result.counts(), "issues": issues})


class CatalogImportView(ApiView):
    parser_classes = [CsvBodyParser]

    @documented(
        operation_id="catalog_import",
        request={"text/csv": OpenApiTypes.STR},
        parameters=[s.CatalogImportInput, IDEMPOTENCY_PARAMETER],
        responses={200: s.CatalogRefreshSerializer, **problems(413, 415), **WRITE_ERRORS},
        description="Admin: replace one list of the catalog (`kind`) with a CSV file, for an "
        "ERP that cannot be read (the console's catalog import; columns in docs/catalogs.md). "
        "Values of that kind left out are flagged missing. All or nothing: every problem is "
        "under `errors` with its row and column.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = _admin(request, slug)
        query = self.valid(s.CatalogImportInput, request.query_params)
        body = request.data if isinstance(request.data, bytes) else b""
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = body[: error.start].count(b"\n") + 1
            byte = body[error.start]
            return import_invalid([f"line {line}: byte 0x{byte:02X} is not UTF-8; save as UTF-8"])
        try:
            result = catalog_import_csv(connection=connection, kind=query["kind"], text=text,
                                        actor=self.actor(), now=timezone.now(),
                                        reason=query["reason"])  # fmt: skip
        except CatalogImportError as error:
            return import_invalid(error.errors)
        return _catalog_written(result)


# --- sandbox ledger ----------------------------------------------------------------------------


def _ledger_connection(request: Request, slug: str) -> Connection:
    connection = get_connection_for_user(request.user, slug)
    if connection.target != Connection.Target.SANDBOX:
        raise Http404("This connection does not post to the sandbox ledger.")
    return connection


class LedgerAccountListView(ApiView):
    @documented(operation_id="ledger_accounts_list",
                responses={200: s.LedgerAccountSerializer(many=True), **READ_ERRORS},
                description="The sandbox ledger's chart of accounts, by number.")  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        connection = _ledger_connection(request, slug)
        accounts = LedgerAccount.objects.filter(connection=connection).order_by("number")
        return Response(s.LedgerAccountSerializer(accounts, many=True).data)


class LedgerInvoiceListView(ApiView):
    @documented(
        operation_id="ledger_invoices_list",
        parameters=[s.LedgerPageInput],
        responses={200: s.LedgerInvoicePageSerializer, **problems(400), **READ_ERRORS},
        description=f"Invoices and credit memos in the sandbox ledger, newest first, "
        f"{LEDGER_PAGE_SIZE} a page.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = _ledger_connection(request, slug)
        self.valid(s.LedgerPageInput, request.query_params)
        invoices: QuerySet[LedgerInvoice] = LedgerInvoice.objects.filter(
            connection=connection
        ).select_related("customer", "journal_entry", "applies_to")
        page, next_url = keyset_page(
            request, invoices, size=LEDGER_PAGE_SIZE, cursor="before", descending=True
        )
        return Response({"results": s.LedgerInvoiceSerializer(page, many=True).data,
                         "next": next_url})  # fmt: skip


class LedgerEntryListView(ApiView):
    @documented(
        operation_id="ledger_entries_list",
        parameters=[s.LedgerPageInput],
        responses={200: s.JournalEntryPageSerializer, **problems(400), **READ_ERRORS},
        description=f"Journal entries with their lines, newest first, {LEDGER_PAGE_SIZE} a "
        "page. Only POSTED entries are books; a DRAFT is a posting in progress.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = _ledger_connection(request, slug)
        self.valid(s.LedgerPageInput, request.query_params)
        entries = JournalEntry.objects.filter(connection=connection).prefetch_related(
            "lines__account"
        )
        page, next_url = keyset_page(
            request, entries, size=LEDGER_PAGE_SIZE, cursor="before", descending=True
        )
        return Response({"results": s.JournalEntrySerializer(page, many=True).data,
                         "next": next_url})  # fmt: skip


class LedgerTimeEntryListView(ApiView):
    @documented(
        operation_id="ledger_time_entries_list",
        parameters=[s.LedgerPageInput],
        responses={200: s.LedgerTimeEntryPageSerializer, **problems(400), **READ_ERRORS},
        description=f"Time posted to the sandbox ledger (payroll and job costing), newest "
        f"first, {LEDGER_PAGE_SIZE} a page.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = _ledger_connection(request, slug)
        self.valid(s.LedgerPageInput, request.query_params)
        entries = LedgerTimeEntry.objects.filter(connection=connection)
        page, next_url = keyset_page(
            request, entries, size=LEDGER_PAGE_SIZE, cursor="before", descending=True
        )
        return Response({"results": s.LedgerTimeEntrySerializer(page, many=True).data,
                         "next": next_url})  # fmt: skip


# --- webhook HMAC secret -----------------------------------------------------------------------


class WebhookSecretView(ApiView):
    @documented(
        operation_id="connections_webhook_secret_issue",
        request=None,
        responses={201: s.WebhookHmacSecretSerializer, **WRITE_ERRORS},
        description="Admin: a new HMAC-SHA256 secret for senders other than ServiceTrade, "
        "replacing any earlier one. It is in this response only (stored encrypted), so this "
        "action takes no Idempotency-Key.",
    )
    def post(self, request: Request, slug: str) -> Response:
        connection = _admin(request, slug)
        secret = webhooks.webhook_hmac_secret_issue(
            connection=connection, actor=self.actor(), now=timezone.now()
        )
        body = {
            "webhook_hmac_secret": secret,
            "url": request.build_absolute_uri(reverse("hooks:signed", args=[connection.slug])),
            "timestamp_header": webhooks.TIMESTAMP_HEADER,
            "signature_header": webhooks.SIGNATURE_HEADER,
        }
        response = Response(s.WebhookHmacSecretSerializer(body).data, status=201)
        response["Cache-Control"] = "no-store"
        return response

    @documented(
        operation_id="connections_webhook_secret_clear",
        responses={204: None, **READ_ERRORS},
        description="Admin: remove the secret; signed deliveries are refused (404).",
    )
    def delete(self, request: Request, slug: str) -> Response:
        connection = _admin(request, slug)
        webhooks.webhook_hmac_secret_clear(
            connection=connection, actor=self.actor(), now=timezone.now()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
