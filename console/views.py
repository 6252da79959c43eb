"""The web console: the dashboard, the sync log, "did it land?" search, record detail and its
admin actions, the sandbox ledger.

Function views, one domain call each; reads that need more than a filter live in
`console.selectors`. The htmx partials are blocks of the page's own template.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from console import selectors
from console.access import (
    Role,
    connections_for,
    get_connection_for_user,
    get_record_for_user,
    records_for,
    require_role,
    roles_of,
)
from console.timezones import start_of_day
from syncengine import services
from syncengine.erps.sandbox.models import LedgerInvoice
from syncengine.models import SyncRecord, SyncRecordQuerySet, SyncState

PAGE_SIZE = 50


# The ERP number a person types when resolving a record is stored on the record: same limit.
ERP_NUMBER_MAX_LENGTH = SyncRecord._meta.get_field("erp_document_number").max_length or 64


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    """The dashboard for someone who works on one connection, the sync log for everyone else."""
    slugs = list(connections_for(request.user).values_list("slug", flat=True)[:2])
    if len(slugs) == 1:
        return redirect("console:dashboard", slug=slugs[0])
    return redirect("console:sync-log")


@login_required
def dashboard_index(request: HtmxHttpRequest) -> HttpResponse:
    """The nav's "Dashboard": straight to it with one connection, a list to pick from with more."""
    require_role(request.user, *Role.ALL)
    connections = list(connections_for(request.user).order_by("name"))
    if len(connections) == 1:
        return redirect("console:dashboard", slug=connections[0].slug)
    return TemplateResponse(request, "console/dashboard.html", {"connections": connections})


@vary_on_headers("HX-Request")
@login_required
def dashboard(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    connection = get_connection_for_user(request.user, slug)
    batch = request.GET.get("batch", "").strip()[:32]
    context = {
        "connection": connection,
        "dashboard": selectors.connection_dashboard(
            connection=connection, now=timezone.now(), zone=timezone.get_current_timezone()
        ),
        "is_admin": Role.ADMIN in roles_of(request.user),
        "other_connections": connections_for(request.user).exclude(pk=connection.pk),
        "batch": batch,
        "progress": (
            selectors.retry_batch_progress(records=connection.records.all(), batch=batch)
            if batch
            else None
        ),
    }
    template = "console/dashboard.html"
    # A boosted request (the retry-all form, following its redirect) wants the whole page.
    if request.htmx and not request.htmx.boosted:
        template += "#summary"
    return TemplateResponse(request, template, context)


@require_POST
@login_required
def dashboard_retry_cause(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Retry every blocked or failed record of one failure cause (and state) of a connection."""
    connection = get_connection_for_user(request.user, slug)
    require_role(request.user, Role.ADMIN)
    if "cause" not in request.POST:
        return HttpResponseBadRequest("Which failure cause? The form sends it as `cause`.")
    # The cause is matched exactly, even when empty ("no recorded cause" is a group of its own).
    records = selectors.records_filtered(
        connection.records.filter(failure_cause=request.POST["cause"]),
        state=request.POST.get("state", ""),
        cause="",
    )
    batch = secrets.token_hex(8)
    queued = services.sync_records_retry_bulk(
        records=records, actor=_actor(request), now=timezone.now(), batch=batch
    )
    if not queued:
        messages.info(request, "No blocked or failed records have this cause any more.")
        return redirect("console:dashboard", slug=connection.slug)
    _say_queued(request, queued)
    dashboard_url = reverse("console:dashboard", args=[connection.slug])
    return redirect(f"{dashboard_url}?{urlencode({'batch': batch})}")


def _say_queued(request: HttpRequest, queued: int) -> None:
    noun = "record" if queued == 1 else "records"
    messages.success(request, f"Queued {queued} {noun} for another attempt.")


@require_GET
@login_required
def retry_progress(request: HtmxHttpRequest, slug: str, batch: str) -> TemplateResponse:
    """How a bulk retry is getting on; the dashboard polls this until nothing is waiting."""
    require_role(request.user, *Role.ALL)
    connection = get_connection_for_user(request.user, slug)
    context = {
        "connection": connection,
        "batch": batch,
        "progress": selectors.retry_batch_progress(records=connection.records.all(), batch=batch),
    }
    return TemplateResponse(request, "console/dashboard.html#retry-progress", context)


@require_POST
@login_required
def sync_log_retry(request: HtmxHttpRequest) -> HttpResponse:
    """Retry every blocked or failed record the sync log's filters show (the form repeats them)."""
    require_role(request.user, Role.ADMIN)
    records, filters = _filtered_records(request, request.POST)
    if filters["q"]:
        records = records.matching(filters["q"])
    batch = secrets.token_hex(8)
    queued = services.sync_records_retry_bulk(
        records=records, actor=_actor(request), now=timezone.now(), batch=batch
    )
    shown = {name: value for name, value in filters.items() if value}
    if not queued:
        messages.info(request, "None of the records these filters show is blocked or failed.")
        return redirect(f"{reverse('console:sync-log')}?{urlencode(shown)}")
    _say_queued(request, queued)
    return redirect(f"{reverse('console:sync-log')}?{urlencode({**shown, 'batch': batch})}")


@require_GET
@login_required
def sync_log_retry_progress(request: HtmxHttpRequest, batch: str) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    context = {
        "batch": batch,
        "progress": selectors.retry_batch_progress(records=records_for(request.user), batch=batch),
    }
    return TemplateResponse(request, "console/sync_log.html#retry-progress", context)


FILTER_NAMES = ("connection", "state", "kind", "category", "from", "to", "cause", "q")


def _filtered_records(
    request: HttpRequest, data: QueryDict | None = None
) -> tuple[SyncRecordQuerySet, dict[str, str]]:
    """The sync log's filters as typed (`data`: the query string unless given) and the records
    they select, without the text filter, which each caller applies its own way."""
    data = request.GET if data is None else data
    filters = {name: data.get(name, "").strip() for name in FILTER_NAMES}
    received_from, received_to = _day(filters["from"]), _day(filters["to"])
    records = selectors.records_filtered(
        records_for(request.user).select_related("connection", "document"),
        connection=filters["connection"],
        state=filters["state"],
        cause=filters["cause"],
        kind=filters["kind"],
        category=filters["category"],
        received_from=start_of_day(received_from) if received_from else None,
        # "To" includes the whole day: up to the next midnight.
        received_before=start_of_day(received_to + timedelta(days=1)) if received_to else None,
    )
    return records, filters


def _day(text: str) -> date | None:
    """A date typed as YYYY-MM-DD (what <input type=date> sends); anything else is no filter."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@login_required
def sync_log(request: HtmxHttpRequest) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    records, filters = _filtered_records(request)
    batch = request.GET.get("batch", "").strip()[:32]
    before = request.GET.get("before", "")
    if before.isdigit():
        records = records.filter(pk__lt=int(before))
    # Keyset pagination: one row more than a page tells whether there is a next page.
    if filters["q"]:
        page = records.newest_matching(filters["q"], limit=PAGE_SIZE + 1)
    elif filters["from"] or filters["to"]:
        # Newest first by id, but sorted after the fact (`id + 0`): left to walk the id index
        # backwards, PostgreSQL would pass every newer record before reaching an old day.
        page = list(records.order_by((F("pk") + 0).desc())[: PAGE_SIZE + 1])
    else:
        page = list(records.order_by("-pk")[: PAGE_SIZE + 1])
    context = {
        "records": page[:PAGE_SIZE],
        "next_before": page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None,
        "filters": filters,
        # The filters as a query string, for the polling rows and the pager links.
        "filter_query": urlencode({name: value for name, value in filters.items() if value}),
        "states": SyncState.choices,
        "state_groups": selectors.STATE_GROUP_CHOICES,
        "kinds": selectors.KIND_FILTER_CHOICES,
        "categories": selectors.CATEGORY_FILTER_CHOICES,
        "connections": connections_for(request.user),
        "is_admin": Role.ADMIN in roles_of(request.user),
        "filtered": any(filters.values()),
        "batch": batch,
        "progress": (
            selectors.retry_batch_progress(records=records_for(request.user), batch=batch)
            if batch
            else None
        ),
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
        partial = visible.exclude(pk__in=exact_ids).newest_matching(text, limit=50)
    context = {"q": text, "exact": exact, "partial": partial}
    return TemplateResponse(request, "console/search.html", context)


@login_required
def record_detail(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    record = get_record_for_user(request.user, pk)
    is_admin = Role.ADMIN in roles_of(request.user)
    context = {
        "record": record,
        "events": record.events.order_by("id"),
        "can_retry": is_admin and record.state in services.RETRYABLE,
        "can_cancel": is_admin and record.state in services.CANCELLABLE,
        "can_resolve": is_admin and record.state in services.RESOLVABLE,
        "erp_number_max_length": ERP_NUMBER_MAX_LENGTH,
        "pending_change": record.changes.filter(decision="PENDING").first(),
        "can_decide": is_admin,
    }
    return TemplateResponse(request, "console/record_detail.html", context)


@require_POST
@login_required
def record_change_reissue(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_record_for_user(request.user, pk)
    require_role(request.user, Role.ADMIN)
    try:
        if request.POST.get("confirm") != "yes":
            raise ValueError("Tick the box to confirm: the posted document will be credited.")
        services.sync_record_change_reissue(record=record, actor=_actor(request),
                                            now=timezone.now(),
                                            reason=request.POST.get("reason", ""))  # fmt: skip
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Void and reissue queued: a credit memo, then the new version.")
    return redirect("console:record-detail", pk=record.pk)


@require_POST
@login_required
def record_change_ignore(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_record_for_user(request.user, pk)
    require_role(request.user, Role.ADMIN)
    try:
        services.sync_record_change_ignore(record=record, actor=_actor(request),
                                           now=timezone.now(),
                                           reason=request.POST.get("reason", ""))  # fmt: skip
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Change ignored: the posted document stays as it is.")
    return redirect("console:record-detail", pk=record.pk)


@require_POST
@login_required
def record_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_record_for_user(request.user, pk)
    require_role(request.user, Role.ADMIN)
    try:
        services.sync_record_retry(record=record, actor=_actor(request), now=timezone.now())
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Queued for another attempt with the rules in force now.")
    return redirect("console:record-detail", pk=record.pk)


@require_POST
@login_required
def record_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_record_for_user(request.user, pk)
    require_role(request.user, Role.ADMIN)
    try:
        services.sync_record_cancel(
            record=record,
            actor=_actor(request),
            now=timezone.now(),
            reason=request.POST.get("reason", "").strip(),
        )
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Cancelled: Crosswalk will not post this record.")
    return redirect("console:record-detail", pk=record.pk)


@require_POST
@login_required
def record_resolve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_record_for_user(request.user, pk)
    require_role(request.user, Role.ADMIN)
    erp_number = request.POST.get("erp_document_number", "").strip()
    try:
        if len(erp_number) > ERP_NUMBER_MAX_LENGTH:
            raise ValueError(
                f"An ERP document number has at most {ERP_NUMBER_MAX_LENGTH} characters."
            )
        services.sync_record_resolve_outside(
            record=record,
            actor=_actor(request),
            now=timezone.now(),
            reason=request.POST.get("reason", "").strip(),
            erp_document_number=erp_number,
        )
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Marked resolved outside Crosswalk: it will not be posted.")
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
