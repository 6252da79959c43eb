"""The project settings plus what the REST API needs (for `makemigrations api` and as the
reference for the settings to add to console/settings.py)."""

from typing import Any

from console import settings as base
from console.settings import *  # noqa: F403

INSTALLED_APPS = [*base.INSTALLED_APPS, "drf_spectacular", "console.api"]

REST_FRAMEWORK: dict[str, Any] = {  # type: ignore[no-redef]
    **base.REST_FRAMEWORK,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"crosswalk_api": "600/min"},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Crosswalk API",
    "DESCRIPTION": "Sync records, connections, reconciliations and posting rules. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}
