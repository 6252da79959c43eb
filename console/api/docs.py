"""The API reference page at /api/docs/: the OpenAPI schema rendered as HTML tables, served by
Crosswalk itself (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_schema() -> dict[str, Any]:
    from console.api.urls import schema_patterns

    return SchemaGenerator(patterns=schema_patterns).get_schema(request=None, public=True)


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "allOf" in schema:
        return " & ".join(_type(part) for part in schema["allOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    text = schema.get("type", "any")
    if schema.get("enum"):
        text += " (" + ", ".join(str(value) for value in schema["enum"] if value) + ")"
    if schema.get("format"):
        text += f" ({schema['format']})"
    return text + (", nullable" if schema.get("nullable") else "")


def _body_type(content: dict[str, Any]) -> str:
    for media in content.values():
        return _type(media.get("schema", {}))
    return ""


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    operations = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            body = operation.get("requestBody", {}).get("content", {})
            operations.append({
                "anchor": operation.get("operationId", f"{method}-{path}"),
                "method": method.upper(),
                "path": path,
                "description": operation.get("description", ""),
                "parameters": [
                    {"name": p["name"], "in": p["in"], "required": p.get("required", False),
                     "type": _type(p.get("schema", {})), "description": p.get("description", "")}
                    for p in operation.get("parameters", [])
                ],
                "request": _body_type(body) if body else "",
                "responses": [
                    {"status": code, "type": _body_type(response.get("content", {})),
                     "description": response.get("description", "")}
                    for code, response in operation.get("responses", {}).items()
                ],
            })  # fmt: skip
    return operations


def _components(schema: dict[str, Any]) -> list[dict[str, Any]]:
    components = []
    for name, component in sorted(schema.get("components", {}).get("schemas", {}).items()):
        required = set(component.get("required", []))
        components.append({
            "name": name,
            "description": component.get("description", ""),
            "type": "" if "properties" in component else _type(component),
            "fields": [
                {"name": field, "type": _type(spec), "required": field in required,
                 "description": spec.get("description", "")}
                for field, spec in component.get("properties", {}).items()
            ],
        })  # fmt: skip
    return components


def api_docs(request: HttpRequest) -> TemplateResponse:
    schema = openapi_schema()
    context = {
        "info": schema.get("info", {}),
        "operations": _operations(schema),
        "components": _components(schema),
    }
    return TemplateResponse(request, "api/docs.html", context)
