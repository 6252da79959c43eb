"""The Celery application. Workers only wake up; the sync records in the database say what to do."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("crosswalk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
