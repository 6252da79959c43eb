"""Expired `Idempotency-Key` rows are deleted by a scheduled task; live ones stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from console.api import services, tasks
from console.api.idempotency import KEY_TTL
from console.api.models import IdempotentRequest
from console.celery import app
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


def _row(user: User, key: str, age: timedelta, status: int = 200) -> IdempotentRequest:
    return IdempotentRequest.objects.create(
        user=user, key=key, body_hash="0" * 64, status=status, created_at=NOW - age
    )


def test_rows_older_than_the_key_lifetime_are_deleted_and_younger_ones_kept(make_user):
    user = make_user(None)
    _row(user, "old", KEY_TTL + timedelta(seconds=1))
    _row(user, "stuck", KEY_TTL + timedelta(days=3), status=0)
    _row(user, "young", KEY_TTL - timedelta(seconds=1))
    _row(user, "fresh", timedelta(0))
    assert services.idempotent_requests_purge(now=NOW) == 2
    assert set(IdempotentRequest.objects.values_list("key", flat=True)) == {"young", "fresh"}


def test_purging_twice_deletes_nothing_the_second_time(make_user):
    _row(make_user(None), "old", KEY_TTL * 2)
    assert services.idempotent_requests_purge(now=NOW) == 1
    assert services.idempotent_requests_purge(now=NOW) == 0


def test_the_task_purges_with_the_current_time(make_user):
    user = make_user(None)
    _row(user, "ancient", timedelta(days=3650))  # older than any clock this test runs under
    tasks.idempotent_requests_purge.apply()
    assert not IdempotentRequest.objects.filter(key="ancient").exists()


def test_beat_schedules_the_purge_task_at_least_hourly():
    entry = settings.CELERY_BEAT_SCHEDULE["purge-idempotency-keys"]
    assert entry["task"] == tasks.idempotent_requests_purge.name
    assert entry["task"] in app.tasks
    # Rows live KEY_TTL; purging at least hourly keeps the table near one day of keys.
    assert 60 <= entry["schedule"] <= 3600
