from django.db import migrations

from syncengine.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("syncengine", "0001_initial")]

    operations = [append_only("syncengine_syncevent")]
