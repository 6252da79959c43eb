"""The project's URLs plus the REST API at /api/, for tests run before `console.urls` mounts it
(with the same include at the same place). Once it does, this adds nothing."""

from django.urls import URLResolver, include, path

from console.urls import urlpatterns as project_urlpatterns

_mounted = any(
    isinstance(pattern, URLResolver) and pattern.namespace == "api"
    for pattern in project_urlpatterns
)

urlpatterns = [
    *project_urlpatterns,
    *([] if _mounted else [path("api/", include("console.api.urls"))]),
]
