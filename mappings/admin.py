"""Read-only views of the crosswalk for staff: rules change only through the audited services
(the console's rules editor, the API and `manage.py rules import`), never through the admin."""

from django.contrib import admin

from mappings.models import CatalogEntry, RuleAudit, RuleDraft, RuleVersion, SourceValue
from syncengine.admin import ReadOnlyAdmin


@admin.register(RuleVersion)
class RuleVersionAdmin(ReadOnlyAdmin):
    list_display = ["connection", "number", "effective_from", "published_by", "published_at"]
    list_filter = ["connection"]


@admin.register(RuleDraft)
class RuleDraftAdmin(ReadOnlyAdmin):
    list_display = ["connection", "base_version", "updated_by", "updated_at"]


@admin.register(RuleAudit)
class RuleAuditAdmin(ReadOnlyAdmin):
    list_display = ["at", "connection", "actor", "action", "subject", "reason"]
    list_filter = ["connection", "action"]
    search_fields = ["subject", "actor", "reason"]


@admin.register(CatalogEntry)
class CatalogEntryAdmin(ReadOnlyAdmin):
    list_display = ["connection", "kind", "parent", "code", "name", "active", "missing_since"]
    list_filter = ["connection", "kind", "active"]
    search_fields = ["code", "name"]


@admin.register(SourceValue)
class SourceValueAdmin(ReadOnlyAdmin):
    list_display = ["connection", "attribute", "value", "documents", "last_seen_at"]
    list_filter = ["connection", "attribute"]
