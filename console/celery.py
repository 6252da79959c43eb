"""The Celery application. Workers only wake up; the sync records in the database say what to do."""

import os

from celery import Celery

from console import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
broker.install()

app = Celery("crosswalk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
