from django.db import migrations

from syncengine.dbguards import run_vendor_sql
from syncengine.erps.sandbox import invoice_sql


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0010_lines_guard_per_statement")]

    operations = [run_vendor_sql(invoice_sql.function_create, invoice_sql.function_drop)]
