from django.urls import path

from syncengine import views

app_name = "hooks"

urlpatterns = [
    path(
        "servicetrade/<slug:slug>/<str:secret>/",
        views.servicetrade_webhook,
        name="servicetrade",
    ),
    # Senders that sign with HMAC-SHA256: no secret in the URL, the signature carries the proof.
    path("signed/<slug:slug>/", views.signed_webhook, name="signed"),
]
