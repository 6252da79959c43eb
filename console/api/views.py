"""The API's views: authentication, roles and connection access first (`console.access`), then
one selector or service call, then a serializer.

Order of checks: no role at all → 403; an object on a connection the user cannot see → 404 (its
existence is not revealed); an action the role does not allow → 403.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console import selectors
from console.access import (
    Role,
    connections_for,
    get_connection_for_user,
    get_record_for_user,
    records_for,
    require_role,
)
from console.api import serializers as s
from console.api.authentication import ApiUserRateThrottle, TokenAuthentication
from console.api.errors import (
    PROBLEM_CONTENT_TYPE,
    Conflict,
    ErpUnavailable,
    problem_exception_handler,
)
from console.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from console.api.idempotency import idempotent
from console.api.models import ApiToken
from mappings.diff import ruleset_diff
from mappings.models import RuleVersion
from syncengine import services
from syncengine.erps.base import ConnectorError
from syncengine.models import Connection, ReconciliationRun, SyncRecord
from syncengine.reconcile import reconciliation_run

PAGE_SIZE = 50
RECONCILIATION_RUNS = 20
SEARCH_EXACT = 20
SEARCH_PARTIAL = 50

PROBLEM = OpenApiResponse(s.ProblemSerializer, description="Problem details (RFC 9457).")


def problems(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses, documented with the media type they are sent as."""
    return {(code, PROBLEM_CONTENT_TYPE): PROBLEM for code in codes}


READ_ERRORS = problems(401, 403, 404, 429)
WRITE_ERRORS = {**problems(400, 409), **READ_ERRORS}
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Optional. The same key and body return the first result; another body is 409.",
)


def documented(**kwargs: Any) -> Any:
    """`extend_schema` on drf-spectacular's AutoSchema, whatever DEFAULT_SCHEMA_CLASS was when
    this module was imported (extend_schema would otherwise subclass that setting's class)."""

    def decorator(method: Any) -> Any:
        method.kwargs = {"schema": AutoSchema}
        return extend_schema(**kwargs)(method)

    return decorator


class ApiView(APIView):
    # Token or session authentication, a role needed for everything, problem JSON errors.
    # (A comment, not a docstring: drf-spectacular would copy a docstring into every operation.)

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ApiUserRateThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    schema = AutoSchema()

    def get_exception_handler(self) -> Any:
        return problem_exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        require_role(request.user, *Role.ALL)

    def actor(self) -> str:
        return f"user:{self.request.user.get_username()}"

    def valid(self, serializer_class: type[s.serializers.Serializer], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _conflict(error: ValueError) -> Conflict:
    return Conflict(str(error), code="invalid_state")


# --- tokens --------------------------------------------------------------------------------------


class TokenListView(ApiView):
    @documented(operation_id="tokens_list", responses={200: s.TokenSerializer(many=True),
                                                          **READ_ERRORS})  # fmt: skip
    def get(self, request: Request) -> Response:
        tokens = ApiToken.objects.filter(user=request.user).order_by("-id")
        return Response(s.TokenSerializer(tokens, many=True).data)

    @documented(
        operation_id="tokens_create",
        request=s.TokenSerializer.Input,
        responses={201: s.TokenSerializer.Created, **WRITE_ERRORS},
        description="Create a token for yourself. The token is in this response only. Tokens are "
        "created from a signed-in session (the console), not with another token.",
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            raise exceptions.PermissionDenied(
                "Create tokens from a signed-in session, not with another token."
            )
        data = self.valid(s.TokenSerializer.Input, request.data)
        row, token = ApiToken.issue(user=request.user, name=data["name"])
        body = {"id": row.pk, "name": row.name, "prefix": row.prefix,
                "created_at": row.created_at, "token": token}  # fmt: skip
        return Response(s.TokenSerializer.Created(body).data, status=status.HTTP_201_CREATED)


class TokenDetailView(ApiView):
    @documented(operation_id="tokens_revoke", responses={204: None, **READ_ERRORS})
    def delete(self, request: Request, pk: int) -> Response:
        updated = ApiToken.objects.filter(user=request.user, pk=pk)
        if not updated.exists():
            raise Http404("No such token.")
        updated.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- connections -------------------------------------------------------------------------------


def _circuit_state(connection: Connection, now: datetime) -> str:
    if connection.circuit_retry_at is None:
        return "closed"
    return "open" if connection.circuit_retry_at > now else "half_open"


def _health(connections: list[Connection], now: datetime) -> dict[int, dict[str, Any]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = (
        SyncRecord.objects.filter(connection__in=[c.pk for c in connections])
        .values("connection_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["connection_id"]][row["state"]] = row["n"]
    return {
        connection.pk: {
            "circuit": {
                "state": _circuit_state(connection, now),
                "failures": connection.circuit_failures,
                "opened_at": connection.circuit_opened_at,
                "retry_at": connection.circuit_retry_at,
                "reason": connection.circuit_reason,
            },
            "counts": counts.get(connection.pk, {}),
        }
        for connection in connections
    }


def _connections_response(request: Request, connections: list[Connection], many: bool) -> Any:
    context = {"request": request, "health": _health(connections, timezone.now())}
    serializer = s.ConnectionSerializer(connections if many else connections[0], many=many,
                                        context=context)  # fmt: skip
    return serializer.data


class ConnectionListView(ApiView):
    @documented(operation_id="connections_list",
                   responses={200: s.ConnectionSerializer(many=True), **READ_ERRORS})  # fmt: skip
    def get(self, request: Request) -> Response:
        connections = list(connections_for(request.user).order_by("name"))
        return Response(_connections_response(request, connections, many=True))


class ConnectionDetailView(ApiView):
    @documented(operation_id="connections_retrieve",
                   responses={200: s.ConnectionSerializer, **READ_ERRORS})  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        return Response(_connections_response(request, [connection], many=False))


class ConnectionRetryView(ApiView):
    @documented(
        operation_id="connections_retry_cause",
        request=s.BulkRetryInput,
        responses={200: s.BulkRetryOutput, **WRITE_ERRORS},
        parameters=[IDEMPOTENCY_PARAMETER],
        description="Admin: retry every blocked or failed record of one failure cause.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        require_role(request.user, Role.ADMIN)
        data = self.valid(s.BulkRetryInput, request.data)
        records = selectors.records_filtered(
            connection.records.all(), state=data.get("state", ""), cause=data["cause"]
        )
        queued = services.sync_records_retry_bulk(
            records=records, actor=self.actor(), now=timezone.now()
        )
        return Response({"queued": queued})


# --- records -----------------------------------------------------------------------------------


def _visible_records(request: Request) -> QuerySet[SyncRecord]:
    return records_for(request.user).select_related("connection", "document")


class RecordListView(ApiView):
    @documented(
        operation_id="records_list",
        parameters=[s.RecordSerializer.Filters],
        responses={200: s.RecordPageSerializer, **READ_ERRORS, **problems(400)},
        description=f"Newest first, {PAGE_SIZE} a page; follow `next` (keyset on id, no count).",
    )
    def get(self, request: Request) -> Response:
        filters = self.valid(s.RecordSerializer.Filters, request.query_params)
        records = selectors.records_filtered(
            _visible_records(request),  # type: ignore[arg-type]
            connection=filters.get("connection", ""),
            state=filters.get("state", ""),
            cause=filters.get("cause", ""),
        )
        if "before" in filters:
            records = records.filter(pk__lt=filters["before"])
        # One row more than a page tells whether there is a next page.
        if filters.get("q", "").strip():
            page = records.newest_matching(filters["q"], limit=PAGE_SIZE + 1)
        else:
            page = list(records.order_by("-pk")[: PAGE_SIZE + 1])
        next_url = None
        if len(page) > PAGE_SIZE:
            page = page[:PAGE_SIZE]
            query = request.query_params.copy()
            query["before"] = str(page[-1].pk)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        results = s.RecordSerializer(page, many=True, context={"request": request}).data
        return Response({"results": results, "next": next_url})


class RecordDetailView(ApiView):
    @documented(operation_id="records_retrieve",
                   responses={200: s.RecordDetailSerializer, **READ_ERRORS})  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        record = get_record_for_user(request.user, pk)
        return Response(s.RecordDetailSerializer(record, context={"request": request}).data)


class SearchView(ApiView):
    @documented(
        operation_id="search",
        parameters=[s.SearchSerializer.Input],
        responses={200: s.SearchSerializer, **problems(400), **READ_ERRORS},
        description="Did it land? Exact document-number matches, then partial matches "
        "(document number, ERP number, customer, or total).",
    )
    def get(self, request: Request) -> Response:
        text = self.valid(s.SearchSerializer.Input, request.query_params)["q"].strip()
        visible = _visible_records(request)
        exact = list(visible.filter(document__number=text).order_by("-pk")[:SEARCH_EXACT])
        partial = visible.exclude(  # type: ignore[attr-defined]
            pk__in=[record.pk for record in exact]
        ).newest_matching(text, limit=SEARCH_PARTIAL)
        context = {"request": request}
        return Response({
            "q": text,
            "exact": s.RecordSerializer(exact, many=True, context=context).data,
            "partial": s.RecordSerializer(partial, many=True, context=context).data,
        })  # fmt: skip


class _RecordAction(ApiView):
    def record_for_action(self, pk: int) -> SyncRecord:
        record = get_record_for_user(self.request.user, pk)
        require_role(self.request.user, Role.ADMIN)
        return record

    def done(self, record: SyncRecord) -> Response:
        record.refresh_from_db()
        context = {"request": self.request}
        return Response(s.RecordDetailSerializer(record, context=context).data)


class RecordRetryView(_RecordAction):
    @documented(operation_id="records_retry", request=None, parameters=[IDEMPOTENCY_PARAMETER],
                   responses={200: s.RecordDetailSerializer, **WRITE_ERRORS})  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        record = self.record_for_action(pk)
        try:
            services.sync_record_retry(record=record, actor=self.actor(), now=timezone.now())
        except ValueError as error:
            raise _conflict(error) from error
        return self.done(record)


class RecordCancelView(_RecordAction):
    @documented(operation_id="records_cancel", request=s.CancelInput,
                   parameters=[IDEMPOTENCY_PARAMETER],
                   responses={200: s.RecordDetailSerializer, **WRITE_ERRORS})  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        record = self.record_for_action(pk)
        data = self.valid(s.CancelInput, request.data)
        try:
            services.sync_record_cancel(
                record=record, actor=self.actor(), now=timezone.now(), reason=data["reason"]
            )
        except ValueError as error:
            raise _conflict(error) from error
        return self.done(record)


class RecordResolveView(_RecordAction):
    @documented(operation_id="records_resolve", request=s.ResolveInput,
                   parameters=[IDEMPOTENCY_PARAMETER],
                   responses={200: s.RecordDetailSerializer, **WRITE_ERRORS})  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        record = self.record_for_action(pk)
        data = self.valid(s.ResolveInput, request.data)
        try:
            services.sync_record_resolve_outside(
                record=record,
                actor=self.actor(),
                now=timezone.now(),
                reason=data["reason"],
                erp_document_number=data["erp_document_number"].strip(),
            )
        except ValueError as error:
            raise _conflict(error) from error
        return self.done(record)


class RecordChangeReissueView(_RecordAction):
    @documented(operation_id="records_change_reissue", request=s.ChangeReissueInput,
                parameters=[IDEMPOTENCY_PARAMETER],
                responses={200: s.RecordDetailSerializer, **WRITE_ERRORS})  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        record = self.record_for_action(pk)
        data = self.valid(s.ChangeReissueInput, request.data)
        try:
            services.sync_record_change_reissue(
                record=record, actor=self.actor(), now=timezone.now(), reason=data["reason"]
            )
        except ValueError as error:
            raise _conflict(error) from error
        return self.done(record)


class RecordChangeIgnoreView(_RecordAction):
    @documented(operation_id="records_change_ignore", request=s.ChangeIgnoreInput,
                parameters=[IDEMPOTENCY_PARAMETER],
                responses={200: s.RecordDetailSerializer, **WRITE_ERRORS})  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        record = self.record_for_action(pk)
        data = self.valid(s.ChangeIgnoreInput, request.data)
        try:
            services.sync_record_change_ignore(
                record=record, actor=self.actor(), now=timezone.now(), reason=data["reason"]
            )
        except ValueError as error:
            raise _conflict(error) from error
        return self.done(record)


# --- reconciliations ---------------------------------------------------------------------------


class ReconciliationListView(ApiView):
    @documented(
        operation_id="reconciliations_list",
        responses={200: s.ReconciliationSerializer(many=True), **READ_ERRORS},
        description=f"The latest {RECONCILIATION_RUNS} runs, newest first.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        runs = ReconciliationRun.objects.filter(connection=connection).order_by(
            "-started_at", "-id"
        )[:RECONCILIATION_RUNS]
        return Response(s.ReconciliationSerializer(runs, many=True).data)

    @documented(
        operation_id="reconciliations_run",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.ReconciliationDetailSerializer, **problems(502), **WRITE_ERRORS},
        description="Admin: reconcile now, as the console's \"Run now\": the ERP's documents "
        "against what was posted; what can be re-driven is. The run with its findings. An ERP "
        "that cannot be read is 502 `erp_unavailable` and no run is recorded.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        require_role(request.user, Role.ADMIN)  # after the 404, as everywhere
        try:
            run = reconciliation_run(connection=connection, actor=self.actor(), now=timezone.now())
        except ConnectorError as error:
            raise ErpUnavailable(
                f"The ERP could not be read; nothing was compared. {error}"
            ) from error
        return Response(s.ReconciliationDetailSerializer(run).data, status=status.HTTP_201_CREATED)


class ReconciliationDetailView(ApiView):
    @documented(operation_id="reconciliations_retrieve",
                   responses={200: s.ReconciliationDetailSerializer, **READ_ERRORS})  # fmt: skip
    def get(self, request: Request, slug: str, pk: int) -> Response:
        connection = get_connection_for_user(request.user, slug)
        run = ReconciliationRun.objects.filter(connection=connection, pk=pk).first()
        if run is None:
            raise Http404("No such reconciliation run.")
        return Response(s.ReconciliationDetailSerializer(run).data)


# --- rules -------------------------------------------------------------------------------------


def _version(connection: Connection, number: int) -> RuleVersion:
    version = RuleVersion.objects.filter(connection=connection, number=number).first()
    if version is None:
        raise Http404(f"No rule version {number}.")
    return version


class RuleVersionListView(ApiView):
    @documented(operation_id="rules_versions_list",
                   responses={200: s.RuleVersionSerializer(many=True), **READ_ERRORS})  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        versions = RuleVersion.objects.filter(connection=connection).order_by("-number")
        return Response(s.RuleVersionSerializer(versions, many=True).data)


class RuleVersionDetailView(ApiView):
    @documented(operation_id="rules_versions_retrieve",
                   responses={200: s.RuleVersionDetailSerializer, **READ_ERRORS})  # fmt: skip
    def get(self, request: Request, slug: str, number: int) -> Response:
        connection = get_connection_for_user(request.user, slug)
        return Response(s.RuleVersionDetailSerializer(_version(connection, number)).data)


class RuleDiffView(ApiView):
    @documented(
        operation_id="rules_diff",
        parameters=[s.RuleDiffSerializer.Input],
        responses={200: s.RuleDiffSerializer, **problems(400), **READ_ERRORS},
        description="What changed from version `a` to version `b`.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_user(request.user, slug)
        numbers = self.valid(s.RuleDiffSerializer.Input, request.query_params)
        before = _version(connection, numbers["a"])
        after = _version(connection, numbers["b"])
        changes = [change.to_dict() for change in ruleset_diff(before.content, after.content)]
        return Response({"a": before.number, "b": after.number, "changes": changes})
