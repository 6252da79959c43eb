"""Substring search ("did it land?") served by trigram indexes on PostgreSQL.

Django's `icontains` compiles to `UPPER(col::text) LIKE UPPER('%…%')`; GIN trigram indexes on
exactly those expressions let PostgreSQL answer without scanning the table. SQLite, the embedded
default, has no trigram indexes and scans, which is fine at its sizes.
"""

from django.db import migrations

from syncengine.dbguards import run_vendor_sql

INDEXES = [
    ("syncengine_doc_number_trgm", "syncengine_sourcedocument", "number"),
    ("syncengine_doc_customer_trgm", "syncengine_sourcedocument", "customer_name"),
    ("syncengine_rec_erp_number_trgm", "syncengine_syncrecord", "erp_document_number"),
]


def forward(vendor: str) -> list[str]:
    if vendor != "postgresql":
        return []
    return ["CREATE EXTENSION IF NOT EXISTS pg_trgm"] + [
        f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (UPPER({column}::text) gin_trgm_ops)"
        for name, table, column in INDEXES
    ]


def backward(vendor: str) -> list[str]:
    if vendor != "postgresql":
        return []
    return [f"DROP INDEX IF EXISTS {name}" for name, _, _ in INDEXES]


class Migration(migrations.Migration):
    dependencies = [("syncengine", "0013_connection_settings_credentials_audit")]

    operations = [run_vendor_sql(forward, backward)]
