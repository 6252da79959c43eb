"""Webhook ingestion. ServiceTrade signs nothing, so the hook URL carries a secret.

The body is stored (as a `SourceReceipt`) before the response is sent, whatever it contains.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from syncengine import services
from syncengine.models import Connection, SourceReceipt


@csrf_exempt
@require_POST
def servicetrade_webhook(request: HttpRequest, slug: str, secret: str) -> JsonResponse:
    connection = Connection.objects.filter(slug=slug).first()
    expected = connection.webhook_secret_hash if connection else ""
    if not expected or not hmac.compare_digest(expected, Connection.hash_secret(secret)):
        return JsonResponse({"error": "Unknown hook URL."}, status=404)
    assert connection is not None
    try:
        body = request.body
    except RequestDataTooBig:
        limit = settings.CROSSWALK_MAX_PAYLOAD_BYTES
        return JsonResponse({"error": f"Body larger than {limit} bytes."}, status=413)
    result = services.invoices_ingest(
        connection=connection,
        body=body,
        channel=SourceReceipt.Channel.WEBHOOK,
        origin=request.META.get("REMOTE_ADDR", ""),
        now=timezone.now(),
    )
    status = 400 if result.receipt.outcome == SourceReceipt.Outcome.REJECTED else 202
    return JsonResponse(
        {
            "receipt": result.receipt.pk,
            "accepted": len(result.accepted),
            "unchanged": result.unchanged,
            "errors": result.errors,
        },
        status=status,
    )
