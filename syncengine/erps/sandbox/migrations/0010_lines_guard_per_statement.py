from django.db import migrations

from syncengine.dbguards import run_vendor_sql
from syncengine.erps.sandbox import ledger_sql


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0009_ledgercustomer_details")]

    operations = [run_vendor_sql(ledger_sql.lines_per_statement, ledger_sql.lines_per_row)]
