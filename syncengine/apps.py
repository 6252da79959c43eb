from django.apps import AppConfig


class SyncengineConfig(AppConfig):
    name = "syncengine"
    verbose_name = "Sync engine"
