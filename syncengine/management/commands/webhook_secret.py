"""python manage.py webhook_secret [--connection SLUG] --base-url URL — a new hook URL.

Prints the full URL once; only a hash of its secret is stored, so a lost URL is replaced, not
recovered. The previous URL stops working immediately.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.urls import reverse

from syncengine import services
from syncengine.management.commands._connections import connection_from_option


class Command(BaseCommand):
    help = "Generate a new ServiceTrade webhook URL for a connection (the old one stops working)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", help="Connection slug (default: the only one).")
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where ServiceTrade reaches Crosswalk, e.g. https://crosswalk.example.com",
        )

    def handle(self, *args: Any, connection: str | None, base_url: str, **options: Any) -> None:
        target = connection_from_option(connection)
        secret = services.connection_webhook_secret_rotate(connection=target)
        path = reverse("hooks:servicetrade", args=[target.slug, secret])
        self.stdout.write(f"{base_url.rstrip('/')}{path}")
        self.stderr.write("Shown once: give this URL to ServiceTrade's webhook settings now.")
