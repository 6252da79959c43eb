"""Reads Crosswalk's configuration from environment variables.

Every value is parsed by a small typed helper that fails at start-up with a message naming the
variable and what it expected, so a typo in a deployment never turns into a confusing error later.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default) or default
    if value not in choices:
        allowed = ", ".join(choices)
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {allowed}.")
    return value


def secret_key(*, data_dir: Path, production: bool) -> str:
    """SECRET_KEY from the environment; on the embedded default, generated once and kept.

    Production must bring its own key so that every web and worker machine signs sessions alike.
    """
    key = env_str("SECRET_KEY")
    if key:
        if production and len(key) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters in production.")
        return key
    if production:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when CROSSWALK_ENV=production. "
            "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    # Written with owner-only permissions: the key signs sessions and password-reset links.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def encryption_keys(*, data_dir: Path, production: bool) -> list[str]:
    """Fernet keys for connection credentials: CROSSWALK_ENCRYPTION_KEYS, newest first.

    Older keys stay in the list while credentials are re-encrypted (`manage.py
    rotate_credentials`). On the embedded default one key is generated once and kept beside the
    database; production must bring its own so that every machine can read the same secrets.
    """
    from cryptography.fernet import Fernet

    keys = env_list("CROSSWALK_ENCRYPTION_KEYS", [])
    if keys:
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError:
                raise ImproperlyConfigured(
                    f"CROSSWALK_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe "
                    "base64-encoded bytes). Generate one with: python -c 'from "
                    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
                ) from None
        return keys
    if production:
        raise ImproperlyConfigured(
            "CROSSWALK_ENCRYPTION_KEYS is required when CROSSWALK_ENV=production. Generate a key "
            "with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    key_file = data_dir / "encryption_key"
    if key_file.exists():
        return [key_file.read_text().strip()]
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return [key]


def database_config(*, data_dir: Path) -> dict[str, object]:
    """DATABASE_URL, or a SQLite file in the data folder tuned for a web and a worker process."""
    import dj_database_url

    url = env_str("DATABASE_URL")
    if not url:
        data_dir.mkdir(parents=True, exist_ok=True)
        return sqlite_config(data_dir / "crosswalk.sqlite3")
    try:
        config = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {error}") from None
    engine = str(config.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        return sqlite_config(Path(str(config["NAME"])))
    if not engine.endswith("postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL uses {engine!r}; Crosswalk supports postgres:// and sqlite:// URLs."
        )
    return config


def sqlite_config(path: Path) -> dict[str, object]:
    # WAL lets the web process read while a worker writes; IMMEDIATE transactions and a busy
    # timeout make concurrent writers wait for each other instead of failing with "locked".
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
    }


def broker_config(*, data_dir: Path) -> tuple[str, dict[str, object]]:
    """CELERY_BROKER_URL, or kombu's filesystem transport, which needs no server."""
    url = env_str("CELERY_BROKER_URL")
    if url:
        if url.split("://", 1)[0] not in {"redis", "rediss", "amqp", "pyamqp", "filesystem"}:
            raise ImproperlyConfigured(
                f"CELERY_BROKER_URL={url!r}: use redis://, amqp:// or filesystem://."
            )
        if not url.startswith("filesystem"):
            return url, {"visibility_timeout": 3600, "socket_timeout": 30}
    folder = Path(env_str("CROSSWALK_BROKER_DIR") or data_dir / "broker")
    (folder / "queue").mkdir(parents=True, exist_ok=True)
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    (folder / "control").mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        # Celery's remote-control mailboxes; without this they land in the working directory.
        "control_folder": str(folder / "control"),
        "store_processed": False,
        # Kombu's virtual transports sleep this long whenever a worker cannot take a message
        # (e.g. while its one prefetched task runs); the 1 s default caps a worker at ~1 task/s.
        "polling_interval": 0.05,
    }
