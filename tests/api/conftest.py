"""The REST API's test setup: its apps installed (until console/settings.py lists them), the
project URLs plus /api/ as the URLconf, and users with a role on a connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test.utils import modify_settings

from syncengine import services
from syncengine.models import Connection, SyncRecord, SyncState
from tests.conftest import NOW, envelope, ingest

API_APPS = ["drf_spectacular", "console.api"]

# Installed before the test database is created, so its migration runs (a no-op once the
# project settings list the apps).
_missing = [app for app in API_APPS if app not in django_settings.INSTALLED_APPS]
if _missing:
    modify_settings(INSTALLED_APPS={"append": _missing}).enable()

from console.api.models import ApiToken  # noqa: E402  (after the app is installed)

BLOCKING_ITEMS = [
    {"id": 1, "itemType": "labor", "quantity": "1", "price": "80",
     "serviceLine": {"name": "Backflow Testing"}},
]  # fmt: skip


@pytest.fixture(autouse=True)
def _api_settings(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.api_urlconf"
    settings.REST_FRAMEWORK = {
        **getattr(django_settings, "REST_FRAMEWORK", {}),
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
        "DEFAULT_THROTTLE_RATES": {"crosswalk_api": "10000/min"},
    }
    settings.SPECTACULAR_SETTINGS = {
        "TITLE": "Crosswalk API",
        "VERSION": "1.0.0",
        "SERVE_INCLUDE_SCHEMA": False,
        "SCHEMA_PATH_PREFIX": "/api/v1",
        "COMPONENT_SPLIT_REQUEST": True,
    }
    cache.clear()  # throttle history


@pytest.fixture
def other_connection(db: Any) -> Connection:
    return Connection.objects.create(name="Other company", slug="other")


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(role: str | None, *connections: Connection, name: str = "") -> User:
        user = User.objects.create_user(username=name or f"api-user-{next(counter)}")
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        for connection in connections:
            connection.members.add(user)
        return user

    return make


def token_for(user: User) -> str:
    return ApiToken.issue(user=user, name="test")[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def posted(connection: Connection) -> SyncRecord:
    ingest(connection, envelope())
    services.sync_run_until_idle(now=lambda: NOW)
    record = SyncRecord.objects.get(document__number="10482")
    assert record.state == SyncState.POSTED
    return record


@pytest.fixture
def blocked(connection: Connection) -> SyncRecord:
    ingest(connection, envelope(id=5001, invoiceNumber="B-5001", items=BLOCKING_ITEMS))
    services.sync_run_until_idle(now=lambda: NOW)
    record = SyncRecord.objects.get(document__number="B-5001")
    assert record.state == SyncState.BLOCKED, record.message
    return record
