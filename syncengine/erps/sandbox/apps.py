from django.apps import AppConfig


class SandboxLedgerConfig(AppConfig):
    name = "syncengine.erps.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox ledger"
