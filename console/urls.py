from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from console import views

console_patterns = [
    path("", RedirectView.as_view(pattern_name="console:sync-log"), name="home"),
    path("sync/", views.sync_log, name="sync-log"),
    path("sync/<int:pk>/", views.record_detail, name="record-detail"),
    path("sync/<int:pk>/retry/", views.record_retry, name="record-retry"),
    path("search/", views.search, name="search"),
    path("ledger/<slug:slug>/invoices/<str:number>/", views.ledger_invoice, name="ledger-invoice"),
]

urlpatterns = [
    path("", include((console_patterns, "console"))),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("hooks/", include("syncengine.urls")),
    path("admin/", admin.site.urls),
]
