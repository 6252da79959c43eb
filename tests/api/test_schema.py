"""The OpenAPI 3 schema describes every endpoint, and the docs page renders it without a CDN."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import URLPattern
from drf_spectacular.validation import validate_schema

from console.api.urls import v1_patterns

pytestmark = pytest.mark.django_db


def expected_paths() -> set[str]:
    paths = set()
    for pattern in v1_patterns:
        if isinstance(pattern, URLPattern) and pattern.name:
            route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
            paths.add("/api/v1/" + route)
    return paths


def normalised(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def test_the_schema_is_valid_openapi_3_with_every_path(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3")
    validate_schema(schema)
    assert len(expected_paths()) == 56  # a guard against routes dropped by accident
    assert {normalised(p) for p in schema["paths"]} == {normalised(p) for p in expected_paths()}
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    assert "Problem" in schema["components"]["schemas"]


def test_the_docs_page_lists_every_path_and_loads_nothing_from_elsewhere(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    for path in expected_paths():
        assert normalised(path).split("{}")[0] in page
    assert "<script" not in page and "cdn" not in page.lower()
