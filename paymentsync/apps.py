from django.apps import AppConfig


class PaymentSyncConfig(AppConfig):
    name = "paymentsync"
    verbose_name = "Payments and notifications"
