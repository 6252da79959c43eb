"""Connections, what the source sent, and the durable state of every posting.

- `Connection`: one ServiceTrade account wired to one ERP target (the sandbox ledger by default).
- `SourceReceipt`: every body received, byte for byte, before anything else happens to it.
- `SourceDocument`: the latest accepted version of one source document, raw and canonical.
- `SyncRecord`: one (connection, source document, operation) and its state; the row is the truth,
  a Celery message is only a nudge to look at it.
- `SyncEvent`: the append-only trail of every transition; the database refuses edits and deletes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from syncengine.money import DECIMAL_PLACES, MAX_DIGITS


def default_approved_statuses() -> list[str]:
    # ServiceTrade's "ok" means ready for accounting; "pending_accounting" is the review queue
    # some customers approve into. Configurable per connection.
    return ["ok", "pending_accounting"]


class EncodedJSON(str):
    """JSON text for a `BulkJSONField`, stored as it is instead of being encoded again: for
    values the caller has encoded anyway (an event's data, normalised through the encoder)."""


class BulkJSONField(models.JSONField):
    """A JSONField that bulk inserts one literal per row.

    For several rows Django inserts on PostgreSQL through UNNEST of one array per column, and
    the client writes a JSON array element by escaping it in Python, about 1 ms for a typical
    event with its exchanges. As one parameter per row the same JSON is quoted by the driver's
    C code (a quarter of the time, measured). Columns and queries are unchanged.
    """

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        return "%s"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not isinstance(value, EncodedJSON):
            return super().get_db_prep_value(value, connection, prepared)
        if connection.vendor == "postgresql":
            from psycopg.types.json import Jsonb

            return Jsonb(value, dumps=str)  # the text as it is: encoded once already
        return str(value)

    def deconstruct(self) -> Any:
        # Migrations see a plain JSONField: nothing about the column differs, and on SQLite an
        # altered field would rebuild the table without its append-only triggers.
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class Connection(models.Model):
    class Target(models.TextChoices):
        SANDBOX = "sandbox", "Sandbox ledger"
        BUSINESS_CENTRAL = "business_central", "Dynamics 365 Business Central"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    target = models.CharField(max_length=30, choices=Target.choices, default=Target.SANDBOX)
    currency = models.CharField(max_length=3, default="USD")
    time_zone = models.CharField(
        max_length=50,
        default="UTC",
        help_text="Turns ServiceTrade's epoch timestamps into posting dates.",
    )
    approved_statuses = models.JSONField(default=default_approved_statuses)
    # Bumped by every catalog refresh or import; workers rebuild their cached catalog when it moves.
    catalog_version = models.PositiveIntegerField(default=0)
    # Bumped by every publish or rollback; workers re-read the rule version in force when it moves.
    rules_revision = models.PositiveIntegerField(default=0)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=0, help_text="ERP requests per minute across all workers; 0 for no limit."
    )
    support_emails = models.JSONField(
        default=list, blank=True, help_text="Who is told when the connection fails."
    )
    # Circuit breaker (syncengine.circuit): while circuit_retry_at is in the future, the
    # connection's records wait instead of calling an ERP that refuses or does not answer.
    circuit_failures = models.PositiveIntegerField(default=0)
    circuit_retry_at = models.DateTimeField(null=True, blank=True)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    circuit_cool_down = models.PositiveIntegerField(default=0)
    circuit_reason = models.CharField(max_length=500, blank=True)
    # Only a hash is kept: the full hook URL is shown once, when the secret is generated.
    webhook_secret_hash = models.CharField(max_length=64, blank=True)
    # What each side's connector needs that is not secret (base URL, tenant, company …), and what
    # is: the secrets are one Fernet token per side (syncengine.secrets), never shown or logged.
    erp_settings = models.JSONField(default=dict, blank=True)
    erp_credentials = models.TextField(blank=True, editable=False)
    source_settings = models.JSONField(default=dict, blank=True)
    source_credentials = models.TextField(blank=True, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="crosswalk_connections"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    def erp_secrets(self) -> dict[str, Any]:
        from syncengine.secrets import decrypt

        return decrypt(self.erp_credentials)

    def source_secrets(self) -> dict[str, Any]:
        from syncengine.secrets import decrypt

        return decrypt(self.source_credentials)


class ConnectionAudit(models.Model):
    """Who changed a connection's settings or credentials, when and why. Append-only (trigger).

    Credential changes record which fields were set or cleared, never their values.
    """

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="audits")
    actor = models.CharField(max_length=150)
    at = models.DateTimeField()
    action = models.CharField(max_length=40)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.connection_id} by {self.actor}"


class DocumentKind(models.TextChoices):
    INVOICE = "INVOICE", "Invoice"
    TIMECARD = "TIMECARD", "Timecard"
    JOB_COST = "JOB_COST", "Job item cost"
    # PartsLedger / PartsManager procurement (syncengine.sources.procurement).
    VENDOR = "VENDOR", "Vendor"
    PURCHASE_ORDER = "PURCHASE_ORDER", "Purchase order"
    RECEIPT = "RECEIPT", "Receipt"
    PURCHASE_INVOICE = "PURCHASE_INVOICE", "Purchase invoice"
    INVENTORY_ADJUSTMENT = "INVENTORY_ADJUSTMENT", "Inventory adjustment"


class SourceReceipt(models.Model):
    """A body as it arrived, kept before it is parsed so that nothing is ever lost."""

    class Channel(models.TextChoices):
        FILE = "FILE", "File"
        WEBHOOK = "WEBHOOK", "Webhook"
        DEMO = "DEMO", "Demo loader"
        API = "API", "ServiceTrade API"

    class Outcome(models.TextChoices):
        PENDING = "PENDING", "Not parsed yet"
        ACCEPTED = "ACCEPTED", "Accepted"
        PARTLY_ACCEPTED = "PARTLY_ACCEPTED", "Partly accepted"
        REJECTED = "REJECTED", "Rejected"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="receipts")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    origin = models.CharField(max_length=500, blank=True, help_text="File name or sender address.")
    # UTF-8 text as received; a body that is not UTF-8 is kept byte for byte as base64.
    body = models.TextField()
    body_is_base64 = models.BooleanField(default=False)
    body_bytes = models.PositiveBigIntegerField()
    received_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    errors = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.get_channel_display()} receipt {self.pk} ({self.get_outcome_display()})"


class SourceDocument(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(max_length=20, choices=DocumentKind.choices)
    source_id = models.CharField(max_length=64)
    # The number people know (invoice number); searched exactly and by substring.
    number = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=40)
    customer_name = models.CharField(max_length=200, blank=True)
    total = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True
    )
    payload = BulkJSONField(encoder=DjangoJSONEncoder)
    canonical = BulkJSONField(encoder=DjangoJSONEncoder)
    content_hash = models.CharField(max_length=64)
    receipt = models.ForeignKey(SourceReceipt, on_delete=models.PROTECT, related_name="documents")
    first_received_at = models.DateTimeField()
    last_received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "kind", "source_id"], name="source_document_unique_id"
            ),
        ]
        # "Did it land?" by amount: a search for 1,234.50 is an index look-up.
        indexes = [models.Index(fields=["total"], name="source_document_total")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number}"


class SyncState(models.TextChoices):
    RECEIVED = "RECEIVED", "Received"
    BLOCKED = "BLOCKED", "Blocked"
    READY = "READY", "Ready"
    POSTING = "POSTING", "Posting"
    POSTED = "POSTED", "Posted"
    RETRY_SCHEDULED = "RETRY_SCHEDULED", "Retry scheduled"
    FAILED = "FAILED", "Failed"
    UNCERTAIN = "UNCERTAIN", "Uncertain"
    SKIPPED = "SKIPPED", "Skipped"
    CANCELLED = "CANCELLED", "Cancelled"


# States a worker may pick up when due (see SyncRecordQuerySet.runnable).
RUNNABLE_STATES = (SyncState.READY, SyncState.RETRY_SCHEDULED, SyncState.UNCERTAIN)


class Operation(models.TextChoices):
    CREATE = "CREATE", "Create"
    # An offsetting credit memo for a posted invoice that was voided in the source.
    VOID_CREDIT_MEMO = "VOID_CREDIT_MEMO", "Credit memo for a void"
    # Void and reissue of an invoice edited after it posted (`PostedChange`): the credit memo
    # for the posted version, then the new version posted under a new key. One pair per revision.
    REVERSAL_CREDIT_MEMO = "REVERSAL_CREDIT_MEMO", "Credit memo before a reissue"
    REISSUE = "REISSUE", "Reissue of an edited invoice"


# How many of the newest record ids `newest_matching` walks, per row wanted, before it asks the
# trigram indexes: a text found in at least one record in 20 fills its page from the walk.
MATCH_WINDOW_PER_ROW = 20


def _scan_condition(text: str) -> Q:
    """`matching` as one condition over a record and its document, for testing row by row."""
    condition = (
        Q(document__number__icontains=text)
        | Q(erp_document_number__icontains=text)
        | Q(document__customer_name__icontains=text)
    )
    amount = _as_amount(text)
    if amount is not None:
        condition |= Q(document__total=amount)
    return condition


class SyncRecordQuerySet(models.QuerySet["SyncRecord"]):
    def runnable(self, now: datetime) -> SyncRecordQuerySet:
        """Due work, plus postings whose worker died: an expired lease is settled by lookup."""
        due = Q(state__in=RUNNABLE_STATES, next_attempt_at__lte=now)
        abandoned = Q(state=SyncState.POSTING, lease_until__lt=now)
        circuit_open = Q(connection__circuit_retry_at__gt=now)
        return self.filter(due | abandoned).exclude(circuit_open)

    def matching(self, text: str) -> SyncRecordQuerySet:
        """Records whose document number, ERP number or customer contains the text, or whose
        total equals it when the text is an amount ("1,234.50" or "$1234.5")."""
        by_document, by_erp_number = self._matching_parts(text, SyncRecord.objects.all())
        return self.filter(pk__in=by_document.union(by_erp_number))

    def _matching_parts(
        self, text: str, records: SyncRecordQuerySet
    ) -> tuple[models.QuerySet[SyncRecord, Any], models.QuerySet[SyncRecord, Any]]:
        # Two searches joined by UNION rather than one OR across a join, so that PostgreSQL can
        # answer each from its trigram index (migration 0014) instead of scanning every record.
        text = text.strip()
        documents = Q(number__icontains=text) | Q(customer_name__icontains=text)
        amount = _as_amount(text)
        if amount is not None:
            documents |= Q(total=amount)
        by_document = records.filter(
            document__in=SourceDocument.objects.filter(documents).values("pk")
        ).values("pk")
        by_erp_number = records.filter(erp_document_number__icontains=text).values("pk")
        return by_document, by_erp_number

    def newest_matching(self, text: str, *, limit: int) -> list[SyncRecord]:
        """The newest `limit` records that `matching(text)` finds, exactly, fast either way.

        A common text ("Foods") matches many documents: collecting them all through the trigram
        indexes costs more than walking the newest records and testing each. A rare one matches
        few: walking would cost the whole table, the indexes answer at once. So: walk a window of
        the newest records first; if it holds `limit` matches they are the newest of all
        (everything outside the window is older), else ask the indexes.
        """
        text = text.strip()
        newest = self.order_by("-pk").values_list("pk", flat=True).first()
        if newest is None:
            return []
        window = MATCH_WINDOW_PER_ROW * limit
        in_window = self.filter(pk__gt=newest - window).filter(_scan_condition(text))
        found: list[SyncRecord] = list(in_window.order_by("-pk")[:limit])
        if len(found) == limit:
            return found
        # The newest ids straight from the union, with this queryset's own filters inside each
        # part: `pk IN (union)` would make PostgreSQL hash-join the union against every record.
        by_document, by_erp_number = self._matching_parts(text, self)
        newest_ids = by_document.union(by_erp_number).order_by("-pk")[:limit]
        ids = [row["pk"] for row in newest_ids]
        return list(self.filter(pk__in=ids).order_by("-pk"))

    def failure_causes(self) -> list[dict[str, Any]]:
        """Blocked and failed records grouped by what one fix would cure, biggest group first:
        [{"failure_cause", "state", "count", "message"}] with one example message per group."""
        waiting = self.filter(state__in=(SyncState.BLOCKED, SyncState.FAILED))
        groups = list(
            waiting.values("failure_cause", "state")
            .annotate(count=models.Count("id"), example=models.Max("id"))
            .order_by("-count", "failure_cause")
        )
        messages = dict(
            SyncRecord.objects.filter(pk__in=[g["example"] for g in groups]).values_list(
                "pk", "message"
            )
        )
        for group in groups:
            group["message"] = messages.get(group.pop("example"), "")
        return groups

    def visible_to(self, user: Any) -> SyncRecordQuerySet:
        if user.is_superuser:
            return self
        return self.filter(connection__members=user)


def _as_amount(text: str) -> Decimal | None:
    cleaned = text.replace(",", "").replace("$", "").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and "." in cleaned else None


class SyncRecord(models.Model):
    # No index of their own: the composite indexes and constraints below lead with them.
    connection = models.ForeignKey(
        Connection, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    document = models.ForeignKey(
        SourceDocument, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    operation = models.CharField(max_length=20, choices=Operation.choices)
    # Deterministic, written into the ERP document (external document number) and looked up
    # there before any create whose earlier attempt may have landed.
    idempotency_key = models.CharField(max_length=35)
    state = models.CharField(max_length=20, choices=SyncState.choices, default=SyncState.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` at the last manual retry: automatic retries count from here.
    attempts_before_retry = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    erp_document_id = models.CharField(max_length=64, blank=True)
    erp_document_number = models.CharField(max_length=64, blank=True)
    # A deep link to the document in the ERP, as the connector builds it.
    erp_document_url = models.CharField(max_length=500, blank=True)
    failure_category = models.CharField(max_length=40, blank=True)
    # What one fix would cure: the first problem's code and source value ("UNMAPPED_SERVICE_LINE:
    # Fire Sprinkler") or the connector failure category. Groups the dashboard and bulk retry.
    failure_cause = models.CharField(max_length=200, blank=True, db_index=True)
    message = models.TextField(blank=True, help_text="Plain words: why it waits or failed.")
    problems = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    plan = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    rule_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The published rule version that coded the posting."
    )
    received_at = models.DateTimeField()
    posted_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField()
    # The bulk retry this record was last queued by, so its progress can be shown.
    retry_batch = models.CharField(max_length=32, blank=True)
    # 0 for the first posting of a document; n for the n-th void and reissue of it.
    revision = models.PositiveSmallIntegerField(default=0)

    objects = SyncRecordQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "idempotency_key"], name="sync_record_unique_key"
            ),
            models.UniqueConstraint(
                fields=["document", "operation", "revision"], name="sync_record_one_per_operation"
            ),
            models.CheckConstraint(
                condition=~Q(state=SyncState.POSTED) | ~Q(erp_document_id=""),
                name="sync_record_posted_has_erp_id",
            ),
        ]
        indexes = [
            # The sweeper and `sync --until-idle` look for due work by state and time.
            models.Index(fields=["state", "next_attempt_at"], name="sync_record_due"),
            # The sync log lists newest first within a connection (keyset on id).
            models.Index(fields=["connection", "-id"], name="sync_record_log"),
            # The dashboard counts by state and by posting time; the log filters by arrival.
            # With the cause, the dashboard's groups of what needs fixing come from the index.
            models.Index(fields=["connection", "state", "failure_cause"], name="sync_record_state"),
            models.Index(fields=["connection", "posted_at"], name="sync_record_posted"),
            # Not led by the connection: the log filters by the user's connections with IN.
            models.Index(fields=["received_at"], name="sync_record_received"),
            models.Index(
                fields=["retry_batch"], name="sync_record_retry_batch", condition=~Q(retry_batch="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document} → {self.connection} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in {SyncState.POSTED, SyncState.SKIPPED, SyncState.CANCELLED}


class SyncEvent(models.Model):
    """One transition or attempt. Append-only: database triggers reject UPDATE and DELETE."""

    # No index of its own: `sync_event_timeline` leads with it.
    record = models.ForeignKey(
        SyncRecord, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20)
    detail = models.TextField(blank=True)
    data = BulkJSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        indexes = [models.Index(fields=["record", "id"], name="sync_event_timeline")]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state} by {self.actor}"


class PostedChange(models.Model):
    """An invoice that changed in ServiceTrade after it was sent, waiting for a person to decide:
    void and reissue (a credit memo for the posted version, then the new version under a new
    key) or ignore (the posted document stays; who and why are kept). Never re-posted blind.

    `before` is the version in the ERP, `after` the latest one received (a later edit while the
    decision is pending updates `after`). The database keeps one pending change per record and
    a decided change complete (who, when; a reason for ignoring).
    """

    class Decision(models.TextChoices):
        PENDING = "PENDING", "Waiting for a person"
        VOID_AND_REISSUE = "VOID_AND_REISSUE", "Void and reissue"
        IGNORED = "IGNORED", "Ignored"

    record = models.ForeignKey(SyncRecord, on_delete=models.PROTECT, related_name="changes")
    detected_at = models.DateTimeField()
    before = models.JSONField(encoder=DjangoJSONEncoder)
    after = models.JSONField(encoder=DjangoJSONEncoder)
    changes = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    total_before = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    total_after = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    decision = models.CharField(max_length=20, choices=Decision.choices, default=Decision.PENDING)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    credit_record = models.OneToOneField(
        SyncRecord, null=True, blank=True, on_delete=models.PROTECT, related_name="reversal_of"
    )
    reissue_record = models.OneToOneField(
        SyncRecord, null=True, blank=True, on_delete=models.PROTECT, related_name="reissue_of"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["record"], condition=Q(decision="PENDING"), name="posted_change_one_pending"
            ),
            models.CheckConstraint(
                condition=Q(decision="PENDING", decided_by="", decided_at__isnull=True)
                | (~Q(decision="PENDING") & ~Q(decided_by="") & Q(decided_at__isnull=False)),
                name="posted_change_decided_by_someone",
            ),
            models.CheckConstraint(
                condition=~Q(decision="IGNORED") | ~Q(reason=""),
                name="posted_change_ignored_with_reason",
            ),
            models.CheckConstraint(
                condition=~Q(decision="VOID_AND_REISSUE")
                | Q(credit_record__isnull=False, reissue_record__isnull=False),
                name="posted_change_reissue_has_records",
            ),
        ]

    def __str__(self) -> str:
        return f"Change of record {self.record_id}: {self.get_decision_display()}"

    @property
    def difference(self) -> Decimal:
        return self.total_after - self.total_before


class ReconciliationRun(models.Model):
    """One comparison of source, sync records and ERP for a connection (syncengine.reconcile)."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    actor = models.CharField(max_length=150)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    posted_source_total = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0
    )
    erp_invoice_total = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0
    )
    erp_credit_total = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0
    )

    def __str__(self) -> str:
        return f"Reconciliation of {self.connection} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def difference(self) -> Decimal:
        return self.erp_invoice_total - self.posted_source_total


class ReconciliationFinding(models.Model):
    class Kind(models.TextChoices):
        NOT_POSTED = "NOT_POSTED", "Approved but not posted"
        MISSING_IN_ERP = "MISSING_IN_ERP", "Posted here, missing in the ERP"
        NOT_RECORDED = "NOT_RECORDED", "In the ERP, not recorded here"
        DUPLICATE_IN_ERP = "DUPLICATE_IN_ERP", "Duplicated in the ERP"
        AMOUNT_DIFFERS = "AMOUNT_DIFFERS", "Amount differs"

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    record = models.ForeignKey(SyncRecord, null=True, blank=True, on_delete=models.PROTECT)
    key = models.CharField(max_length=35)
    document_number = models.CharField(max_length=64, blank=True)
    source_amount = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True
    )
    erp_amount = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True
    )
    detail = models.TextField()
    action = models.CharField(max_length=30, blank=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.key}"


class RateWindow(models.Model):
    """This minute's request count for a connection (syncengine.ratelimit)."""

    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    used = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.used} requests since {self.window_start:%H:%M:%S}"


# --- ServiceTrade API: where polling and backfill stand, webhook subscriptions, write-back ------


class SourceCursor(models.Model):
    """How far one connection has read one ServiceTrade list (syncengine.sources.servicetrade_api).

    POLL: `position_epoch` is the `updatedAfter` of the next poll. BACKFILL: the backfill reads
    `createdAfter=since_epoch … createdBefore=until_epoch` in windows; `position_epoch` is the
    start of the window being read and `page` the next page in it. A page and the cursor move
    commit together, so an interrupted backfill resumes at the first page not yet ingested.
    """

    class Mode(models.TextChoices):
        POLL = "POLL", "Polling"
        BACKFILL = "BACKFILL", "Backfill"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    entity = models.CharField(max_length=30)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    since_epoch = models.BigIntegerField(null=True, blank=True)
    until_epoch = models.BigIntegerField(null=True, blank=True)
    position_epoch = models.BigIntegerField(null=True, blank=True)
    page = models.PositiveIntegerField(default=1)
    items_read = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField()
    moved_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # A backfill holds the cursor while it runs (renewed page by page), so a second backfill of
    # the same connection is refused instead of ingesting the same pages alongside it.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "mode"], name="source_cursor_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} of {self.entity} for {self.connection_id}"


class WebhookSubscription(models.Model):
    """A webhook Crosswalk registered in ServiceTrade, as last created or checked. The hook URL
    holds the secret, so only its secret-free prefix is kept."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    remote_id = models.CharField(max_length=64)
    hook_url_prefix = models.CharField(max_length=500)
    entity_events = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    checked_at = models.DateTimeField(null=True, blank=True)
    problems = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "remote_id"], name="webhook_subscription_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"ServiceTrade webhook {self.remote_id} of {self.connection_id}"


class SourceWriteBack(models.Model):
    """One outcome told back to ServiceTrade for one sync record: never told twice. A telling
    that failed is kept too (`told` false, with ServiceTrade's `error`) until a run succeeds."""

    record = models.ForeignKey(SyncRecord, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=20)
    at = models.DateTimeField()
    detail = models.CharField(max_length=500, blank=True)
    told = models.BooleanField(default=True)
    error = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "outcome"], name="source_write_back_once"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} told for record {self.record_id}"


class PurchaseOrderJobItem(models.Model):
    """One ERP purchase-order line written (or to be written) to ServiceTrade as a job item on
    the job the order names (syncengine.sources.servicetrade_api.purchase_orders): each line
    once, ever. SENDING means a call went out and its answer was not recorded, so the next run
    looks for the item on the job before creating it."""

    class State(models.TextChoices):
        PENDING = "PENDING", "Waiting"
        SENDING = "SENDING", "Being sent"
        WRITTEN = "WRITTEN", "Written"
        UNKNOWN_JOB = "UNKNOWN_JOB", "Unknown job"
        FAILED = "FAILED", "Failed"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    erp_order_id = models.CharField(max_length=64)
    erp_line_id = models.CharField(max_length=64)
    po_number = models.CharField(max_length=40)
    job_number = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=200)
    quantity = models.DecimalField(max_digits=18, decimal_places=5)
    unit_cost = models.DecimalField(max_digits=18, decimal_places=5)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    message = models.CharField(max_length=500, blank=True)
    st_job_id = models.CharField(max_length=32, blank=True)
    st_job_item_id = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    tried_at = models.DateTimeField(null=True, blank=True)
    written_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "erp_order_id", "erp_line_id"], name="po_job_item_once"
            ),
        ]
        indexes = [models.Index(fields=["connection", "state"], name="po_job_item_state")]

    def __str__(self) -> str:
        return f"PO {self.po_number} line {self.erp_line_id} → job {self.job_number}"
