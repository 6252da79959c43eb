"""The least crosswalk the walking skeleton needs; issue #3 grows it into versioned rule sets.

- `ValueMap`: one source value → one target value, per connection and map kind.
- `PostingDefaults`: per connection, the receivable account and the fallbacks underneath the maps.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import models

from syncengine.models import Connection


def normalise_source_value(kind: str, value: str) -> str:
    """The form a source value is stored and looked up in.

    Service lines compare case- and space-insensitively ("Fire  sprinkler" = "FIRE SPRINKLER");
    tax rates compare as numbers ("7.250" = "7.25").
    """
    if kind == ValueMap.Kind.TAX_RATE:
        try:
            return format(Decimal(value).normalize(), "f")
        except InvalidOperation:
            return value.strip()
    return " ".join(value.split()).casefold()


class ValueMap(models.Model):
    class Kind(models.TextChoices):
        SERVICE_LINE_REVENUE = "SERVICE_LINE_REVENUE", "Service line → revenue account"
        TAX_RATE = "TAX_RATE", "Tax rate → tax code and liability account"

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="value_maps")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    source_value = models.CharField(max_length=100)
    source_label = models.CharField(max_length=100, help_text="The value as people write it.")
    target_code = models.CharField(max_length=20, blank=True)
    target_account = models.CharField(max_length=20)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "kind", "source_value"], name="value_map_unique_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.source_label} → {self.target_account}"


class PostingDefaults(models.Model):
    connection = models.OneToOneField(
        Connection, on_delete=models.PROTECT, related_name="posting_defaults"
    )
    receivable_account = models.CharField(max_length=20)
    revenue_account = models.CharField(
        max_length=20, blank=True, help_text="Used when no service-line map matches; blank blocks."
    )

    def __str__(self) -> str:
        return f"Posting defaults of {self.connection}"
