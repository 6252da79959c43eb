"""Webhook ingestion. ServiceTrade signs nothing, so its hook URL carries a secret; other senders
sign each delivery with HMAC-SHA256 (`syncengine.webhooks`) and post to a URL without one.

The body is stored (as a `SourceReceipt`) before the response is sent, whatever it contains, once
the sender is authenticated. The signed hook answers every error as RFC 9457 problem JSON.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from syncengine import services, webhooks
from syncengine.models import Connection, SourceReceipt
from syncengine.sources.servicetrade_api import sync as servicetrade_sync

PROBLEM_CONTENT_TYPE = "application/problem+json"


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
    if servicetrade_sync.is_entity_message(body):
        # ServiceTrade's own webhook: ids only; stored now, each entity re-fetched (issue 7).
        receipt = servicetrade_sync.webhook_message_receive(
            connection=connection, body=body, origin=request.META.get("REMOTE_ADDR", ""),
            now=timezone.now(),
        )  # fmt: skip
        return JsonResponse({"receipt": receipt.pk, "errors": receipt.errors}, status=202)
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


def _problem(status: int, code: str, detail: str, **extra: object) -> JsonResponse:
    # The shape of console/api/errors.py `problem`, without importing the console into the engine.
    body = {"type": f"urn:crosswalk:problem:{code}", "title": _TITLES.get(status, "Error"),
            "status": status, "detail": detail, "code": code, **extra}  # fmt: skip
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


_TITLES = {400: "Invalid request", 401: "Not authenticated", 404: "Not found",
           413: "Payload too large"}  # fmt: skip


@csrf_exempt
@require_POST
def signed_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    """Invoices from a sender that signs its deliveries (see `syncengine.webhooks`)."""
    connection = Connection.objects.filter(slug=slug).first()
    secret = webhooks.webhook_hmac_secret_of(connection) if connection else ""
    if connection is None or not secret:
        return _problem(404, "not_found", "Unknown hook URL.")
    timestamp = request.headers.get(webhooks.TIMESTAMP_HEADER)
    try:
        webhooks.webhook_timestamp_check(timestamp=timestamp, now=timezone.now())
        try:
            body = request.body
        except RequestDataTooBig:
            limit = settings.CROSSWALK_MAX_PAYLOAD_BYTES
            return _problem(413, "payload_too_large", f"Body larger than {limit} bytes.")
        webhooks.webhook_signature_check(
            secret=secret,
            timestamp=timestamp or "",
            signature=request.headers.get(webhooks.SIGNATURE_HEADER),
            body=body,
        )
    except webhooks.SignatureError as error:
        return _problem(401, error.code, error.message)
    result = services.invoices_ingest(
        connection=connection,
        body=body,
        channel=SourceReceipt.Channel.WEBHOOK,
        origin=request.META.get("REMOTE_ADDR", ""),
        now=timezone.now(),
    )
    if result.receipt.outcome == SourceReceipt.Outcome.REJECTED:
        return _problem(400, "invalid_payload", "The body was stored but holds no usable invoice.",
                        receipt=result.receipt.pk, errors=result.errors)  # fmt: skip
    return JsonResponse(
        {"receipt": result.receipt.pk, "accepted": len(result.accepted),
         "unchanged": result.unchanged, "errors": result.errors},
        status=202,
    )  # fmt: skip
