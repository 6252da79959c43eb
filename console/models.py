"""Console-side records: failed logins, kept to slow down password guessing."""

from __future__ import annotations

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
