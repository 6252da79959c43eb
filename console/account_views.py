"""The signed-in person's own settings: the time zone times are shown in."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from console.timezones import (
    preferred_time_zone,
    remember_in_session,
    time_zone_names,
    user_time_zone_set,
)


@require_http_methods(["GET", "POST"])
@login_required
def account(request: HttpRequest) -> HttpResponse:
    error = ""
    chosen = preferred_time_zone(request.user)
    if request.method == "POST":
        chosen = request.POST.get("time_zone", "").strip()
        try:
            user_time_zone_set(user=request.user, time_zone=chosen)
        except ValueError as problem:
            error = str(problem)
        else:
            remember_in_session(request, chosen)
            shown = chosen or "the site default"
            messages.success(request, f"Times are now shown in {shown}.")
            return redirect("account")
    context = {"zones": time_zone_names(), "chosen": chosen, "error": error}
    return TemplateResponse(request, "console/account.html", context, status=400 if error else 200)
