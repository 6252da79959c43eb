"""Django admin for operators: connections are editable; what was received and what happened
to it is read-only (the event table is append-only in the database as well)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from syncengine.models import Connection, SourceDocument, SourceReceipt, SyncEvent, SyncRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "target", "currency", "time_zone"]
    # The webhook secret is set with `manage.py webhook_secret`; only its hash is stored.
    exclude = ["webhook_secret_hash"]
    filter_horizontal = ["members"]


@admin.register(SourceReceipt)
class SourceReceiptAdmin(ReadOnlyAdmin):
    list_display = ["id", "connection", "channel", "origin", "body_bytes", "outcome", "received_at"]
    list_filter = ["connection", "channel", "outcome"]


@admin.register(SourceDocument)
class SourceDocumentAdmin(ReadOnlyAdmin):
    list_display = ["number", "kind", "status", "customer_name", "total", "connection"]
    list_filter = ["connection", "kind", "status"]
    search_fields = ["number", "customer_name"]


@admin.register(SyncRecord)
class SyncRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "document", "state", "attempts", "erp_document_number", "connection"]
    list_filter = ["connection", "state"]
    search_fields = ["document__number", "erp_document_number", "idempotency_key"]


@admin.register(SyncEvent)
class SyncEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "record", "at", "actor", "from_state", "to_state"]
    list_filter = ["to_state"]
