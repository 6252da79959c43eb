"""The Celery application. Workers only wake up; the sync records in the database say what to do."""

import os
from typing import Any

from celery import Celery, signals

from console import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
broker.install()

app = Celery("crosswalk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
def database_connections_checked(sender: Any = None, **_: object) -> None:
    """Before each task a worker runs, what Django does before each request: a connection that
    is broken, or older than CONN_MAX_AGE, is closed (the next query opens a new one); a good
    one is reused instead of connecting anew for every task (CELERY_DB_REUSE_MAX). A task run
    eagerly, in the caller's process, leaves the caller's connection alone."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
