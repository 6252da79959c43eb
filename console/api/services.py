"""Writes of the API's own tables (tokens are issued by `ApiToken.issue`)."""

from __future__ import annotations

from datetime import datetime

from console.api.idempotency import KEY_TTL
from console.api.models import IdempotentRequest


def idempotent_requests_purge(*, now: datetime) -> int:
    """Delete stored `Idempotency-Key` outcomes older than `KEY_TTL` (their keys may be reused
    from then on anyway; see `idempotency._claim`), including requests that never finished.
    Returns how many were deleted. Called by the beat task of the same name."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=now - KEY_TTL).delete()
    return deleted
