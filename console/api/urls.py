"""Mounted at `api/`: the versioned API under `v1/`, its OpenAPI schema and a docs page."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from console.api import docs, errors, views

app_name = "api"

v1_patterns = [
    path("tokens/", views.TokenListView.as_view(), name="token-list"),
    path("tokens/<int:pk>/", views.TokenDetailView.as_view(), name="token-detail"),
    path("connections/", views.ConnectionListView.as_view(), name="connection-list"),
    path(
        "connections/<slug:slug>/", views.ConnectionDetailView.as_view(), name="connection-detail"
    ),
    path(
        "connections/<slug:slug>/retry/",
        views.ConnectionRetryView.as_view(),
        name="connection-retry",
    ),
    path(
        "connections/<slug:slug>/reconciliations/",
        views.ReconciliationListView.as_view(),
        name="reconciliation-list",
    ),
    path(
        "connections/<slug:slug>/reconciliations/<int:pk>/",
        views.ReconciliationDetailView.as_view(),
        name="reconciliation-detail",
    ),
    path(
        "connections/<slug:slug>/rules/versions/",
        views.RuleVersionListView.as_view(),
        name="rule-version-list",
    ),
    path(
        "connections/<slug:slug>/rules/versions/<int:number>/",
        views.RuleVersionDetailView.as_view(),
        name="rule-version-detail",
    ),
    path("connections/<slug:slug>/rules/diff/", views.RuleDiffView.as_view(), name="rule-diff"),
    path("records/", views.RecordListView.as_view(), name="record-list"),
    path("records/<int:pk>/", views.RecordDetailView.as_view(), name="record-detail"),
    path("records/<int:pk>/retry/", views.RecordRetryView.as_view(), name="record-retry"),
    path("records/<int:pk>/cancel/", views.RecordCancelView.as_view(), name="record-cancel"),
    path("records/<int:pk>/resolve/", views.RecordResolveView.as_view(), name="record-resolve"),
    path("search/", views.SearchView.as_view(), name="search"),
    re_path(r"^.*$", errors.not_found),
]

# What the schema describes: the v1 endpoints at their real paths, nothing else of the project.
schema_patterns = [path("api/v1/", include((v1_patterns, "api")))]

urlpatterns = [
    path("v1/", include(v1_patterns)),
    path("schema/", SpectacularAPIView.as_view(patterns=schema_patterns), name="schema"),
    path("docs/", docs.api_docs, name="docs"),
]
