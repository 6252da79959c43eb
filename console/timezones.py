"""Times in the reader's time zone: each person picks theirs on the account page.

The choice is kept in the database and copied into the session at the first request, so pages
cost no extra query; the middleware activates it for the request, and Django then renders every
aware datetime in it. Dates typed into filters are read in the same zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from console.models import UserPreference

SESSION_KEY = "crosswalk_time_zone"


@cache
def time_zone_names() -> list[str]:
    """Every IANA zone name, sorted, for the picker."""
    return sorted(name for name in available_timezones() if "/" in name or name == "UTC")


def zone_or_none(name: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def preferred_time_zone(user: AbstractBaseUser | AnonymousUser) -> str:
    if not user.is_authenticated:
        return ""
    preference = UserPreference.objects.filter(user_id=user.pk).first()
    return preference.time_zone if preference else ""


def user_time_zone_set(*, user: AbstractBaseUser | AnonymousUser, time_zone: str) -> UserPreference:
    if time_zone and zone_or_none(time_zone) is None:
        raise ValueError(f"{time_zone!r} is not a time zone: pick one from the list.")
    if user.pk is None:
        raise ValueError("Sign in to choose a time zone.")
    preference, _created = UserPreference.objects.update_or_create(
        user_id=user.pk, defaults={"time_zone": time_zone}
    )
    return preference


def time_zone_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    def middleware(request: HttpRequest) -> HttpResponse:
        name = ""
        if request.user.is_authenticated:
            stored = request.session.get(SESSION_KEY)
            if stored is None:
                stored = request.session[SESSION_KEY] = preferred_time_zone(request.user)
            name = str(stored)
        zone = zone_or_none(name)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return get_response(request)
        finally:
            timezone.deactivate()

    return middleware


def remember_in_session(request: HttpRequest, time_zone: str) -> None:
    request.session[SESSION_KEY] = time_zone


def time_zone_context(request: HttpRequest) -> dict[str, str]:
    """`time_zone_name` for labels next to times ("14:05 America/Chicago")."""
    return {"time_zone_name": timezone.get_current_timezone_name()}


def start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` in the active time zone, as an aware datetime."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())
