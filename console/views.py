"""The web console: the sync log, "did it land?" search, record detail, the sandbox ledger.

Function views, one domain call each; the htmx partials are blocks of the page's own template.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from console.access import (
    Role,
    connections_for,
    get_connection_for_user,
    get_record_for_user,
    records_for,
    require_role,
    roles_of,
)
from syncengine import services
from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import SyncRecord, SyncState

PAGE_SIZE = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _filtered_records(request: HttpRequest) -> tuple[QuerySet[SyncRecord], dict[str, str]]:
    filters = {
        "connection": request.GET.get("connection", "").strip(),
        "state": request.GET.get("state", "").strip(),
        "q": request.GET.get("q", "").strip(),
    }
    records = records_for(request.user).select_related("connection", "document")
    if filters["connection"]:
        records = records.filter(connection__slug=filters["connection"])
    if filters["state"] in SyncState.values:
        records = records.filter(state=filters["state"])
    if filters["q"]:
        records = records.matching(filters["q"])
    return records, filters


@login_required
def sync_log(request: HtmxHttpRequest) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    records, filters = _filtered_records(request)
    before = request.GET.get("before", "")
    if before.isdigit():
        records = records.filter(pk__lt=int(before))
    # Keyset pagination: one row more than a page tells whether there is a next page.
    page = list(records.order_by("-pk")[: PAGE_SIZE + 1])
    context = {
        "records": page[:PAGE_SIZE],
        "next_before": page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None,
        "filters": filters,
        "states": SyncState.choices,
        "connections": connections_for(request.user),
    }
    template = "console/sync_log.html"
    if request.htmx:
        template += "#rows"
    return TemplateResponse(request, template, context)


@login_required
def search(request: HtmxHttpRequest) -> TemplateResponse:
    """Did it land? Exact document-number matches first, then everything containing the text."""
    require_role(request.user, *Role.ALL)
    text = request.GET.get("q", "").strip()
    exact: list[SyncRecord] = []
    partial: list[SyncRecord] = []
    if text:
        visible = records_for(request.user).select_related("connection", "document")
        exact = list(visible.filter(document__number=text).order_by("-pk")[:20])
        exact_ids = [record.pk for record in exact]
        partial = list(visible.matching(text).exclude(pk__in=exact_ids).order_by("-pk")[:50])
    context = {"q": text, "exact": exact, "partial": partial}
    return TemplateResponse(request, "console/search.html", context)


@login_required
def record_detail(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    record = get_record_for_user(request.user, pk)
    context = {
        "record": record,
        "events": record.events.order_by("id"),
        "can_retry": Role.ADMIN in roles_of(request.user)
        and record.state in {SyncState.BLOCKED, SyncState.FAILED},
    }
    return TemplateResponse(request, "console/record_detail.html", context)


@require_POST
@login_required
def record_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_record_for_user(request.user, pk)
    require_role(request.user, Role.ADMIN)
    try:
        services.sync_record_retry(
            record=record, actor=f"user:{request.user.get_username()}", now=timezone.now()
        )
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Queued for another attempt with the rules in force now.")
    return redirect("console:record-detail", pk=record.pk)


@login_required
def ledger_invoice(request: HtmxHttpRequest, slug: str, number: str) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    connection = get_connection_for_user(request.user, slug)
    invoice = get_object_or_404(
        LedgerInvoice.objects.select_related("customer", "journal_entry"),
        connection=connection,
        number=number,
    )
    lines = invoice.journal_entry.lines.select_related("account").order_by("id")
    context = {"connection": connection, "invoice": invoice, "lines": lines}
    return TemplateResponse(request, "console/ledger_invoice.html", context)
