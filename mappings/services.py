"""Reads and writes of the skeleton crosswalk.

Issue #3 adds drafts, versions and the audit trail.
"""

from __future__ import annotations

from django.db import transaction

from mappings.models import PostingDefaults, ValueMap, normalise_source_value
from mappings.resolve import Rules, TargetValue
from syncengine.models import Connection


def rules_snapshot(*, connection: Connection) -> Rules:
    """The rules in force for a connection, as the plain values `resolve_invoice` takes."""
    defaults = PostingDefaults.objects.filter(connection=connection).first()
    by_kind: dict[str, dict[str, TargetValue]] = {kind: {} for kind in ValueMap.Kind.values}
    for row in ValueMap.objects.filter(connection=connection):
        by_kind[row.kind][row.source_value] = TargetValue(row.target_code, row.target_account)
    return Rules(
        receivable_account=defaults.receivable_account if defaults else "",
        default_revenue_account=defaults.revenue_account if defaults else "",
        service_line_revenue=by_kind[ValueMap.Kind.SERVICE_LINE_REVENUE],
        tax_rates=by_kind[ValueMap.Kind.TAX_RATE],
    )


@transaction.atomic
def value_map_set(
    *,
    connection: Connection,
    kind: str,
    source_value: str,
    target_account: str,
    target_code: str = "",
) -> ValueMap:
    row, _ = ValueMap.objects.update_or_create(
        connection=connection,
        kind=kind,
        source_value=normalise_source_value(kind, source_value),
        defaults={
            "source_label": source_value.strip(),
            "target_account": target_account,
            "target_code": target_code,
        },
    )
    return row


@transaction.atomic
def posting_defaults_set(
    *, connection: Connection, receivable_account: str, revenue_account: str = ""
) -> PostingDefaults:
    row, _ = PostingDefaults.objects.update_or_create(
        connection=connection,
        defaults={"receivable_account": receivable_account, "revenue_account": revenue_account},
    )
    return row
