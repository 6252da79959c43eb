"""State kept for two flows that read the engine's records but never change them: payments read
back from the ERP (`syncengine/payments.py`) and e-mail to a connection's support contacts
(`syncengine/notify.py`).

It lives in an app of its own so its migrations stay out of the sync engine's sequence. The
sync records stay the truth about posting; these rows say what was paid and what was told.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from syncengine.models import Connection, SyncRecord
from syncengine.money import DECIMAL_PLACES, MAX_DIGITS


class PaymentStatus(models.TextChoices):
    UNPAID = "UNPAID", "Unpaid"
    PARTIALLY_PAID = "PARTIALLY_PAID", "Partially paid"
    PAID = "PAID", "Paid"


class PaymentCursor(models.Model):
    """How far a connection's payments have been read: the newest ERP change seen."""

    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="+")
    changed_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"Payments of {self.connection_id} read up to {self.changed_at}"


class AppliedPayment(models.Model):
    """One payment application as the ERP last showed it. `amount` is signed: a reversal, void
    or returned (NSF) payment is negative. Read again, the same ERP id updates this row."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    erp_id = models.CharField(max_length=100)
    record = models.ForeignKey(SyncRecord, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    payment_date = models.DateField()
    reason = models.CharField(max_length=100, blank=True)
    changed_at = models.DateTimeField(help_text="When the ERP last changed it.")
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "erp_id"], name="applied_payment_once"),
        ]

    def __str__(self) -> str:
        return f"{self.erp_id}: {self.amount} on record {self.record_id}"


class InvoicePayment(models.Model):
    """Per posted invoice: what is paid in the ERP, and what ServiceTrade was last told.

    ServiceTrade is told when `status` differs from `told_status` (or a part payment's amount
    moved); the `told_*` columns change only after ServiceTrade accepted the change.
    """

    record = models.OneToOneField(SyncRecord, on_delete=models.PROTECT, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    total = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    applied = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices)
    told_status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.UNPAID
    )
    told_applied = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, default=0
    )
    told_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.get_status_display()}: {self.applied} of {self.total} ({self.record_id})"


class NotificationKind(models.TextChoices):
    BLOCKED = "BLOCKED", "Blocked by a missing prerequisite or mapping"
    FAILED = "FAILED", "Failed"


class NotificationMark(models.Model):
    """The count last e-mailed to a connection's support contacts, per kind: an e-mail goes
    only when the count rises above it; a fall lowers it silently."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    count_told = models.PositiveIntegerField(default=0)
    told_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "kind"], name="notification_mark_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.connection_id}: {self.count_told} told"


class DigestSent(models.Model):
    """One daily digest per connection and day (the connection's day): never sent twice."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sent_at = models.DateTimeField()
    counts = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "day"], name="digest_sent_once"),
        ]

    def __str__(self) -> str:
        return f"Digest of {self.day} for {self.connection_id}"
