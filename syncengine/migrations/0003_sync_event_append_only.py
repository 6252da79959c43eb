from django.db import migrations

from syncengine.dbguards import append_only


class Migration(migrations.Migration):
    dependencies = [("syncengine", "0002_receipt_body_base64")]

    operations = [append_only("syncengine_syncevent")]
