"""`Idempotency-Key` on mutating POSTs: the first outcome is stored per user and key, with a hash
of the method, path and body; a repeat with the same body gets that outcome again (with
`Idempotent-Replayed: true`) and has no further effect; a repeat with another body is a 409.

The row is written (status 0, "in progress") before the action runs and completed after it, so
the action keeps its own transactions (bulk retry commits in chunks); a concurrent repeat while
the first still runs is a 409 too. Keys are kept for `KEY_TTL`; after that a key may be reused.
Outcomes that depend on who asks or when (401, 403, 404, 429, 5xx) are not stored."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console.api.errors import PROBLEM_CONTENT_TYPE, Conflict, problem
from console.api.models import IdempotentRequest

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
KEY_TTL = timedelta(hours=24)
NOT_STORED = {401, 403, 404, 429}


def body_hash(request: Request) -> str:
    data = request.data
    if hasattr(data, "lists"):  # a QueryDict
        data = {name: values for name, values in data.lists()}
    canonical = json.dumps(
        [request.method, request.path, data], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _claim(request: Request, key: str, digest: str) -> IdempotentRequest | None:
    """Create the in-progress row for this request; None when the user already holds the key."""
    now = timezone.now()
    IdempotentRequest.objects.filter(
        user=request.user, key=key, created_at__lt=now - KEY_TTL
    ).delete()
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(
                user=request.user, key=key, body_hash=digest, created_at=now
            )
    except IntegrityError:
        return None


def _storable(value: Any) -> Any:
    """The outcome with each NUL character as U+FFFD: PostgreSQL cannot store a NUL in a JSON
    document, and only an error message quoting a bad request holds one (nothing with a NUL is
    ever stored as rules or records), e.g. a CSV header cell holding one, named by `import_invalid`.
    A replay shows U+FFFD where the first answer had the NUL."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def idempotent(
    method: Callable[..., Response],
) -> Callable[..., Response]:
    @functools.wraps(method)
    def wrapper(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return method(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > KEY_MAX_LENGTH:
            return problem(
                400,
                code="invalid_idempotency_key",
                detail=f"An {HEADER} has 1 to {KEY_MAX_LENGTH} characters.",
            )
        digest = body_hash(request)
        row = _claim(request, key, digest)
        if row is None:
            existing = IdempotentRequest.objects.get(user=request.user, key=key)
            if existing.body_hash != digest:
                raise Conflict(
                    f"This {HEADER} was already used for a different request.",
                    code="idempotency_key_reused",
                )
            if existing.status == 0:
                raise Conflict(
                    f"A request with this {HEADER} is still being processed; try again shortly.",
                    code="idempotency_key_in_progress",
                )
            content_type = PROBLEM_CONTENT_TYPE if existing.status >= 400 else None
            response = Response(
                existing.response_json, status=existing.status, content_type=content_type
            )
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            try:
                response = method(view, request, *args, **kwargs)
            except Exception as exc:
                response = view.handle_exception(exc)  # re-raises what is not an API error
        except BaseException:
            row.delete()
            raise
        if response.status_code >= 500 or response.status_code in NOT_STORED:
            row.delete()
        else:
            row.status = response.status_code
            row.response_json = _storable(
                json.loads(JSONRenderer().render(response.data) or b"null")
            )
            row.save(update_fields=["status", "response_json"])
        return response

    return wrapper
