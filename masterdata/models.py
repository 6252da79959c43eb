"""Two-way master data: customers, locations and contacts kept in step between ServiceTrade
and the ERP, field by field.

`MasterRecord` holds, per entity, the value of each field both sides should agree on, which side
set it and when, and what each side still has to be told. `MasterChange` is the audit: every
proposed change of a field, applied or lost, with the proposer's time and the standing value's
time. It is append-only, enforced by the database. An app of its own, so its migrations stay out
of the sync engine's sequence.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from syncengine.models import Connection


class Entity(models.TextChoices):
    CUSTOMER = "CUSTOMER", "Customer"
    LOCATION = "LOCATION", "Location"
    CONTACT = "CONTACT", "Contact"


class Side(models.TextChoices):
    SOURCE = "SOURCE", "ServiceTrade"
    ERP = "ERP", "ERP"


class MasterRecord(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    entity = models.CharField(max_length=10, choices=Entity.choices)
    source_ref = models.CharField(max_length=64, help_text="The ServiceTrade id.")
    erp_ref = models.CharField(max_length=64, blank=True, help_text="The ERP's number or id.")
    name = models.CharField(max_length=200, blank=True)
    values = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    # field → {"side": "SOURCE" | "ERP", "at": ISO time of the change on that side}
    stamps = models.JSONField(default=dict)
    # side → {field: value} as that side last reported it: a value it repeats is not a change
    reported = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    # side → {field: value} that side has not been told yet
    outbox = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    send_error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "source_ref"], name="master_record_once"
            ),
        ]
        indexes = [models.Index(fields=["connection", "entity", "erp_ref"])]

    def __str__(self) -> str:
        return f"{self.get_entity_display()} {self.source_ref} {self.name}".strip()


class MasterChange(models.Model):
    class Outcome(models.TextChoices):
        APPLIED = "APPLIED", "Applied"
        LOST = "LOST", "Lost"

    record = models.ForeignKey(MasterRecord, on_delete=models.PROTECT, related_name="changes")
    field = models.CharField(max_length=64)
    side = models.CharField(max_length=10, choices=Side.choices)
    value = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    changed_at = models.DateTimeField(help_text="When the proposing side changed it.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    standing_value = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    standing_side = models.CharField(max_length=10, choices=Side.choices, blank=True)
    standing_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300)
    received_at = models.DateTimeField()
    actor = models.CharField(max_length=150)

    class Meta:
        indexes = [models.Index(fields=["record", "field", "id"])]

    def __str__(self) -> str:
        return f"{self.field} from {self.side}: {self.outcome}"


class MasterCursor(models.Model):
    """How far a connection's ERP master data has been read: the newest change seen."""

    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="+")
    changed_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"Master data of {self.connection_id} read up to {self.changed_at}"
