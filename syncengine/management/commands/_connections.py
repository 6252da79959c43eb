"""Shared by the management commands: pick the connection a command works on."""

from __future__ import annotations

from django.core.management.base import CommandError

from syncengine.models import Connection


def connection_from_option(slug: str | None) -> Connection:
    """The named connection, or the only one there is; a clear error otherwise."""
    slugs = list(Connection.objects.order_by("slug").values_list("slug", flat=True))
    if not slugs:
        raise CommandError(
            "There is no connection yet. Run `python manage.py load_demo` for a demo one."
        )
    if slug is None:
        if len(slugs) > 1:
            raise CommandError(
                f"Several connections exist; pick one with --connection: {', '.join(slugs)}"
            )
        slug = slugs[0]
    connection = Connection.objects.filter(slug=slug).first()
    if connection is None:
        raise CommandError(f"No connection {slug!r}. Known connections: {', '.join(slugs)}")
    return connection
