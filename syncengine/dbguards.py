"""Database-enforced guarantees that no application code path can bypass.

Used from migrations (so they exist on every database the app runs on):
- `append_only`: a table whose rows can be inserted and read, never updated or deleted.
- the sandbox ledger's balance and immutability triggers (see sandbox migration 0002).

Written for PostgreSQL (plpgsql) and SQLite; the application never runs on anything else.
TRUNCATE is left to database permissions: production runs as a role that is not the tables'
owner (docs/deployment.md), and the test suite's teardown needs it.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _append_only_sql(vendor: str, table: str) -> list[str]:
    if vendor == "postgresql":
        return [
            f"""
            CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{table} is append-only: % is not allowed', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$ LANGUAGE plpgsql;
            """,
            f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_append_only();
            """,
        ]
    return [
        f"""
        CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE is not allowed'); END;
        """,
        f"""
        CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE is not allowed'); END;
        """,
    ]


def _drop_append_only_sql(vendor: str, table: str) -> list[str]:
    if vendor == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};",
            f"DROP FUNCTION IF EXISTS {table}_append_only();",
        ]
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_update;",
        f"DROP TRIGGER IF EXISTS {table}_no_delete;",
    ]


def run_vendor_sql(forward: Any, backward: Any) -> migrations.RunPython:
    """A migration operation running `forward(vendor)` / `backward(vendor)` statements."""

    def apply(builder: Any) -> Any:
        def run(apps: Any, schema_editor: Any) -> None:
            for statement in builder(schema_editor.connection.vendor):
                schema_editor.execute(statement, params=None)

        return run

    return migrations.RunPython(apply(forward), apply(backward))


def append_only(table: str) -> migrations.RunPython:
    return run_vendor_sql(
        lambda vendor: _append_only_sql(vendor, table),
        lambda vendor: _drop_append_only_sql(vendor, table),
    )
