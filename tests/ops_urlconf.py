"""The project's URLs plus the operations pages, for tests run before `console.urls` mounts them
(with the same include at the same place). Once it does, this adds nothing."""

from django.urls import URLResolver, include, path

from console.urls import urlpatterns as project_urlpatterns

_mounted = any(
    isinstance(pattern, URLResolver) and pattern.namespace == "ops"
    for pattern in project_urlpatterns
)

urlpatterns = [
    *project_urlpatterns,
    *([] if _mounted else [path("", include("console.ops_urls"))]),
]
