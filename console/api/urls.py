"""Mounted at `api/`: the versioned API under `v1/`, its OpenAPI schema and a docs page."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from console.api import docs, errors, masterdata_views, ops_views, rules_views, views

app_name = "api"

RULES = "connections/<slug:slug>/rules/"
DRAFT = RULES + "draft/"
VERSION = RULES + "versions/<int:number>/"

rules_patterns = [
    path(DRAFT, rules_views.DraftView.as_view(), name="rule-draft"),
    path(DRAFT + "discard/", rules_views.DraftDiscardView.as_view(), name="rule-draft-discard"),
    path(DRAFT + "maps/<str:kind>/rows/", rules_views.MapRowView.as_view(), name="rule-map-row"),
    path(
        DRAFT + "maps/<str:kind>/rows/delete/",
        rules_views.MapRowDeleteView.as_view(),
        name="rule-map-row-delete",
    ),
    path(DRAFT + "routing/", rules_views.RoutingListView.as_view(), name="rule-routing-list"),
    path(
        DRAFT + "routing/<int:rule_id>/",
        rules_views.RoutingDetailView.as_view(),
        name="rule-routing-detail",
    ),
    path(
        DRAFT + "routing/<int:rule_id>/delete/",
        rules_views.RoutingDeleteView.as_view(),
        name="rule-routing-delete",
    ),
    path(
        DRAFT + "maps/<str:kind>/import/",
        rules_views.MapImportView.as_view(),
        name="rule-map-import",
    ),
    path(
        DRAFT + "routing/import/",
        rules_views.RoutingImportView.as_view(),
        name="rule-routing-import",
    ),
    path(DRAFT + "defaults/", rules_views.DefaultsView.as_view(), name="rule-defaults"),
    path(DRAFT + "dimensions/", rules_views.DimensionView.as_view(), name="rule-dimension"),
    path(
        DRAFT + "dimensions/delete/",
        rules_views.DimensionDeleteView.as_view(),
        name="rule-dimension-delete",
    ),
    path(DRAFT + "numbering/", rules_views.NumberingView.as_view(), name="rule-numbering"),
    path(
        DRAFT + "numbering/delete/",
        rules_views.NumberingDeleteView.as_view(),
        name="rule-numbering-delete",
    ),
    path(DRAFT + "ownership/", rules_views.OwnershipView.as_view(), name="rule-ownership"),
    path(
        DRAFT + "ownership/delete/",
        rules_views.OwnershipDeleteView.as_view(),
        name="rule-ownership-delete",
    ),
    path(DRAFT + "diff/", rules_views.DraftDiffView.as_view(), name="rule-draft-diff"),
    path(RULES + "history/", rules_views.HistoryView.as_view(), name="rule-history"),
    path(DRAFT + "validate/", rules_views.DraftValidateView.as_view(), name="rule-validate"),
    path(DRAFT + "preview/", rules_views.DraftPreviewView.as_view(), name="rule-preview"),
    path(DRAFT + "impact/", rules_views.DraftImpactView.as_view(), name="rule-impact"),
    path(DRAFT + "publish/", rules_views.DraftPublishView.as_view(), name="rule-publish"),
    path(DRAFT + "import/", rules_views.DraftImportView.as_view(), name="rule-import"),
    path(RULES + "export/", rules_views.ExportView.as_view(), name="rule-export"),
    path(VERSION + "rollback/", rules_views.VersionRollbackView.as_view(), name="rule-rollback"),
    path(VERSION + "fixed/", rules_views.VersionFixedView.as_view(), name="rule-fixed"),
    path(
        VERSION + "retry-fixed/",
        rules_views.VersionRetryFixedView.as_view(),
        name="rule-retry-fixed",
    ),
]

CONNECTION = "connections/<slug:slug>/"

ops_patterns = [
    path(CONNECTION + "catalog/", ops_views.CatalogListView.as_view(), name="catalog-list"),
    path(
        CONNECTION + "catalog/refresh/",
        ops_views.CatalogRefreshView.as_view(),
        name="catalog-refresh",
    ),
    path(
        CONNECTION + "catalog/import/",
        ops_views.CatalogImportView.as_view(),
        name="catalog-import",
    ),
    path(
        CONNECTION + "ledger/accounts/",
        ops_views.LedgerAccountListView.as_view(),
        name="ledger-accounts",
    ),
    path(
        CONNECTION + "ledger/invoices/",
        ops_views.LedgerInvoiceListView.as_view(),
        name="ledger-invoices",
    ),
    path(
        CONNECTION + "ledger/entries/",
        ops_views.LedgerEntryListView.as_view(),
        name="ledger-entries",
    ),
    path(
        CONNECTION + "ledger/time-entries/",
        ops_views.LedgerTimeEntryListView.as_view(),
        name="ledger-time-entries",
    ),
    path(
        CONNECTION + "webhook-secret/",
        ops_views.WebhookSecretView.as_view(),
        name="connection-webhook-secret",
    ),
    path(
        CONNECTION + "master-data/",
        masterdata_views.MasterDataView.as_view(),
        name="master-data",
    ),
    path(
        CONNECTION + "master-data/changes/",
        masterdata_views.MasterChangesView.as_view(),
        name="master-data-changes",
    ),
    path(
        CONNECTION + "master-data/send/",
        masterdata_views.MasterSendView.as_view(),
        name="master-data-send",
    ),
]

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
    *rules_patterns,
    *ops_patterns,
    path("records/", views.RecordListView.as_view(), name="record-list"),
    path("records/<int:pk>/", views.RecordDetailView.as_view(), name="record-detail"),
    path("records/<int:pk>/retry/", views.RecordRetryView.as_view(), name="record-retry"),
    path("records/<int:pk>/cancel/", views.RecordCancelView.as_view(), name="record-cancel"),
    path("records/<int:pk>/resolve/", views.RecordResolveView.as_view(), name="record-resolve"),
    path(
        "records/<int:pk>/change/reissue/",
        views.RecordChangeReissueView.as_view(),
        name="record-change-reissue",
    ),  # fmt: skip
    path(
        "records/<int:pk>/change/ignore/",
        views.RecordChangeIgnoreView.as_view(),
        name="record-change-ignore",
    ),  # fmt: skip
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
