"""Operations pages: catalog, reconciliation and the user's API tokens (`console.ops_views`).

Mounted at the site root (`path("", include("console.ops_urls"))`)."""

from django.urls import path

from console import masterdata_views, servicetrade_views
from console import ops_views as views

app_name = "ops"

urlpatterns = [
    path("connections/<slug:slug>/catalog/", views.catalog, name="catalog"),
    path(
        "connections/<slug:slug>/catalog/refresh/",
        views.catalog_refresh_view,
        name="catalog-refresh",
    ),
    path("connections/<slug:slug>/catalog/import/", views.catalog_import, name="catalog-import"),
    path("connections/<slug:slug>/reconciliation/", views.reconciliation, name="reconciliation"),
    path(
        "connections/<slug:slug>/reconciliation/run/",
        views.reconciliation_run_now,
        name="reconciliation-run-now",
    ),
    path(
        "connections/<slug:slug>/reconciliation/<int:pk>/",
        views.reconciliation_detail,
        name="reconciliation-run",
    ),
    path(
        "connections/<slug:slug>/settings/", views.connection_settings, name="connection-settings"
    ),
    path(
        "connections/<slug:slug>/settings/<str:side>/",
        views.connection_settings_save,
        name="connection-settings-save",
    ),
    path(
        "connections/<slug:slug>/settings/<str:side>/test/",
        views.connection_settings_test,
        name="connection-settings-test",
    ),
    path(
        "connections/<slug:slug>/servicetrade/",
        servicetrade_views.servicetrade_status,
        name="servicetrade",
    ),
    path(
        "connections/<slug:slug>/servicetrade/check/",
        servicetrade_views.servicetrade_check,
        name="servicetrade-check",
    ),
    path(
        "connections/<slug:slug>/master-data/",
        masterdata_views.master_data,
        name="master-data",
    ),
    path(
        "connections/<slug:slug>/master-data/send/",
        masterdata_views.master_data_send,
        name="master-data-send",
    ),
    path("account/tokens/", views.tokens, name="tokens"),
    path("account/tokens/new/", views.token_create, name="token-create"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
