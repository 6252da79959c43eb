"""The ServiceTrade API page of a connection, for Admins: how far polling and backfills have
read (cursors), the webhook registered in ServiceTrade (state, last check, problems), recent
write-backs with the failed ones first, and purchase-order lines waiting to become job items;
with a "check subscriptions now" action (htmx swaps the subscriptions panel).

Admin only, per connection like the other operations pages: a connection the user cannot see is
a 404 before the role's 403. Thin function views; reads in `servicetrade_page_context`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.access import get_connection_for_admin
from console.views import HtmxHttpRequest
from syncengine.models import (
    Connection,
    PurchaseOrderJobItem,
    SourceCursor,
    SourceWriteBack,
    WebhookSubscription,
)
from syncengine.secrets import CredentialsUnreadable
from syncengine.sources.servicetrade_api import sync
from syncengine.sources.servicetrade_api.client import ServiceTradeError, from_epoch

RECENT_WRITE_BACKS = 20
WAITING_LINES = 50


def _moment(epoch: int | None) -> datetime | None:
    return from_epoch(epoch) if epoch is not None else None


def servicetrade_page_context(connection: Connection) -> dict[str, Any]:
    cursors = [
        {"cursor": cursor, "position": _moment(cursor.position_epoch),
         "since": _moment(cursor.since_epoch), "until": _moment(cursor.until_epoch)}
        for cursor in SourceCursor.objects.filter(connection=connection).order_by("mode", "entity")
    ]  # fmt: skip
    write_backs = SourceWriteBack.objects.filter(record__connection=connection).select_related(
        "record", "record__document"
    )
    return {
        "connection": connection,
        "api_on": sync.api_settings(connection).api,
        "cursors": cursors,
        "subscriptions": WebhookSubscription.objects.filter(connection=connection).order_by("pk"),
        "failed_write_backs": write_backs.filter(told=False).order_by("-at", "-pk"),
        "write_backs": write_backs.filter(told=True).order_by("-at", "-pk")[:RECENT_WRITE_BACKS],
        "waiting_lines": PurchaseOrderJobItem.objects.filter(connection=connection)
        .exclude(state=PurchaseOrderJobItem.State.WRITTEN)
        .order_by("-pk")[:WAITING_LINES],
    }


@require_GET
@login_required
def servicetrade_status(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    connection = get_connection_for_admin(request.user, slug)
    return TemplateResponse(
        request, "console/ops/servicetrade.html", servicetrade_page_context(connection)
    )


@require_POST
@login_required
def servicetrade_check(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = get_connection_for_admin(request.user, slug)
    error = ""
    try:
        problems = sync.webhook_check(connection=connection, now=timezone.now())
    except (ServiceTradeError, CredentialsUnreadable) as failure:
        problems, error = [], getattr(failure, "message", "") or str(failure)
    if not request.htmx:
        if error:
            messages.error(request, f"ServiceTrade could not be asked: {error}")
        elif problems:
            messages.warning(request, "The webhook needs attention: " + " ".join(problems))
        else:
            messages.success(request, "The webhook is registered, enabled and current.")
        return redirect("ops:servicetrade", slug=connection.slug)
    context = {
        **servicetrade_page_context(connection),
        "checked": True,
        "check_error": error,
        "check_problems": problems,
    }
    return TemplateResponse(request, "console/ops/servicetrade.html#subscriptions", context)
