"""The posting-rules endpoints under /api/v1/connections/<slug>/rules/: the draft and its edits
(map rows, routing, defaults, dimensions, numbering, field owners), its changes against the rules
in force, checks, preview, impact, publish, rollback, the rule history, imports (JSON, or one map
or the routing as CSV, through `services.draft_import` like `manage.py rules import`) and export.
Thin views over the services and selectors the console's rules editor calls (`mappings.services`,
`mappings.preview`, `mappings.transfer`, `console.rules_selectors`).

Access mirrors console/rules_views.py: everyone on the connection reads (Admin, Finance, AR); only
Admin and Finance change anything (403 for AR, after the 404 for a connection the user cannot
see). The draft's sub-resources are a 404 while the connection has no draft.

Service errors become problems: an edit the rule set cannot take is 400 `rules_invalid`; a
publish or rollback that validation refuses is 409 `publish_refused` with the errors by subject;
any other `RulesError` (the state moved on) is 409 `rules_refused`. The service's own words are in
`detail`.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from console import rules_selectors as selectors
from console.access import Role, get_connection_for_user, require_role
from console.api import serializers as s
from console.api.errors import PayloadTooLarge, import_invalid, problem
from console.api.idempotency import idempotent
from console.api.paging import keyset_page
from console.api.views import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    WRITE_ERRORS,
    ApiView,
    documented,
    problems,
)
from mappings import preview, transfer
from mappings import services as rules
from mappings.models import RuleDraft, RuleVersion
from mappings.ruleset import MAP_KINDS
from syncengine.models import Connection, SourceDocument

EDITORS = (Role.ADMIN, Role.FINANCE)
EDIT_ERRORS = {**WRITE_ERRORS, **problems(400)}
REASON_PARAMETER = OpenApiParameter(
    "reason", str, OpenApiParameter.QUERY, description="Why; kept in the rule history."
)


class RulesRefused(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "rules_refused"


class RulesInvalid(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "rules_invalid"


def _publish_refused(refused: rules.PublishRefused) -> Response:
    errors = [
        {"field": issue.subject, "message": issue.message, "code": issue.code}
        for issue in refused.issues
        if issue.severity == "ERROR"
    ]
    return problem(409, code="publish_refused", detail=str(refused), errors=errors)


def _draft_or_404(connection: Connection) -> RuleDraft:
    draft = RuleDraft.objects.select_related("base_version").filter(connection=connection).first()
    if draft is None:
        raise Http404("There is no draft: start one with POST …/rules/draft/.")
    return draft


def _version(connection: Connection, number: int) -> RuleVersion:
    version = RuleVersion.objects.filter(connection=connection, number=number).first()
    if version is None:
        raise Http404(f"No rule version {number}.")
    return version


def _map_kind(kind: str) -> str:
    if kind not in MAP_KINDS:
        raise Http404(f"No such map; the maps are {', '.join(MAP_KINDS)}.")
    return kind


class _RulesView(ApiView):
    def readable(self, slug: str) -> Connection:
        return get_connection_for_user(self.request.user, slug)

    def editable(self, slug: str) -> Connection:
        # 404 before 403: a connection the user cannot see is not revealed by the role check.
        connection = get_connection_for_user(self.request.user, slug)
        require_role(self.request.user, *EDITORS)
        return connection

    def draft_response(self, draft: RuleDraft, code: int = status.HTTP_200_OK) -> Response:
        draft = RuleDraft.objects.select_related("base_version").get(pk=draft.pk)
        return Response(s.RuleDraftSerializer(draft).data, status=code)

    def imported(
        self, connection: Connection, *, map_kind: str | None = None, routing: bool = False
    ) -> Response:
        """Import the request's body (a rules file, as bytes) into the draft."""
        reason = self.valid(s.ImportInput, self.request.query_params)["reason"]
        body = self.request.data if isinstance(self.request.data, bytes) else b""
        try:
            result = rules.draft_import(
                connection=connection, data=body, source="through the API", map_kind=map_kind,
                routing=routing, actor=self.actor(), now=timezone.now(), reason=reason,
            )  # fmt: skip
        except transfer.TransferError as error:
            return import_invalid(error.errors)
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.draft_response(result.draft)


# --- the draft ---------------------------------------------------------------------------------


class DraftView(_RulesView):
    @documented(operation_id="rules_draft_retrieve",
                responses={200: s.RuleDraftSerializer, **READ_ERRORS})  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.RuleDraftSerializer(_draft_or_404(self.readable(slug))).data)

    @documented(
        operation_id="rules_draft_start",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, 201: s.RuleDraftSerializer, **WRITE_ERRORS},
        description="Admin, Finance: start the draft from the latest version (201), or return "
        "the draft already open (200).",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = self.editable(slug)
        existed = RuleDraft.objects.filter(connection=connection).exists()
        with transaction.atomic():  # `draft_for_update` locks the draft and wants a transaction
            draft = rules.draft_for_update(
                connection=connection, actor=self.actor(), now=timezone.now()
            )
        return self.draft_response(
            draft, status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        )

    @documented(
        operation_id="rules_draft_replace",
        request=s.DraftReplaceInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: replace the whole rule set of the draft (started if need be).",
    )
    def put(self, request: Request, slug: str) -> Response:
        connection = self.editable(slug)
        data = self.valid(s.DraftReplaceInput, request.data)
        try:
            draft = rules.draft_replace(connection=connection, content=data["content"],
                                        actor=self.actor(), now=timezone.now(),
                                        reason=data["reason"])  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.draft_response(draft)


class DraftDiscardView(_RulesView):
    @documented(
        operation_id="rules_draft_discard",
        request=s.RequiredReasonInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={204: None, **WRITE_ERRORS},
        description="Admin, Finance: throw the draft away; the rules in force are unchanged.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = self.editable(slug)
        _draft_or_404(connection)
        data = self.valid(s.RequiredReasonInput, request.data)
        try:
            rules.draft_discard(connection=connection, actor=self.actor(), now=timezone.now(),
                                reason=data["reason"])  # fmt: skip
        except rules.RulesError as error:
            raise RulesRefused(str(error)) from error
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- edits -------------------------------------------------------------------------------------


class _EditView(_RulesView):
    def edit(
        self, slug: str, serializer: type[s.serializers.Serializer]
    ) -> tuple[Connection, dict[str, Any]]:
        connection = self.editable(slug)
        return connection, self.valid(serializer, self.request.data)

    def edited(self, draft: Any, code: int = status.HTTP_200_OK) -> Response:
        return self.draft_response(draft, code)


class MapRowView(_EditView):
    @documented(
        operation_id="rules_draft_map_row_set",
        request=s.MapRowInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: map one source value (add it, or replace its row).",
    )
    def put(self, request: Request, slug: str, kind: str) -> Response:
        connection, data = self.edit(slug, s.MapRowInput)
        try:
            draft = rules.draft_map_row_set(
                connection=connection, map_kind=_map_kind(kind), source_value=data["source"],
                targets=data["targets"], actor=self.actor(), now=timezone.now(),
                reason=data["reason"],
            )  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft)


class MapRowDeleteView(_EditView):
    @documented(
        operation_id="rules_draft_map_row_delete",
        request=s.MapRowDeleteInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: remove one source value from the map.",
    )
    @idempotent
    def post(self, request: Request, slug: str, kind: str) -> Response:
        connection, data = self.edit(slug, s.MapRowDeleteInput)
        try:
            draft = rules.draft_map_row_delete(
                connection=connection, map_kind=_map_kind(kind), source_value=data["source"],
                actor=self.actor(), now=timezone.now(), reason=data["reason"],
            )  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft)


class _RoutingSetView(_EditView):
    def set_rule(self, slug: str, rule_id: int | None, code: int) -> Response:
        connection, data = self.edit(slug, s.RoutingRuleInput)
        try:
            draft = rules.draft_routing_rule_set(
                connection=connection, rule_id=rule_id, conditions=data["conditions"],
                account=data["account"], priority=data["priority"], note=data["note"],
                actor=self.actor(), now=timezone.now(), reason=data["reason"],
            )  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft, code)


class RoutingListView(_RoutingSetView):
    @documented(
        operation_id="rules_draft_routing_add",
        request=s.RoutingRuleInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: add a GL routing rule; it gets the next unused id.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        return self.set_rule(slug, None, status.HTTP_201_CREATED)


class RoutingDetailView(_RoutingSetView):
    @documented(
        operation_id="rules_draft_routing_set",
        request=s.RoutingRuleInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: replace routing rule `rule_id`.",
    )
    def put(self, request: Request, slug: str, rule_id: int) -> Response:
        return self.set_rule(slug, rule_id, status.HTTP_200_OK)


class RoutingDeleteView(_EditView):
    @documented(
        operation_id="rules_draft_routing_delete",
        request=s.ReasonInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: remove routing rule `rule_id` (ids are never reused).",
    )
    @idempotent
    def post(self, request: Request, slug: str, rule_id: int) -> Response:
        connection, data = self.edit(slug, s.ReasonInput)
        try:
            draft = rules.draft_routing_rule_delete(
                connection=connection, rule_id=rule_id, actor=self.actor(), now=timezone.now(),
                reason=data["reason"],
            )  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft)


class DefaultsView(_EditView):
    @documented(
        operation_id="rules_draft_defaults_set",
        request=s.DefaultsInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: change the defaults that are sent; the others stay.",
    )
    def patch(self, request: Request, slug: str) -> Response:
        connection, data = self.edit(slug, s.DefaultsInput)
        reason = data.pop("reason")
        try:
            draft = rules.draft_defaults_set(connection=connection, defaults=data,
                                             actor=self.actor(), now=timezone.now(),
                                             reason=reason)  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft)


class _ItemSetView(_EditView):
    """PUT one keyed item of a list section (a dimension setting, a numbering rule, a field
    owner): the body is the item and a `reason`."""

    input: type[s.serializers.Serializer]

    def set_item(self, slug: str) -> Response:
        connection, data = self.edit(slug, self.input)
        reason = data.pop("reason")
        try:
            draft = self.service(connection=connection, item=data, actor=self.actor(),
                                 now=timezone.now(), reason=reason)  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft)

    def service(self, *, item: dict[str, Any], **kwargs: Any) -> RuleDraft:
        raise NotImplementedError


class DimensionView(_ItemSetView):
    input = s.DimensionSettingInput

    @documented(
        operation_id="rules_draft_dimension_set",
        request=s.DimensionSettingInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: set how one ERP dimension is filled (add it, or replace "
        "its setting).",
    )
    def put(self, request: Request, slug: str) -> Response:
        return self.set_item(slug)

    def service(self, *, item: dict[str, Any], **kwargs: Any) -> RuleDraft:
        return rules.draft_dimension_set(setting=item, **kwargs)


class NumberingView(_ItemSetView):
    input = s.NumberingRuleInput

    @documented(
        operation_id="rules_draft_numbering_set",
        request=s.NumberingRuleInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: set the numbering rule of one entity (add or replace).",
    )
    def put(self, request: Request, slug: str) -> Response:
        return self.set_item(slug)

    def service(self, *, item: dict[str, Any], **kwargs: Any) -> RuleDraft:
        return rules.draft_numbering_rule_set(rule=item, **kwargs)


class OwnershipView(_ItemSetView):
    input = s.FieldOwnerInput

    @documented(
        operation_id="rules_draft_ownership_set",
        request=s.FieldOwnerInput,
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: say which side owns one field of an entity.",
    )
    def put(self, request: Request, slug: str) -> Response:
        return self.set_item(slug)

    def service(self, *, item: dict[str, Any], **kwargs: Any) -> RuleDraft:
        return rules.draft_field_owner_set(**item, **kwargs)


class _ItemDeleteView(_EditView):
    input: type[s.serializers.Serializer]

    def delete_item(self, slug: str) -> Response:
        connection, data = self.edit(slug, self.input)
        reason = data.pop("reason")
        try:
            draft = self.service(connection=connection, actor=self.actor(), now=timezone.now(),
                                 reason=reason, **data)  # fmt: skip
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return self.edited(draft)

    def service(self, **kwargs: Any) -> RuleDraft:
        raise NotImplementedError


class DimensionDeleteView(_ItemDeleteView):
    input = s.DimensionDeleteInput

    @documented(
        operation_id="rules_draft_dimension_delete",
        request=s.DimensionDeleteInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: remove the setting of one dimension.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        return self.delete_item(slug)

    def service(self, **kwargs: Any) -> RuleDraft:
        return rules.draft_dimension_delete(**kwargs)


class NumberingDeleteView(_ItemDeleteView):
    input = s.NumberingDeleteInput

    @documented(
        operation_id="rules_draft_numbering_delete",
        request=s.NumberingDeleteInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: remove the numbering rule of one entity.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        return self.delete_item(slug)

    def service(self, **kwargs: Any) -> RuleDraft:
        return rules.draft_numbering_rule_delete(**kwargs)


class OwnershipDeleteView(_ItemDeleteView):
    input = s.FieldOwnerDeleteInput

    @documented(
        operation_id="rules_draft_ownership_delete",
        request=s.FieldOwnerDeleteInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **EDIT_ERRORS},
        description="Admin, Finance: forget who owns one field.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        return self.delete_item(slug)

    def service(self, **kwargs: Any) -> RuleDraft:
        return rules.draft_field_owner_delete(**kwargs)


# --- the draft against the rules in force, and the rule history ---------------------------------

HISTORY_PAGE_SIZE = 50


class DraftDiffView(_RulesView):
    @documented(
        operation_id="rules_draft_diff",
        responses={200: s.DraftDiffSerializer, **READ_ERRORS},
        description="What publishing the draft would change: the draft against the version in "
        "force today, as the console's review page shows it.",
    )
    def get(self, request: Request, slug: str) -> Response:
        state = selectors.rules_state(connection=self.readable(slug), now=timezone.now())
        if state.draft is None:
            raise Http404("There is no draft: start one with POST …/rules/draft/.")
        return Response({
            "in_force": state.in_force.number if state.in_force else None,
            "base_version": state.base_number,
            "changes": [change.to_dict() for change in selectors.draft_changes(state)],
        })  # fmt: skip


class HistoryView(_RulesView):
    @documented(
        operation_id="rules_history",
        parameters=[s.RuleHistoryInput],
        responses={200: s.RuleAuditPageSerializer, **problems(400), **READ_ERRORS},
        description=f"Who changed a rule (`subject`), when, before, after and why: the rule "
        f"history, newest first, {HISTORY_PAGE_SIZE} a page.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = self.readable(slug)
        query = self.valid(s.RuleHistoryInput, request.query_params)
        rows = selectors.rule_audit(connection=connection, subject=query["subject"])
        page, next_url = keyset_page(
            request, rows, size=HISTORY_PAGE_SIZE, cursor="before", descending=True
        )
        return Response({"results": s.RuleAuditSerializer(page, many=True).data,
                         "next": next_url})  # fmt: skip


# --- checks, preview, impact -------------------------------------------------------------------


class DraftValidateView(_RulesView):
    @documented(
        operation_id="rules_draft_validate",
        responses={200: s.RuleIssueSerializer(many=True), **READ_ERRORS},
        description="The checks publishing runs: errors block it, warnings do not.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = self.readable(slug)
        _draft_or_404(connection)
        try:
            issues = rules.draft_validate(connection=connection, now=timezone.now())
        except rules.RulesError as error:
            raise RulesRefused(str(error)) from error
        return Response(s.RuleIssueSerializer(issues, many=True).data)


class DraftPreviewView(_RulesView):
    @documented(
        operation_id="rules_draft_preview",
        parameters=[s.PreviewInput],
        responses={200: s.PreviewSerializer, **problems(400, 409), **READ_ERRORS},
        description="Invoices coded under the draft and under the version in force on their "
        "date, side by side: one `document`, or the `last` N received (50 by default).",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = self.readable(slug)
        _draft_or_404(connection)
        query = self.valid(s.PreviewInput, request.query_params)
        try:
            if "document" in query:
                document = SourceDocument.objects.filter(connection=connection,
                                                         pk=query["document"]).first()  # fmt: skip
                if document is None:
                    raise Http404("No such document on this connection.")
                previews = preview.preview_documents(connection=connection, documents=[document])
            else:
                previews = preview.preview_recent(connection=connection, limit=query["last"])
        except rules.RulesError as error:
            raise RulesInvalid(str(error)) from error
        return Response({
            "summary": preview.preview_summary(previews),
            "documents": [item.to_dict() for item in previews],
        })  # fmt: skip


class DraftImpactView(_RulesView):
    @documented(
        operation_id="rules_draft_impact",
        responses={200: s.ImpactSerializer, **problems(409), **READ_ERRORS},
        description="Which blocked (and coding-failed) records publishing the draft would fix.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = self.readable(slug)
        _draft_or_404(connection)
        try:
            impact = preview.draft_impact(connection=connection)
        except rules.RulesError as error:
            raise RulesRefused(str(error)) from error
        return Response(impact.to_dict())


# --- publish, rollback, after publishing -------------------------------------------------------


class DraftPublishView(_RulesView):
    @documented(
        operation_id="rules_draft_publish",
        request=s.PublishInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.RuleVersionSerializer, **WRITE_ERRORS},
        description="Admin, Finance: validate the draft and publish it as the next version, in "
        "force for documents dated from `effective_from`. Validation errors: 409 "
        "`publish_refused`, each error under `errors` with its subject as `field`.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = self.editable(slug)
        _draft_or_404(connection)
        data = self.valid(s.PublishInput, request.data)
        try:
            version = rules.draft_publish(
                connection=connection, effective_from=data["effective_from"],
                reason=data["reason"], actor=self.actor(), now=timezone.now(),
            )  # fmt: skip
        except rules.PublishRefused as refused:
            return _publish_refused(refused)
        except rules.RulesError as error:
            raise RulesRefused(str(error)) from error
        return Response(s.RuleVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionRollbackView(_RulesView):
    @documented(
        operation_id="rules_versions_rollback",
        request=s.PublishInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.RuleVersionSerializer, **WRITE_ERRORS},
        description="Admin, Finance: publish version `number`'s rules again, as a new version "
        "in force from `effective_from`. Validated like a publish.",
    )
    @idempotent
    def post(self, request: Request, slug: str, number: int) -> Response:
        connection = self.editable(slug)
        _version(connection, number)
        data = self.valid(s.PublishInput, request.data)
        try:
            version = rules.version_rollback(
                connection=connection, number=number, effective_from=data["effective_from"],
                reason=data["reason"], actor=self.actor(), now=timezone.now(),
            )  # fmt: skip
        except rules.PublishRefused as refused:
            return _publish_refused(refused)
        except rules.RulesError as error:
            raise RulesRefused(str(error)) from error
        return Response(s.RuleVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionFixedView(_RulesView):
    @documented(
        operation_id="rules_versions_fixed",
        responses={200: s.FixedRecordsSerializer, **READ_ERRORS},
        description="Ids of the blocked records this version fixes now that it is in force.",
    )
    def get(self, request: Request, slug: str, number: int) -> Response:
        connection = self.readable(slug)
        version = _version(connection, number)
        fixed = preview.records_fixed_by(connection=connection, version=version)
        return Response({"version": version.number, "records": fixed})


class VersionRetryFixedView(_RulesView):
    @documented(
        operation_id="rules_versions_retry_fixed",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.QueuedSerializer, **WRITE_ERRORS},
        description="Admin, Finance: retry exactly the records this version fixes, worked out "
        "again now (a record retried since is not queued twice).",
    )
    @idempotent
    def post(self, request: Request, slug: str, number: int) -> Response:
        connection = self.editable(slug)
        version = _version(connection, number)
        # Two calls, as in the console: `impact_retry` takes ids so it can serve any list.
        fixed = preview.records_fixed_by(connection=connection, version=version)
        queued = preview.impact_retry(
            connection=connection, record_ids=fixed, actor=self.actor(), now=timezone.now()
        )
        return Response({"queued": queued})


# --- import and export -------------------------------------------------------------------------


class RawBodyParser(BaseParser):
    """The body as bytes, as the file was sent, so import errors can name its lines and columns.
    Bounded like a webhook body (`CROSSWALK_MAX_PAYLOAD_BYTES`)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> bytes:  # fmt: skip
        from django.conf import settings

        limit = settings.CROSSWALK_MAX_PAYLOAD_BYTES
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise PayloadTooLarge(f"The file is larger than {limit} bytes.")
        return bytes(data)


class CsvBodyParser(RawBodyParser):
    media_type = "text/csv"


IMPORT_ERRORS = {**problems(413, 415), **EDIT_ERRORS}


class DraftImportView(_RulesView):
    parser_classes = [RawBodyParser]

    @documented(
        operation_id="rules_draft_import",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[REASON_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **IMPORT_ERRORS},
        description="Admin, Finance: replace the draft with a rules file (the body, as written "
        "by the export). All or nothing; every problem is listed under `errors` with where it "
        "is (`line 3, column 9`, or a path such as `rules.maps.SERVICE_LINE.HVAC`).",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        return self.imported(self.editable(slug))


class MapImportView(_RulesView):
    parser_classes = [CsvBodyParser]

    @documented(
        operation_id="rules_draft_map_import",
        request={"text/csv": OpenApiTypes.STR},
        parameters=[REASON_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **IMPORT_ERRORS},
        description="Admin, Finance: replace one map of the draft with a CSV file (as the "
        "export writes it); the rest of the draft stays. All or nothing; every problem is "
        "listed under `errors` with its row and column (`row 4, column revenue_account`).",
    )
    @idempotent
    def post(self, request: Request, slug: str, kind: str) -> Response:
        connection = self.editable(slug)
        return self.imported(connection, map_kind=_map_kind(kind))


class RoutingImportView(_RulesView):
    parser_classes = [CsvBodyParser]

    @documented(
        operation_id="rules_draft_routing_import",
        request={"text/csv": OpenApiTypes.STR},
        parameters=[REASON_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses={200: s.RuleDraftSerializer, **IMPORT_ERRORS},
        description="Admin, Finance: replace the draft's GL routing rules with a CSV file; the "
        "rest of the draft stays. All or nothing, problems by row and column.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        return self.imported(self.editable(slug), routing=True)


class _JsonForErrors(BaseContentNegotiation):
    """The export answers in its own media type (JSON or CSV) whatever `Accept` says, and its
    errors in problem JSON: never a 406."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        renderer: BaseRenderer = renderers[0]
        return renderer, renderer.media_type


class ExportView(_RulesView):
    content_negotiation_class = _JsonForErrors

    @documented(
        operation_id="rules_export",
        parameters=[s.ExportInput],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            **problems(400),
            **READ_ERRORS,
        },
        description="The draft (or `version`) as a rules file: the whole rule set as JSON, "
        "one `map` as CSV, or the `routing` rules as CSV. The imports take each back unchanged.",
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        connection = self.readable(slug)
        query = self.valid(s.ExportInput, request.query_params)
        if "version" in query:
            version = _version(connection, query["version"])
            content, number, effective = version.content, version.number, version.effective_from
        else:
            content, number, effective = _draft_or_404(connection).content, None, None
        if "map" in query:
            rows = content.get("maps", {}).get(query["map"], {})
            text = transfer.map_to_csv(kind=query["map"], rows=rows)
            return HttpResponse(text, content_type="text/csv; charset=utf-8")
        if query["routing"]:
            text = transfer.routing_to_csv(rules=content.get("routing", []))
            return HttpResponse(text, content_type="text/csv; charset=utf-8")
        text = transfer.ruleset_to_json(content=content, connection=connection.slug,
                                        version=number, effective_from=effective)  # fmt: skip
        return HttpResponse(text, content_type="application/json")
