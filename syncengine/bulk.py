"""Many rows written in one statement with one JSON parameter (PostgreSQL).

Django's bulk insert, and an UPDATE joined to VALUES, send a parameter per value; the driver
(binding on the client, as Django has it do) parses such a statement and quotes each parameter
in Python, and caches the parse only for statements of at most 50 parameters. A page of 500
documents is 6,500 parameters, a batch of 25 settled records over 400. Here the rows are one
`jsonb` parameter, encoded by the C JSON encoder, and PostgreSQL reads them back into their
columns (`jsonb_to_recordset`). Used on the engine's hottest writes only. SQLite takes Django's
bulk insert and `executemany`, which cost little in-process (on PostgreSQL psycopg's
`executemany` pipelines its statements, sending and polling several times for each).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import models, transaction


def rows_insert(objects: Sequence[models.Model], *, key: str) -> None:
    """Insert new rows of one model in one statement and set their primary keys (SQLite:
    Django's bulk insert).

    `key` is a field whose value is different on every row given: the ids are matched to the
    rows by it, not by the order the database returns them in. Defaults must already be on the
    instances (as Django sets them when an instance is made)."""
    if not objects:
        return
    meta, connection = objects[0]._meta, transaction.get_connection()
    if connection.vendor != "postgresql":
        type(objects[0])._default_manager.bulk_create(objects, batch_size=500)
        return
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    rows = [{field.column: field.pre_save(row, True) for field in fields} for row in objects]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    key_field = _concrete(meta, key)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {columns} "
            f"FROM {_given(fields, connection)} "
            f"RETURNING {quote(meta.pk.column)}, {quote(key_field.column)}",
            [json.dumps(rows, default=json_value)],
        )
        ids = {given_key: pk for pk, given_key in cursor.fetchall()}
    for row in objects:
        row.pk = ids[getattr(row, key_field.attname)]
        row._state.adding, row._state.db = False, connection.alias


def rows_update(objects: Sequence[models.Model], *, fields: Sequence[str]) -> None:
    """Write `fields` of saved rows of one model in one statement (SQLite: one executemany)."""
    if not objects:
        return
    meta, connection = objects[0]._meta, transaction.get_connection()
    columns = [_concrete(meta, name) for name in fields]
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET {', '.join(f'{quote(f.column)} = %s' for f in columns)} "
                f"WHERE {pk} = %s",
                [[field.get_db_prep_save(getattr(row, field.attname), connection)
                  for field in columns] + [row.pk] for row in objects],
            )  # fmt: skip
        return
    given = [meta.pk, *columns]
    rows = [{field.column: getattr(row, field.attname) for field in given} for row in objects]
    assignments = ", ".join(f"{quote(field.column)} = given.{quote(field.column)}"
                            for field in columns)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} FROM {_given(given, connection)} "
            f"WHERE {table}.{pk} = given.{pk}",
            [json.dumps(rows, default=json_value)],
        )


def _concrete(meta: Any, name: str) -> Any:
    """The column-backed field of that name (a foreign key by its field name)."""
    return next(field for field in meta.concrete_fields if field.name == name)


def _given(fields: Sequence[Any], connection: Any) -> str:
    """The rows of the statement's one JSON parameter, as a table `given` of these columns."""
    quote = connection.ops.quote_name
    typed = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in fields)
    return f"jsonb_to_recordset(%s::jsonb) AS given({typed})"


def json_value(value: Any) -> Any:
    """Values JSON lacks, as PostgreSQL reads them back into their columns (a datetime keeps
    its microseconds, which Django's JSON encoder would cut; a Decimal its digits)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")
