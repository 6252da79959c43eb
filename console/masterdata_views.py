"""The two-way master data page of a connection, for Admins: what each side has not been told
yet (with the last error), the latest changes that lost (with both times and the reason), and a
"send now" action (htmx swaps the waiting panel).

Admin only, per connection like the other operations pages: a connection the user cannot see is
a 404 before the role's 403. Thin function views over `masterdata.services`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.access import get_connection_for_admin
from console.views import HtmxHttpRequest
from masterdata.models import MasterRecord, Side
from masterdata.selectors import changes_lost, records_waiting
from masterdata.services import master_outbox_send
from syncengine.models import Connection

WAITING_SHOWN = 100
LOST_SHOWN = 50


def master_data_page_context(connection: Connection) -> dict[str, Any]:
    waiting = records_waiting(connection)
    kept = MasterRecord.objects.filter(connection=connection)
    return {
        "connection": connection,
        "kept": dict(kept.values_list("entity").annotate(n=Count("id")).order_by()),
        "waiting_count": waiting.count(),
        "waiting": [
            {
                "record": record,
                "to_source": record.outbox.get(Side.SOURCE, {}),
                "to_erp": record.outbox.get(Side.ERP, {}),
            }
            for record in waiting[:WAITING_SHOWN]
        ],  # fmt: skip
        "lost": changes_lost(connection)[:LOST_SHOWN],
    }


@require_GET
@login_required
def master_data(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    connection = get_connection_for_admin(request.user, slug)
    return TemplateResponse(
        request, "console/ops/master_data.html", master_data_page_context(connection)
    )


@require_POST
@login_required
def master_data_send(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = get_connection_for_admin(request.user, slug)
    sent = master_outbox_send(connection=connection, now=timezone.now())
    summary = f"{sent.told} told, {sent.failed} could not be told (they stay queued)."
    if not request.htmx:
        (messages.warning if sent.failed else messages.success)(request, summary)
        return redirect("ops:master-data", slug=connection.slug)
    context = {**master_data_page_context(connection), "sent_summary": summary,
               "sent_failed": sent.failed}  # fmt: skip
    return TemplateResponse(request, "console/ops/master_data.html#waiting", context)
