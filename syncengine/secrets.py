"""Connection credentials, encrypted at rest.

Credentials (client secrets, passwords, refresh tokens) are stored as one Fernet token per
connection side, so the database and its backups never hold them in clear. They are decrypted
only inside a connector, are never rendered (the console shows which fields are set, never their
values) and never logged. `MultiFernet` lets an operator rotate keys: new keys go first in
CROSSWALK_ENCRYPTION_KEYS, `manage.py rotate_credentials` re-encrypts, then old keys are dropped.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialsUnreadable(Exception):
    """The stored credentials were encrypted with a key Crosswalk no longer has."""


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.CROSSWALK_ENCRYPTION_KEYS])


def encrypt(values: dict[str, Any]) -> str:
    if not values:
        return ""
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        plain = _fernet().decrypt(token.encode())
    except InvalidToken:
        raise CredentialsUnreadable(
            "The saved credentials cannot be decrypted with the keys in CROSSWALK_ENCRYPTION_KEYS. "
            "Restore the key they were saved with, or enter the credentials again."
        ) from None
    values = json.loads(plain)
    if not isinstance(values, dict):
        raise CredentialsUnreadable("The saved credentials are not a set of named fields.")
    return values


def rotate(token: str) -> str:
    """The same credentials, re-encrypted with the newest key."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "The saved credentials cannot be decrypted with any key in CROSSWALK_ENCRYPTION_KEYS."
        ) from None
