from django.db import migrations

from syncengine.dbguards import run_vendor_sql
from syncengine.erps.sandbox import ledger_sql


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0001_initial")]

    operations = [run_vendor_sql(ledger_sql.forward, ledger_sql.backward)]
