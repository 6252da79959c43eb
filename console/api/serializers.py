"""Input and output shapes of the API. Outputs are plain serializers over model instances (or
dicts); inputs validate query strings and bodies before any service is called."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.reverse import reverse

from console.selectors import STATE_GROUPS
from syncengine.models import SyncRecord, SyncState
from syncengine.money import DECIMAL_PLACES, MAX_DIGITS

ERP_NUMBER_MAX_LENGTH = SyncRecord._meta.get_field("erp_document_number").max_length or 64
STATE_FILTER_CHOICES = [*SyncState.values, *STATE_GROUPS]


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details (application/problem+json)."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.ListField(child=serializers.DictField(), required=False)


# --- tokens --------------------------------------------------------------------------------------


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)

    @extend_schema_serializer(component_name="TokenInput")
    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema_serializer(component_name="TokenCreated")
    class Created(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        prefix = serializers.CharField()
        created_at = serializers.DateTimeField()
        token = serializers.CharField(help_text="Shown once: only its hash is stored.")


# --- connections -------------------------------------------------------------------------------


class CircuitSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["closed", "open", "half_open"])
    failures = serializers.IntegerField()
    opened_at = serializers.DateTimeField(allow_null=True)
    retry_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class ConnectionSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    target = serializers.CharField()
    currency = serializers.CharField()
    health = serializers.SerializerMethodField()

    @extend_schema_serializer(component_name="ConnectionHealth")
    class Health(serializers.Serializer):
        circuit = CircuitSerializer()
        counts = serializers.DictField(
            child=serializers.IntegerField(), help_text="Records per state."
        )

    @extend_schema_field(Health)
    def get_health(self, connection: Any) -> dict[str, Any]:
        return self.context["health"][connection.pk]


# --- records -----------------------------------------------------------------------------------


class DocumentSerializer(serializers.Serializer):
    kind = serializers.CharField()
    number = serializers.CharField()
    source_id = serializers.CharField()
    customer_name = serializers.CharField()
    total = serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, allow_null=True
    )


class RecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    connection = serializers.CharField(source="connection.slug")
    document = DocumentSerializer()
    operation = serializers.CharField()
    state = serializers.CharField()
    attempts = serializers.IntegerField()
    erp_document_number = serializers.CharField()
    erp_document_url = serializers.CharField()
    failure_cause = serializers.CharField()
    message = serializers.CharField()
    received_at = serializers.DateTimeField()
    posted_at = serializers.DateTimeField(allow_null=True)
    state_changed_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, record: SyncRecord) -> str:
        return reverse("api:record-detail", args=[record.pk], request=self.context.get("request"))

    class Filters(serializers.Serializer):
        connection = serializers.SlugField(required=False, help_text="Connection slug.")
        state = serializers.ChoiceField(choices=STATE_FILTER_CHOICES, required=False)
        cause = serializers.CharField(required=False, max_length=200)
        q = serializers.CharField(
            required=False, max_length=200, help_text="Document number, ERP number, customer."
        )
        before = serializers.IntegerField(
            required=False, min_value=1, help_text="Keyset cursor: records with a smaller id."
        )


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    detail = serializers.CharField()
    data = serializers.JSONField()


class RecordDetailSerializer(RecordSerializer):
    failure_category = serializers.CharField()
    problems = serializers.JSONField()
    rule_version = serializers.IntegerField(allow_null=True)
    events = serializers.SerializerMethodField()

    @extend_schema_field(EventSerializer(many=True))
    def get_events(self, record: SyncRecord) -> list[dict[str, Any]]:
        return EventSerializer(record.events.order_by("id"), many=True).data  # type: ignore[return-value]


class RecordPageSerializer(serializers.Serializer):
    results = RecordSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class SearchSerializer(serializers.Serializer):
    q = serializers.CharField()
    exact = RecordSerializer(many=True)
    partial = RecordSerializer(many=True)

    class Input(serializers.Serializer):
        q = serializers.CharField(max_length=200)


# --- actions -----------------------------------------------------------------------------------


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class ResolveInput(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
    erp_document_number = serializers.CharField(
        max_length=ERP_NUMBER_MAX_LENGTH, required=False, allow_blank=True, default=""
    )


class BulkRetryInput(serializers.Serializer):
    cause = serializers.CharField(max_length=200, help_text="A failure cause, as listed.")
    state = serializers.ChoiceField(
        choices=[SyncState.BLOCKED, SyncState.FAILED], required=False, allow_blank=True
    )


class BulkRetryOutput(serializers.Serializer):
    queued = serializers.IntegerField()


# --- reconciliations ---------------------------------------------------------------------------


class ReconciliationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    actor = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField()
    posted_source_total = serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    erp_invoice_total = serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    erp_credit_total = serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    difference = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)


class FindingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    record = serializers.IntegerField(source="record_id", allow_null=True)
    key = serializers.CharField()
    document_number = serializers.CharField()
    source_amount = serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, allow_null=True
    )
    erp_amount = serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, allow_null=True
    )
    detail = serializers.CharField()
    action = serializers.CharField()


class ReconciliationDetailSerializer(ReconciliationSerializer):
    findings = serializers.SerializerMethodField()

    @extend_schema_field(FindingSerializer(many=True))
    def get_findings(self, run: Any) -> list[dict[str, Any]]:
        return FindingSerializer(run.findings.order_by("id"), many=True).data  # type: ignore[return-value]


# --- rules -------------------------------------------------------------------------------------


class RuleVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    effective_from = serializers.DateField()
    reason = serializers.CharField()
    published_by = serializers.CharField()
    published_at = serializers.DateTimeField()
    rolled_back_from = serializers.IntegerField(allow_null=True)
    content_hash = serializers.CharField()


class RuleVersionDetailSerializer(RuleVersionSerializer):
    content = serializers.JSONField()


class RuleDiffSerializer(serializers.Serializer):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    changes = serializers.ListField(child=serializers.DictField())

    class Input(serializers.Serializer):
        a = serializers.IntegerField(min_value=1)
        b = serializers.IntegerField(min_value=1)
