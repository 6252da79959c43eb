from django.contrib import admin

from paymentsync.models import AppliedPayment, DigestSent, InvoicePayment, NotificationMark
from syncengine.admin import ReadOnlyAdmin


@admin.register(InvoicePayment)
class InvoicePaymentAdmin(ReadOnlyAdmin):
    list_display = ["record", "status", "applied", "total", "told_status", "told_at"]
    list_filter = ["connection", "status"]


@admin.register(AppliedPayment)
class AppliedPaymentAdmin(ReadOnlyAdmin):
    list_display = ["erp_id", "record", "amount", "payment_date", "reason", "changed_at"]
    search_fields = ["erp_id"]


@admin.register(NotificationMark)
class NotificationMarkAdmin(ReadOnlyAdmin):
    list_display = ["connection", "kind", "count_told", "told_at"]


@admin.register(DigestSent)
class DigestSentAdmin(ReadOnlyAdmin):
    list_display = ["connection", "day", "sent_at"]
