from django.apps import AppConfig


class MasterDataConfig(AppConfig):
    name = "masterdata"
    verbose_name = "Two-way master data"
