"""HMAC-SHA256 signatures for webhook senders other than ServiceTrade (which signs nothing and is
authenticated by the secret in its hook URL instead).

A connection opts in by holding a shared secret, `webhook_hmac_secret`, in its encrypted source
credentials. The sender then signs every delivery:

    signature = hex(HMAC-SHA256(secret, "<timestamp>." + raw body))
    X-Crosswalk-Timestamp: <timestamp, whole Unix seconds>
    X-Crosswalk-Signature: sha256=<signature>

A delivery is accepted only within `WINDOW_SECONDS` of our clock, either way, so a captured
delivery cannot be replayed later; a replay inside the window is harmless because ingestion is
idempotent. The secret is never logged nor returned, except once by `webhook_hmac_secret_issue`.
Documented for senders in docs/api.md.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from syncengine.connections import connection_credentials_set
from syncengine.models import Connection

SECRET_FIELD = "webhook_hmac_secret"
TIMESTAMP_HEADER = "X-Crosswalk-Timestamp"
SIGNATURE_HEADER = "X-Crosswalk-Signature"
SIGNATURE_PREFIX = "sha256="
WINDOW_SECONDS = 300
# Ten digits reach the year 2286; a longer "timestamp" is not one.
MAX_TIMESTAMP_DIGITS = 12


class SignatureError(Exception):
    """A delivery that does not prove it came from the holder of the secret. `code` is stable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def webhook_hmac_secret_of(connection: Connection) -> str:
    """The connection's shared secret, or "" when it accepts no signed deliveries."""
    return str(connection.source_secrets().get(SECRET_FIELD) or "")


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The value of the signature header for this timestamp and body (for senders and tests)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def webhook_timestamp_check(*, timestamp: str | None, now: datetime) -> None:
    """Raise SignatureError unless the timestamp header is present and within the window.

    Checked before the body is read, so a stale or unsigned delivery costs no body read."""
    if not timestamp:
        raise SignatureError("signature_missing", f"Send the {TIMESTAMP_HEADER} header.")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise SignatureError(
            "timestamp_invalid", f"{TIMESTAMP_HEADER} is whole Unix seconds, e.g. 1767225600."
        )
    if abs(now.timestamp() - int(timestamp)) > WINDOW_SECONDS:
        raise SignatureError(
            "timestamp_outside_window",
            f"{TIMESTAMP_HEADER} is more than {WINDOW_SECONDS} seconds away from our clock; "
            "sign each delivery when it is sent.",
        )


def webhook_signature_check(
    *, secret: str, timestamp: str, signature: str | None, body: bytes
) -> None:
    """Raise SignatureError unless `signature` signs this timestamp and body with the secret."""
    if not signature:
        raise SignatureError("signature_missing", f"Send the {SIGNATURE_HEADER} header.")
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    # compare_digest on bytes: a non-ASCII header must fail the comparison, not raise.
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise SignatureError(
            "signature_invalid",
            f"{SIGNATURE_HEADER} does not match the body; sign "
            f'"<{TIMESTAMP_HEADER}>." + the raw body with HMAC-SHA256.',
        )


def webhook_hmac_secret_issue(*, connection: Connection, actor: str, now: datetime) -> str:
    """Give the connection a new shared secret (replacing any earlier one) and return it: the
    only time it is shown. Stored encrypted and audited (`connection_credentials_set`)."""
    secret = secrets.token_urlsafe(32)
    connection_credentials_set(
        connection=connection,
        side="source",
        values={SECRET_FIELD: secret},
        actor=actor,
        now=now,
        reason="New webhook HMAC secret issued.",
    )
    return secret


def webhook_hmac_secret_clear(*, connection: Connection, actor: str, now: datetime) -> None:
    """Remove the shared secret: signed deliveries are refused from now on. Audited."""
    connection_credentials_set(
        connection=connection,
        side="source",
        values={},
        clear=[SECRET_FIELD],
        actor=actor,
        now=now,
        reason="Webhook HMAC secret removed.",
    )
