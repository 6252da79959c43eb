"""Input and output shapes of the API. Outputs are plain serializers over model instances (or
dicts); inputs validate query strings and bodies before any service is called."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.reverse import reverse

from console.selectors import STATE_GROUPS
from mappings.models import RuleAudit
from mappings.ruleset import (
    DIMENSION_SOURCES,
    MAP_KINDS,
    NUMBERING_ENTITIES,
    OWNED_ENTITIES,
    OWNERS,
    CatalogKind,
)
from syncengine.models import SyncRecord, SyncState
from syncengine.money import DECIMAL_PLACES, MAX_DIGITS

ERP_NUMBER_MAX_LENGTH = SyncRecord._meta.get_field("erp_document_number").max_length or 64
STATE_FILTER_CHOICES = [*SyncState.values, *STATE_GROUPS]
CATALOG_KINDS = list(CatalogKind.ALL)
MAP_KIND_KEYS = list(MAP_KINDS)


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


class ChangeIgnoreInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ChangeReissueInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


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


class RuleIssueSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=["ERROR", "WARNING"])
    code = serializers.CharField()
    subject = serializers.CharField(help_text="Where in the rule set, e.g. maps.SERVICE_LINE.HVAC.")
    message = serializers.CharField()
    documents = serializers.IntegerField(help_text="Recent documents the issue affects.")


class RuleDraftSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(
        source="base_version.number", allow_null=True, default=None,
        help_text="The version the draft started from; null when there was none.",
    )  # fmt: skip
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField()
    content = serializers.JSONField(help_text="The rule set (docs/rules-format.md).")


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, default="",
        help_text="Why; kept in the rule history.",
    )  # fmt: skip


class RequiredReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, help_text="Why; kept in the rule history.")


def _no_nul(value: Any, path: str = "content") -> None:
    """PostgreSQL cannot store a NUL character in a JSON document; say where it is."""
    if isinstance(value, str) and "\x00" in value:
        raise serializers.ValidationError(f"{path}: contains a NUL character.")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, path)
            _no_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_nul(item, f"{path}[{index}]")


class DraftReplaceInput(ReasonInput):
    content = serializers.DictField(
        help_text="The whole rule set; replaces the draft's.", validators=[_no_nul]
    )


class MapRowInput(ReasonInput):
    source = serializers.CharField(max_length=200, help_text="The source value, e.g. HVAC.")
    targets = serializers.DictField(
        child=serializers.CharField(max_length=200, allow_blank=True),
        help_text='Target field → code, e.g. {"revenue_account": "4010"}.',
    )


class MapRowDeleteInput(ReasonInput):
    source = serializers.CharField(max_length=200)


class RoutingRuleInput(ReasonInput):
    conditions = serializers.DictField(
        child=serializers.CharField(max_length=200), required=False, default=dict,
        help_text="Routing attribute → value; an attribute left out is not tested.",
    )  # fmt: skip
    account = serializers.CharField(max_length=200)
    priority = serializers.IntegerField(
        required=False, default=0, min_value=-1_000_000, max_value=1_000_000
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DefaultsInput(ReasonInput):
    receivable_account = serializers.CharField(max_length=200, required=False, allow_blank=True)
    revenue_account = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tax_account = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tax_code_source = serializers.CharField(max_length=200, required=False, allow_blank=True)


class PublishInput(RequiredReasonInput):
    effective_from = serializers.DateField(
        help_text="Documents dated from this day on are coded with the new version."
    )


class PreviewInput(serializers.Serializer):
    document = serializers.IntegerField(
        required=False, min_value=1, help_text="One source document (its id) of the connection."
    )
    last = serializers.IntegerField(
        required=False, min_value=1, max_value=200, default=50,
        help_text="Otherwise the last N invoices received.",
    )  # fmt: skip


class DocumentPreviewSerializer(serializers.Serializer):
    document_id = serializers.IntegerField(allow_null=True)
    number = serializers.CharField()
    transaction_date = serializers.DateField()
    customer_name = serializers.CharField(allow_blank=True)
    total = serializers.CharField(help_text="Decimal as a string.")
    version_before = serializers.IntegerField(allow_null=True)
    outcome = serializers.ChoiceField(
        choices=["unchanged", "changed", "newly_fixed", "newly_broken", "still_blocked"]
    )
    changed = serializers.BooleanField()
    newly_fixed = serializers.BooleanField()
    newly_broken = serializers.BooleanField()
    before = serializers.JSONField(help_text='{"plan": {...} or null, "problems": [...]}')
    after = serializers.JSONField(help_text='{"plan": {...} or null, "problems": [...]}')
    lines = serializers.ListField(child=serializers.DictField())
    header = serializers.ListField(child=serializers.DictField())


class PreviewSerializer(serializers.Serializer):
    summary = serializers.DictField(child=serializers.IntegerField())
    documents = DocumentPreviewSerializer(many=True)


class ImpactRecordSerializer(serializers.Serializer):
    record_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    number = serializers.CharField()
    state = serializers.CharField()
    failure_category = serializers.CharField(allow_blank=True)
    problems = serializers.ListField(child=serializers.DictField())


class ImpactSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    fixed = ImpactRecordSerializer(many=True)
    still_blocked = ImpactRecordSerializer(many=True)
    fixable_now = ImpactRecordSerializer(many=True)
    failures_ignored = serializers.IntegerField()


class FixedRecordsSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    records = serializers.ListField(child=serializers.IntegerField())


# Bounds of the numbers a rule holds: wide enough for any real numbering range, and kept within
# what every JSON reader takes as an exact integer.
RULE_INTEGER_MAX = 2**31 - 1


# Numbering and field ownership both have an `entity` with its own choices: written inline, so
# drf-spectacular does not have to invent two enum component names for one field name.
@extend_schema_field({"type": "string", "enum": list(NUMBERING_ENTITIES)})
class NumberingEntityField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=list(NUMBERING_ENTITIES), **kwargs)


@extend_schema_field({"type": "string", "enum": list(OWNED_ENTITIES)})
class OwnedEntityField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=list(OWNED_ENTITIES), **kwargs)


class DimensionSettingInput(ReasonInput):
    dimension = serializers.CharField(max_length=50, help_text="The ERP dimension code.")
    source = serializers.ChoiceField(
        choices=list(DIMENSION_SOURCES), help_text="The source attribute that feeds it."
    )
    values = serializers.DictField(
        child=serializers.CharField(max_length=200), required=False, default=dict,
        validators=[_no_nul], help_text="Source value → dimension value.",
    )  # fmt: skip
    default = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    pass_through = serializers.BooleanField(required=False, default=False)
    required = serializers.BooleanField(required=False, default=False)
    customer_default = serializers.BooleanField(
        required=False, default=False, help_text="Also the default dimension of a customer the "
        "connector creates (Business Central); only for a dimension filled from the document.",
    )  # fmt: skip


class DimensionDeleteInput(ReasonInput):
    dimension = serializers.CharField(max_length=50)


class NumberingRuleInput(ReasonInput):
    entity = NumberingEntityField()
    prefix = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    start = serializers.IntegerField(min_value=0, max_value=RULE_INTEGER_MAX)
    end = serializers.IntegerField(min_value=0, max_value=RULE_INTEGER_MAX)
    width = serializers.IntegerField(required=False, default=0, min_value=0, max_value=50)


class NumberingDeleteInput(ReasonInput):
    entity = NumberingEntityField()


class FieldOwnerInput(ReasonInput):
    entity = OwnedEntityField()
    field = serializers.CharField(max_length=100, help_text="The field, e.g. tax_code.")
    owner = serializers.ChoiceField(choices=list(OWNERS))


class FieldOwnerDeleteInput(ReasonInput):
    entity = OwnedEntityField()
    field = serializers.CharField(max_length=100)


class ChangeSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Where, e.g. maps.SERVICE_LINE.HVAC.revenue_account.")
    change = serializers.ChoiceField(choices=["added", "removed", "changed"])
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class DraftDiffSerializer(serializers.Serializer):
    in_force = serializers.IntegerField(
        allow_null=True, help_text="The version in force today; null when there is none."
    )
    base_version = serializers.IntegerField(
        allow_null=True, help_text="The version the draft started from."
    )
    changes = ChangeSerializer(many=True)


class RuleAuditSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.ChoiceField(choices=RuleAudit.Action.values)
    subject = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class RuleAuditPageSerializer(serializers.Serializer):
    results = RuleAuditSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class RuleHistoryInput(serializers.Serializer):
    subject = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="",
        help_text="One rule, e.g. maps.SERVICE_LINE.HVAC or routing.7 (compared ignoring case); "
        "every change of the rules and catalog when left out.",
    )  # fmt: skip
    before = serializers.IntegerField(
        required=False, min_value=1, help_text="Keyset cursor, from the previous page's `next`."
    )


class QueuedSerializer(serializers.Serializer):
    queued = serializers.IntegerField()


# --- catalog -----------------------------------------------------------------------------------


class CatalogEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    parent = serializers.CharField(allow_blank=True)
    code = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    active = serializers.BooleanField()
    accepts_postings = serializers.BooleanField()
    attributes = serializers.DictField()
    missing_since = serializers.DateTimeField(allow_null=True)
    refreshed_at = serializers.DateTimeField()


class CatalogPageSerializer(serializers.Serializer):
    results = CatalogEntrySerializer(many=True)
    next = serializers.CharField(allow_null=True)


class CatalogRefreshSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    issues = RuleIssueSerializer(many=True, help_text="The rules in force against the new list.")


# --- sandbox ledger ----------------------------------------------------------------------------


class LedgerAccountSerializer(serializers.Serializer):
    number = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    active = serializers.BooleanField()
    direct_posting = serializers.BooleanField()


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


class JournalLineSerializer(serializers.Serializer):
    account = serializers.CharField(source="account.number")
    debit = _money()
    credit = _money()
    description = serializers.CharField(allow_blank=True)
    tax_code = serializers.CharField(allow_blank=True)
    dimensions = serializers.DictField()


class LedgerInvoiceSerializer(serializers.Serializer):
    number = serializers.CharField()
    kind = serializers.CharField()
    applies_to = serializers.CharField(source="applies_to.number", allow_null=True, default=None)
    external_document_number = serializers.CharField()
    customer_number = serializers.CharField(source="customer.number")
    customer_name = serializers.CharField(source="customer.name")
    posting_date = serializers.DateField()
    currency = serializers.CharField()
    amount = _money()
    journal_entry = serializers.CharField(source="journal_entry.number")


class LedgerInvoicePageSerializer(serializers.Serializer):
    results = LedgerInvoiceSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class JournalEntrySerializer(serializers.Serializer):
    number = serializers.CharField()
    posting_date = serializers.DateField()
    memo = serializers.CharField(allow_blank=True)
    external_document_number = serializers.CharField(allow_blank=True)
    state = serializers.CharField()
    lines = JournalLineSerializer(many=True)


class JournalEntryPageSerializer(serializers.Serializer):
    results = JournalEntrySerializer(many=True)
    next = serializers.CharField(allow_null=True)


class LedgerTimeEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_document_number = serializers.CharField()
    batch = serializers.CharField(help_text="The timecard's key.")
    employee = serializers.CharField()
    work_date = serializers.DateField()
    kind = serializers.CharField()
    hours = serializers.DecimalField(max_digits=6, decimal_places=2)
    pay_type = serializers.CharField()
    job_number = serializers.CharField(allow_blank=True)
    cost_code = serializers.CharField(allow_blank=True)
    department = serializers.CharField(allow_blank=True)
    clock_in = serializers.CharField(allow_blank=True)
    clock_out = serializers.CharField(allow_blank=True)


class LedgerTimeEntryPageSerializer(serializers.Serializer):
    results = LedgerTimeEntrySerializer(many=True)
    next = serializers.CharField(allow_null=True)


class LedgerPageInput(serializers.Serializer):
    before = serializers.IntegerField(
        required=False, min_value=1, help_text="Keyset cursor, from the previous page's `next`."
    )


# --- webhooks ----------------------------------------------------------------------------------


class WebhookHmacSecretSerializer(serializers.Serializer):
    webhook_hmac_secret = serializers.CharField(help_text="Shown once: store it with the sender.")
    url = serializers.URLField(help_text="Where the sender posts signed deliveries.")
    timestamp_header = serializers.CharField()
    signature_header = serializers.CharField()


class CatalogFilters(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CATALOG_KINDS, required=False)
    after = serializers.IntegerField(
        required=False, min_value=0, help_text="Keyset cursor, from the previous page's `next`."
    )


class ExportInput(serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="A published version; the draft when left out."
    )
    map = serializers.ChoiceField(
        choices=MAP_KIND_KEYS, required=False,
        help_text="One map as CSV; the whole rule set as JSON when left out.",
    )  # fmt: skip
    routing = serializers.BooleanField(
        required=False, default=False, help_text="The routing rules as CSV."
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("routing") and "map" in data:
            raise serializers.ValidationError({"routing": "Export one map or the routing rules."})
        return data


class ImportInput(serializers.Serializer):
    reason = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, default="",
        help_text="Why; kept in the rule history (by default: imported through the API).",
    )  # fmt: skip


class CatalogImportInput(ImportInput):
    kind = serializers.ChoiceField(choices=CATALOG_KINDS, help_text="The list the file replaces.")


# --- two-way master data -------------------------------------------------------------------------


class MasterChangeItemInput(serializers.Serializer):
    source_ref = serializers.CharField(max_length=64, help_text="The ServiceTrade id.")
    values = serializers.DictField(
        help_text="Field → new value, in Crosswalk's field names (docs/master-data.md).",
        validators=[lambda value: _no_nul(value, "values")],
    )
    changed_at = serializers.DateTimeField(help_text="When this side changed them.")
    erp_ref = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class MasterChangesInput(serializers.Serializer):
    side = serializers.ChoiceField(choices=["SOURCE", "ERP"], help_text="Who changed them.")
    entity = serializers.ChoiceField(choices=["CUSTOMER", "LOCATION", "CONTACT"])
    changes = MasterChangeItemInput(many=True, allow_empty=False, max_length=1000)


class MasterChangesResultSerializer(serializers.Serializer):
    taken = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.CharField(), help_text="By position.")


class MasterWaitingSerializer(serializers.Serializer):
    entity = serializers.CharField()
    source_ref = serializers.CharField()
    erp_ref = serializers.CharField()
    name = serializers.CharField()
    to_servicetrade = serializers.DictField(source="outbox.SOURCE", default=dict)
    to_erp = serializers.DictField(source="outbox.ERP", default=dict)
    send_error = serializers.CharField()


class MasterLostSerializer(serializers.Serializer):
    received_at = serializers.DateTimeField()
    entity = serializers.CharField(source="record.entity")
    source_ref = serializers.CharField(source="record.source_ref")
    field = serializers.CharField()
    side = serializers.CharField()
    value = serializers.JSONField()
    changed_at = serializers.DateTimeField()
    standing_side = serializers.CharField()
    standing_value = serializers.JSONField()
    standing_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()


class MasterDataSerializer(serializers.Serializer):
    waiting = MasterWaitingSerializer(many=True)
    lost = MasterLostSerializer(many=True)


class MasterSendResultSerializer(serializers.Serializer):
    told = serializers.IntegerField()
    failed = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.CharField())
