"""Posting rules (the crosswalk) and the ERP catalog they point into.

- `RuleDraft`: the one editable rule set of a connection (JSON, see `mappings.ruleset`).
- `RuleVersion`: a published, numbered, immutable rule set with an effective-from date and a
  reason. The database refuses any change to a version once written.
- `RuleAudit`: who changed what, when, before, after and why, for every rule, map, setting,
  version and catalog import. Append-only in the database.
- `CatalogEntry`: one value of one ERP list (account, dimension value, tax code …); values the ERP
  stops listing stay, flagged `missing_since`, so rules pointing at them are reported, not lost.
- `SourceValue`: the values the source has sent (service lines, offices …) and when last seen,
  so validation can say which recent values have no mapping and how many documents they affect.
- `NumberingCounter` / `IssuedCode`: codes issued from numbering rules; never issued twice.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from mappings.ruleset import CatalogKind
from syncengine.models import Connection


class RuleDraft(models.Model):
    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="draft")
    content = models.JSONField()
    base_version = models.ForeignKey(
        "RuleVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField()
    updated_by = models.CharField(max_length=150)

    def __str__(self) -> str:
        return f"Draft rules of {self.connection}"


class RuleVersionQuerySet(models.QuerySet["RuleVersion"]):
    def in_force_on(self, connection: Connection, on: object) -> RuleVersion | None:
        """The version governing documents dated `on`: latest effective date, then number."""
        return (
            self.filter(connection=connection, effective_from__lte=on)
            .order_by("-effective_from", "-number")
            .first()
        )


class RuleVersion(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    content_hash = models.CharField(max_length=64)
    effective_from = models.DateField()
    reason = models.TextField()
    published_by = models.CharField(max_length=150)
    published_at = models.DateTimeField()
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True)

    objects = RuleVersionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "number"], name="rule_version_number"),
            models.CheckConstraint(condition=~Q(reason=""), name="rule_version_has_reason"),
        ]
        indexes = [
            # RuleVersionQuerySet.in_force_on
            models.Index(
                fields=["connection", "effective_from", "number"], name="rule_version_in_force"
            )
        ]

    def __str__(self) -> str:
        return f"Version {self.number} of {self.connection} (from {self.effective_from})"


class RuleAudit(models.Model):
    class Action(models.TextChoices):
        DRAFT_CREATED = "DRAFT_CREATED", "Draft created"
        MAP_ROW_SET = "MAP_ROW_SET", "Map row set"
        MAP_ROW_DELETED = "MAP_ROW_DELETED", "Map row deleted"
        ROUTING_RULE_SET = "ROUTING_RULE_SET", "Routing rule set"
        ROUTING_RULE_DELETED = "ROUTING_RULE_DELETED", "Routing rule deleted"
        DIMENSION_SET = "DIMENSION_SET", "Dimension setting set"
        DIMENSION_DELETED = "DIMENSION_DELETED", "Dimension setting deleted"
        DEFAULTS_SET = "DEFAULTS_SET", "Defaults set"
        NUMBERING_SET = "NUMBERING_SET", "Numbering rule set"
        OWNERSHIP_SET = "OWNERSHIP_SET", "Field owner set"
        DRAFT_REPLACED = "DRAFT_REPLACED", "Draft replaced (import)"
        DRAFT_DISCARDED = "DRAFT_DISCARDED", "Draft discarded"
        PUBLISHED = "PUBLISHED", "Version published"
        ROLLED_BACK = "ROLLED_BACK", "Rolled back"
        CATALOG_REFRESHED = "CATALOG_REFRESHED", "Catalog refreshed"
        CATALOG_IMPORTED = "CATALOG_IMPORTED", "Catalog imported"
        CODE_ISSUED = "CODE_ISSUED", "Code issued"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="rule_audit")
    at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=30, choices=Action.choices)
    subject = models.CharField(
        max_length=300, help_text="What changed, e.g. maps.SERVICE_LINE.HVAC"
    )
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "subject", "id"], name="rule_audit_subject")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.subject} by {self.actor}"


CATALOG_KIND_CHOICES = [(kind, kind.replace("_", " ").capitalize()) for kind in CatalogKind.ALL]


class CatalogEntry(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="catalog")
    kind = models.CharField(max_length=20, choices=CATALOG_KIND_CHOICES)
    # For a dimension value, the dimension code; empty otherwise.
    parent = models.CharField(max_length=50, blank=True)
    code = models.CharField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    accepts_postings = models.BooleanField(default=True)
    attributes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    missing_since = models.DateTimeField(
        null=True, blank=True, help_text="Set when the ERP stopped listing the value."
    )
    refreshed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "catalog entries"
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "kind", "parent", "code"], name="catalog_entry_unique"
            )
        ]

    def __str__(self) -> str:
        prefix = f"{self.parent}/" if self.parent else ""
        return f"{self.kind} {prefix}{self.code}"


class SourceValue(models.Model):
    """A value the source sent for one attribute, counted per document (see the ingest service)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    attribute = models.CharField(max_length=30)
    value = models.CharField(max_length=200)
    key = models.CharField(max_length=200, help_text="The value normalised as rules compare it.")
    documents = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "attribute", "key"], name="source_value_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.attribute} {self.value}"


class NumberingCounter(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    entity = models.CharField(max_length=20)
    last_value = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "entity"], name="numbering_counter")
        ]

    def __str__(self) -> str:
        return f"{self.entity} counter at {self.last_value}"


class IssuedCode(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    entity = models.CharField(max_length=20)
    code = models.CharField(max_length=50)
    source_ref = models.CharField(max_length=100)
    issued_at = models.DateTimeField()
    issued_by = models.CharField(max_length=150)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "entity", "code"], name="issued_code"),
            models.UniqueConstraint(
                fields=["connection", "entity", "source_ref"], name="issued_code_per_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.code} for {self.source_ref}"
