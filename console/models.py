"""Console-side records: failed logins (kept to slow down password guessing) and what each
person chose for themselves."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class FailedLogin(models.Model):
    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        # login_throttled() counts recent failures per username and per address.
        indexes = [
            models.Index(fields=["username", "at"], name="failed_login_user"),
            models.Index(fields=["ip", "at"], name="failed_login_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%Y-%m-%d %H:%M}"


class UserPreference(models.Model):
    """What a person chose for themselves: the time zone the console shows times in."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crosswalk_preference"
    )
    # An IANA name ("America/New_York"); blank: the site default (settings.TIME_ZONE).
    time_zone = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone or 'default time zone'})"
