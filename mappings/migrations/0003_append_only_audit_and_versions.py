from django.db import migrations

from syncengine.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("mappings", "0002_versioned_rules_and_catalog")]

    # Published versions are frozen and the audit trail is append-only, for every code path.
    operations = [append_only("mappings_ruleaudit"), append_only("mappings_ruleversion")]
