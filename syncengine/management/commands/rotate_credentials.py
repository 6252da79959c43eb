"""python manage.py rotate_credentials — re-encrypt all connection credentials with the newest key.

Put the new key first in CROSSWALK_ENCRYPTION_KEYS (keeping the old ones after it), run this, then
drop the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from syncengine.connections import connection_credentials_rotate


class Command(BaseCommand):
    help = "Re-encrypt every connection's credentials with the newest encryption key."

    def handle(self, *args: Any, **options: Any) -> None:
        count = connection_credentials_rotate()
        self.stdout.write(f"Re-encrypted the credentials of {count} connection(s).")
