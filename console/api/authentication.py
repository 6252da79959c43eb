"""`Authorization: Token <token>` authentication, and the per-user request budget."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

from console.api.models import ApiToken, hash_token

# `last_used_at` is written at most this often per token, not on every request.
LAST_USED_PRECISION = timedelta(minutes=1)
DEFAULT_RATE = "600/min"


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the token as `Authorization: Token <token>`."
            )
        try:
            token = header[1].decode()
        except UnicodeError as error:
            raise exceptions.AuthenticationFailed("The token is not valid.") from error
        row = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=hash_token(token), revoked_at__isnull=True)
            .first()
        )
        if row is None or not row.user.is_active:
            raise exceptions.AuthenticationFailed("The token is not valid or has been revoked.")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
            row.last_used_at = now
        return row.user, row

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiUserRateThrottle(UserRateThrottle):
    """Requests per user (all of a user's tokens and the session share one budget).

    The rate is `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["crosswalk_api"]`, read per request
    (600/min when unset; None turns throttling off)."""

    scope = "crosswalk_api"

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope, DEFAULT_RATE) if isinstance(rates, dict) else DEFAULT_RATE


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes `TokenAuthentication` in the OpenAPI schema."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`: create one with POST /api/v1/tokens/.",
        }
