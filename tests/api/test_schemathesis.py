"""Schemathesis against the live schema: every operation, called in-process through Django's WSGI
app with an Admin's token, never answers 500 and always answers as its schema says (documented
status code, content type and body).

The requests run in the test's transaction (WSGI calls in the same thread), so the records and the
token created here are visible to the app and rolled back afterwards."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import URLPattern
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from console.access import Role
from console.api.urls import v1_patterns
from mappings import services as rules
from mappings.models import RuleVersion
from mappings.ruleset import MAP_KINDS
from syncengine.models import Connection, SyncRecord
from tests.api.conftest import auth, token_for
from tests.conftest import NOW

# Examples per operation: 15 keeps the file well under a minute; raise it locally to dig deeper.
MAX_EXAMPLES = int(os.environ.get("CROSSWALK_SCHEMATHESIS_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def _keep_the_test_connection() -> Iterator[None]:
    """Django's handler closes "old" DB connections when a request starts and finishes, which
    would close the test's connection mid-transaction; Django's test client turns that off the
    same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db: Any, _keep_the_test_connection: None) -> Any:
    # The autouse `_api_settings` fixture (tests/api/conftest.py) has mounted /api/ by now.
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every v1 endpoint, from the URLconf, so each is its own test (the schema
    is only served once the test settings are in place; the last test checks both agree)."""
    found = []
    for pattern in v1_patterns:
        if isinstance(pattern, URLPattern) and pattern.name:
            path = "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
            view = pattern.callback.view_class  # type: ignore[attr-defined]
            for method in view.http_method_names:
                if method not in ("head", "options") and hasattr(view, method):
                    found.append((method.upper(), path))
    return found


OPERATIONS = _operations()


@pytest.fixture
def admin_headers(connection: Connection, make_user: Any) -> dict[str, str]:
    return auth(token_for(make_user(Role.ADMIN, connection)))


@pytest.fixture
def known(connection: Connection, posted: SyncRecord, blocked: SyncRecord) -> dict[str, Any]:
    """Real objects for path parameters, so operations get past their 404s; and a rules draft,
    so the draft's endpoints answer from it rather than with "there is no draft"."""
    versions = RuleVersion.objects.filter(connection=connection).order_by("number")
    draft = rules.draft_replace(connection=connection, content=versions.last().content,
                                actor="test", now=NOW, reason="schemathesis")  # fmt: skip
    return {
        "slug": connection.slug,
        "pk": [posted.pk, blocked.pk],
        "number": [version.number for version in versions],
        "rule_id": [rule["id"] for rule in draft.content["routing"]],
        "kind": list(MAP_KINDS),
    }


def _normalised(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def _schema_path(api_schema: Any, path: str) -> str:
    """The schema's spelling of a URLconf path (drf-spectacular names `<int:pk>` `{id}`)."""
    paths = [p for p in api_schema.raw_schema["paths"] if _normalised(p) == _normalised(path)]
    assert len(paths) == 1, (path, paths)
    return paths[0]


def _point_at_known_objects(case: Any, known: dict[str, Any]) -> None:
    """Aim generated path parameters at real objects (odd generated values stay as generated, so
    the 404s are exercised too)."""
    params = case.path_parameters or {}
    if "slug" in params:
        params["slug"] = known["slug"]
    for name, kind in (("id", "pk"), ("pk", "pk"), ("number", "number"), ("rule_id", "rule_id")):
        value = params.get(name)
        if isinstance(value, int) and value % 2 == 0 and known[kind]:
            params[name] = known[kind][value // 2 % len(known[kind])]
    kind = params.get("kind")
    if isinstance(kind, str) and len(kind) % 2 == 0:
        params["kind"] = known["kind"][len(kind) // 2 % len(known["kind"])]


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_conforms_to_the_schema(
    method: str, path: str, api_schema: Any, admin_headers: dict[str, str], known: dict[str, Any]
) -> None:
    operation = api_schema[_schema_path(api_schema, path)][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    def check(case: Any) -> None:
        _point_at_known_objects(case, known)
        case.call_and_validate(headers=admin_headers, checks=CHECKS)

    check()


@pytest.mark.django_db
def test_the_tests_above_cover_every_operation_in_the_schema(api_schema: Any) -> None:
    in_schema = {
        (operation.method.upper(), _normalised(operation.path))
        for result in api_schema.get_all_operations()
        for operation in [result.ok()]
    }
    assert in_schema == {(method, _normalised(path)) for method, path in OPERATIONS}
