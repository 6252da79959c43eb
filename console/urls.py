from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import account_views, auth, views

console_patterns = [
    path("", views.home, name="home"),
    path("connections/", views.dashboard_index, name="dashboard-index"),
    path("connections/<slug:slug>/", views.dashboard, name="dashboard"),
    path(
        "connections/<slug:slug>/retry-cause/",
        views.dashboard_retry_cause,
        name="dashboard-retry-cause",
    ),
    path(
        "connections/<slug:slug>/retries/<str:batch>/",
        views.retry_progress,
        name="retry-progress",
    ),
    path("sync/", views.sync_log, name="sync-log"),
    path("sync/retry/", views.sync_log_retry, name="sync-log-retry"),
    path("sync/retries/<str:batch>/", views.sync_log_retry_progress, name="sync-retry-progress"),
    path("sync/<int:pk>/", views.record_detail, name="record-detail"),
    path("sync/<int:pk>/retry/", views.record_retry, name="record-retry"),
    path("sync/<int:pk>/cancel/", views.record_cancel, name="record-cancel"),
    path("sync/<int:pk>/resolve/", views.record_resolve, name="record-resolve"),
    path(
        "sync/<int:pk>/change/reissue/", views.record_change_reissue, name="record-change-reissue"
    ),
    path("sync/<int:pk>/change/ignore/", views.record_change_ignore, name="record-change-ignore"),
    path("search/", views.search, name="search"),
    path("ledger/<slug:slug>/invoices/<str:number>/", views.ledger_invoice, name="ledger-invoice"),
]

urlpatterns = [
    path("", include((console_patterns, "console"))),
    path("connections/<slug:slug>/rules/", include("console.rules_urls")),
    path("login/", auth.login, name="login"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(success_url="/account/password/done/"),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", account_views.account, name="account"),
    path("hooks/", include("syncengine.urls")),
    path("api/", include("console.api.urls")),
    path("", include("console.ops_urls")),
    path("admin/", admin.site.urls),
]
