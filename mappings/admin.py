from django.contrib import admin

from mappings.models import PostingDefaults, ValueMap


@admin.register(ValueMap)
class ValueMapAdmin(admin.ModelAdmin):
    list_display = ["connection", "kind", "source_label", "target_code", "target_account"]
    list_filter = ["connection", "kind"]
    search_fields = ["source_label", "target_account"]


@admin.register(PostingDefaults)
class PostingDefaultsAdmin(admin.ModelAdmin):
    list_display = ["connection", "receivable_account", "revenue_account"]
