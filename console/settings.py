"""Django settings for Crosswalk: one module, configured only by environment variables.

The embedded default (no variables set) runs on a SQLite file and a filesystem Celery broker in
./data; production sets CROSSWALK_ENV=production, DATABASE_URL, CELERY_BROKER_URL and SECRET_KEY.
See docs/deployment.md.
"""

from __future__ import annotations

from pathlib import Path

from console import config

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(config.env_str("CROSSWALK_DATA_DIR") or BASE_DIR / "data")

CROSSWALK_ENV = config.env_choice(
    "CROSSWALK_ENV", "development", ("development", "test", "production")
)
PRODUCTION = CROSSWALK_ENV == "production"

SECRET_KEY = config.secret_key(data_dir=DATA_DIR, production=PRODUCTION)
# Connection credentials are encrypted at rest with these (syncengine/secrets.py).
CROSSWALK_ENCRYPTION_KEYS = config.encryption_keys(data_dir=DATA_DIR, production=PRODUCTION)
DEBUG = config.env_bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = config.env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = config.env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "console",
    "mappings",
    "syncengine",
    "syncengine.erps.sandbox",
    "paymentsync",
    "masterdata",
    "console.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.timezones.time_zone_middleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.timezones.time_zone_context",
            ],
        },
    },
]

DATABASES = {"default": config.database_config(data_dir=DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:sync-log"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"

# Sessions: short idle timeout for a finance tool; secure cookies whenever served over HTTPS.
SESSION_COOKIE_AGE = config.env_int("SESSION_IDLE_SECONDS", 60 * 60 * 8, minimum=60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
X_FRAME_OPTIONS = "DENY"

# E-mail: console output unless an SMTP host is configured.
EMAIL_HOST = config.env_str("EMAIL_HOST")
EMAIL_PORT = config.env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = config.env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = config.env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = config.env_bool("EMAIL_USE_TLS", default=True)
DEFAULT_FROM_EMAIL = config.env_str("DEFAULT_FROM_EMAIL", "crosswalk@localhost")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)

# Celery: the database row is the truth about a sync record; a message is only a nudge.
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = config.broker_config(data_dir=DATA_DIR)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connection before and after every task unless told
# to reuse it (then it closes it every this many tasks). Workers keep theirs as web requests do:
# console/celery.py drops one that is broken or older than CONN_MAX_AGE before each task.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-sync-records": {
        "task": "syncengine.tasks.sync_records_sweep",
        "schedule": config.env_int("CROSSWALK_SWEEP_SECONDS", 15, minimum=1),
    },
    "reconcile": {
        "task": "syncengine.tasks.reconciliation_run_all",
        "schedule": config.env_int("CROSSWALK_RECONCILE_SECONDS", 86400, minimum=60),
    },
    "timecards-catch-up": {
        "task": "syncengine.tasks.timecards_catch_up",
        "schedule": config.env_int("CROSSWALK_TIME_CATCH_UP_SECONDS", 7 * 86400, minimum=60),
    },
    "refresh-catalogs": {
        "task": "mappings.tasks.catalogs_refresh",
        "schedule": config.env_int("CROSSWALK_CATALOG_REFRESH_SECONDS", 3600, minimum=60),
    },
    "purge-idempotency-keys": {
        "task": "console.api.tasks.idempotent_requests_purge",
        "schedule": config.env_int("CROSSWALK_IDEMPOTENCY_PURGE_SECONDS", 3600, minimum=60),
    },
    # ServiceTrade API connections: each polls at its own interval (source_settings), checked
    # every minute; write-back of posting outcomes runs as often.
    "servicetrade-poll": {
        "task": "syncengine.tasks.servicetrade_poll_due",
        "schedule": config.env_int("CROSSWALK_SERVICETRADE_TICK_SECONDS", 60, minimum=10),
    },
    "servicetrade-write-back": {
        "task": "syncengine.tasks.servicetrade_write_back_all",
        "schedule": config.env_int("CROSSWALK_SERVICETRADE_TICK_SECONDS", 60, minimum=10),
    },
    # ERP purchase orders → ServiceTrade job items (sources/servicetrade_api/purchase_orders.py).
    "servicetrade-purchase-orders": {
        "task": "syncengine.tasks.servicetrade_purchase_orders_due",
        "schedule": config.env_int("CROSSWALK_SERVICETRADE_PO_SECONDS", 900, minimum=60),
    },
    # Payments applied in the ERP, read back and told to ServiceTrade (syncengine/payments.py).
    "payments-sync": {
        "task": "syncengine.tasks.payments_sync_all",
        "schedule": config.env_int("CROSSWALK_PAYMENTS_SECONDS", 3600, minimum=60),
    },
    # E-mail to support contacts when blocked/failed counts rise, and the daily digest, sent
    # by the first run after CROSSWALK_DIGEST_HOUR in each connection's time zone.
    "notifications-check": {
        "task": "syncengine.tasks.notifications_check_all",
        "schedule": config.env_int("CROSSWALK_NOTIFY_SECONDS", 300, minimum=30),
    },
    # Two-way master data: read the ERP's changed customers, then tell each side the customer,
    # location and contact fields it has not been told (masterdata/services.py); what cannot
    # be told stays queued for the next run.
    "master-data-sync": {
        "task": "masterdata.tasks.master_data_sync_all",
        "schedule": config.env_int("CROSSWALK_MASTER_DATA_SECONDS", 300, minimum=30),
    },
    "notifications-digest": {
        "task": "syncengine.tasks.notifications_digest_all",
        "schedule": 900,
    },
}

# Sync engine tuning.
# A lease outlives the task's hard time limit, so no second worker takes a record that a live
# worker is still posting.
CROSSWALK_LEASE_SECONDS = config.env_int("CROSSWALK_LEASE_SECONDS", 360, minimum=5)
# Off in unit tests, which post in the foreground; the e2e tests run real workers.
CROSSWALK_NUDGE_WORKERS = config.env_bool("CROSSWALK_NUDGE_WORKERS", default=True)
CROSSWALK_MAX_ATTEMPTS = config.env_int("CROSSWALK_MAX_ATTEMPTS", 8, minimum=1)
# Records a worker claims and settles together (one claim, one commit for their outcomes); each
# still goes to the ERP on its own. Smaller batches settle sooner, larger ones cost less.
CROSSWALK_POST_BATCH = config.env_int("CROSSWALK_POST_BATCH", 25, minimum=1)
# Fault injection into the sandbox ledger, for reliability tests only (see erps/sandbox/faults.py).
CROSSWALK_SANDBOX_FAULTS = config.env_str("CROSSWALK_SANDBOX_FAULTS")
# First retry delay; each further attempt doubles it (capped at an hour).
CROSSWALK_RETRY_BASE_SECONDS = config.env_int("CROSSWALK_RETRY_BASE_SECONDS", 30, minimum=1)
CROSSWALK_MAX_PAYLOAD_BYTES = config.env_int("CROSSWALK_MAX_PAYLOAD_BYTES", 5_000_000, minimum=1024)
# Demos only: every ServiceTrade API call goes to an in-process fake ServiceTrade
# (syncengine/sources/servicetrade_api/fake.py) instead of the connection's base URL.
CROSSWALK_SERVICETRADE_FAKE = config.env_bool("CROSSWALK_SERVICETRADE_FAKE", default=False)
DATA_UPLOAD_MAX_MEMORY_SIZE = CROSSWALK_MAX_PAYLOAD_BYTES
# The console's address as people reach it, for links in e-mails (no trailing slash).
CROSSWALK_CONSOLE_URL = config.env_str("CROSSWALK_CONSOLE_URL", "http://localhost:8000").rstrip("/")
# The local hour (0-23, each connection's time zone) after which yesterday's digest is sent.
CROSSWALK_DIGEST_HOUR = int(
    config.env_choice("CROSSWALK_DIGEST_HOUR", "7", tuple(str(hour) for hour in range(24)))
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "crosswalk_api": config.env_str("CROSSWALK_API_RATE", "600/min") or "600/min"
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Crosswalk API",
    "DESCRIPTION": "Sync records, connections, reconciliations and posting rules. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_hook_secrets": {"()": "console.logging.RedactHookSecrets"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_hook_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": config.env_str("LOG_LEVEL", "INFO") or "INFO"},
    # Django's request and development-server loggers print paths, hook secrets included.
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
