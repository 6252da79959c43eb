"""Login with throttling: after too many failures for one username or from one address within
the window, further attempts are refused for a while, whatever the password."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils import timezone

from console.models import FailedLogin

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)


def client_ip(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


@receiver(user_login_failed)
def _remember_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                      **kwargs: Any) -> None:  # fmt: skip
    FailedLogin.objects.create(
        username=str(credentials.get("username", ""))[:150], ip=client_ip(request),
        at=timezone.now(),
    )  # fmt: skip


def login_throttled(*, username: str, ip: str | None) -> bool:
    """Counted per username: behind a proxy every client may share one address, and one
    guesser must not lock everybody out. The address is kept for the audit of attempts."""
    if not username:
        return False
    recent = FailedLogin.objects.filter(at__gte=timezone.now() - WINDOW, username=username)
    return recent.count() >= MAX_FAILURES


def login(request: HttpRequest) -> HttpResponseBase:
    if request.method == "POST" and login_throttled(
        username=request.POST.get("username", ""), ip=client_ip(request)
    ):
        minutes = int(WINDOW.total_seconds() // 60)
        return TemplateResponse(
            request, "registration/login.html",
            {"form": AuthenticationForm(request), "next": request.POST.get("next", ""),
             "throttled": f"Too many failed logins. Try again in {minutes} minutes, or ask an "
                          "administrator to reset your password."},
            status=429,
        )  # fmt: skip
    return auth_views.LoginView.as_view()(request)
