"""Reads of two-way master data for the console page and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from masterdata.models import MasterChange, MasterRecord
from syncengine.models import Connection


def records_waiting(connection: Connection) -> QuerySet[MasterRecord]:
    """Records some side has not been told yet, most recently changed first."""
    return (
        MasterRecord.objects.filter(connection=connection)
        .exclude(outbox={})
        .order_by("-updated_at", "-pk")
    )


def changes_lost(connection: Connection) -> QuerySet[MasterChange]:
    """Decisions a change lost, newest first, with their record."""
    return (
        MasterChange.objects.filter(
            record__connection=connection, outcome=MasterChange.Outcome.LOST
        )
        .select_related("record")
        .order_by("-received_at", "-pk")
    )
