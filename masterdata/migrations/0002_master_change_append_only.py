from django.db import migrations

from syncengine.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("masterdata", "0001_initial")]

    operations = [append_only("masterdata_masterchange")]
