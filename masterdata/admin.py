from django.contrib import admin

from masterdata.models import MasterChange, MasterRecord
from syncengine.admin import ReadOnlyAdmin


@admin.register(MasterRecord)
class MasterRecordAdmin(ReadOnlyAdmin):
    list_display = ["entity", "source_ref", "erp_ref", "name", "send_error", "updated_at"]
    list_filter = ["connection", "entity"]
    search_fields = ["source_ref", "erp_ref", "name"]


@admin.register(MasterChange)
class MasterChangeAdmin(ReadOnlyAdmin):
    list_display = ["record", "field", "side", "outcome", "changed_at", "standing_side",
                    "standing_at", "received_at"]  # fmt: skip
    list_filter = ["outcome", "side"]
