from django.contrib import admin

from syncengine.admin import ReadOnlyAdmin
from syncengine.erps.sandbox.models import (
    JournalEntry,
    LedgerAccount,
    LedgerCustomer,
    LedgerInvoice,
    LedgerTaxCode,
)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(admin.ModelAdmin):
    list_display = ["number", "name", "type", "active", "direct_posting", "connection"]
    list_filter = ["connection", "type", "active"]


@admin.register(LedgerTaxCode)
class LedgerTaxCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "rate", "active", "connection"]


@admin.register(LedgerCustomer)
class LedgerCustomerAdmin(ReadOnlyAdmin):
    list_display = ["number", "name", "source_ref", "connection"]
    search_fields = ["number", "name"]


@admin.register(LedgerInvoice)
class LedgerInvoiceAdmin(ReadOnlyAdmin):
    list_display = ["number", "external_document_number", "customer", "posting_date", "amount"]
    search_fields = ["number", "external_document_number"]


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ["number", "posting_date", "memo", "state", "connection"]
