from django.urls import path

from syncengine import views

app_name = "hooks"

urlpatterns = [
    path(
        "servicetrade/<slug:slug>/<str:secret>/",
        views.servicetrade_webhook,
        name="servicetrade",
    ),
]
