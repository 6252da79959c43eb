"""RFC 9457 problem details for every API error: `type`, `title`, `status`, `detail`, `code`,
and for validation errors `errors` naming each field."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:crosswalk:problem:"

TITLES = {
    400: "Invalid request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    502: "Bad gateway",
}


class Conflict(exceptions.APIException):
    """The request is well formed but the object's state does not allow it (e.g. retrying a
    posted record), or an Idempotency-Key was reused with another body."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The body is too large."
    default_code = "payload_too_large"


class ErpUnavailable(exceptions.APIException):
    """The ERP could not be read (a catalog refresh, a reconciliation); nothing was changed."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "erp_unavailable"


def import_invalid(messages: list[str]) -> Response:
    """A refused file as problem JSON: each message `where: what` (`row 4, column code: …`,
    `line 3, column 9: …`) becomes an error whose `field` says where."""
    errors = []
    for message in messages:
        where, _, what = message.partition(": ")
        errors.append({"field": where if what else "file", "message": what or message,
                       "code": "invalid"})  # fmt: skip
    noun = "problem" if len(errors) == 1 else "problems"
    return problem(400, code="import_invalid", errors=errors,
                   detail=f"Nothing was imported: the file has {len(errors)} {noun}.")  # fmt: skip


def problem(
    status_code: int,
    *,
    code: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def _field_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested error detail into [{"field", "message", "code"}]."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for name, value in detail.items():
            out += _field_errors(value, f"{prefix}.{name}" if prefix else str(name))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            nested = isinstance(value, dict | list)
            out += _field_errors(value, f"{prefix}[{index}]" if nested else prefix)
        return out
    code = getattr(detail, "code", "invalid") or "invalid"
    return [{"field": prefix or "non_field_errors", "message": str(detail), "code": str(code)}]


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None  # a 500: Django's handler reports it
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(exc.detail)
        noun = "field is" if len(errors) == 1 else "fields are"
        return problem(
            exc.status_code,
            code="validation_error",
            detail=f"{len(errors)} {noun} not valid: "
            + ", ".join(sorted({error["field"] for error in errors}))
            + ".",
            errors=errors,
            headers=headers,
        )
    detail = exc.detail
    code = getattr(detail, "code", None) or exc.default_code
    if exc.status_code == 403 and code == "permission_denied":
        code = "forbidden"
    return problem(exc.status_code, code=str(code), detail=str(detail), headers=headers)


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
    """Any /api/v1/ URL that matches no endpoint: a problem, not the console's HTML 404.

    CSRF-exempt (it changes nothing): otherwise a POST to such a URL, e.g. `/records/-1/retry/`
    (a negative id matches no `<int:pk>` route), got Django's HTML 403 CSRF page instead."""
    from django.http import JsonResponse

    return JsonResponse(
        {
            "type": TYPE_PREFIX + "not_found",
            "title": TITLES[404],
            "status": 404,
            "detail": "No API endpoint at this URL.",
            "code": "not_found",
        },
        status=404,
        content_type=PROBLEM_CONTENT_TYPE,
    )
