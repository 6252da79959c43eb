"""An invoice (or credit memo) and its journal entry written in one round trip, on PostgreSQL.

The ORM writes a sandbox invoice in five statements (numbers, entry, lines, posting the entry,
invoice) between BEGIN and COMMIT, each a round trip, while both number series stay locked, so
concurrent workers queue behind one another for the length of all seven. Here one statement draws
both numbers and inserts the entry, its lines and the invoice, and a second posts the entry, which
is when the database checks the balance (ledger_sql.py). Both go in one simple-protocol message,
which PostgreSQL runs as one transaction (or inside the caller's), bound on the client as Django
binds every query. (An earlier version sent them in a psycopg pipeline, prepared: the driver
polls a pipeline's socket while it waits, and that spent more of the worker's CPU than the
planning it saved the server.) The rows and rules are the ORM path's; only the number of trips
differs. SQLite keeps the ORM path (it has no data-modifying WITH, and no network between Python
and the database).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection as db
from django.db import transaction

# Numbers are formatted as _next_numbers formats them: prefix, hyphen, at least six digits.
_NUMBER = "prefix || '-' || lpad(last_value::text, greatest(6, length(last_value::text)), '0')"

_WRITE = f"""
WITH drawn AS (
    UPDATE sandbox_numberseries SET last_value = last_value + 1
    WHERE id IN (
        SELECT id FROM sandbox_numberseries
        WHERE connection_id = %(connection)s AND prefix IN (%(entry_prefix)s, %(invoice_prefix)s)
        ORDER BY prefix FOR UPDATE
    )
    -- Both series or neither: a missing one must not leave the other's number used up.
    AND (SELECT count(*) FROM sandbox_numberseries
         WHERE connection_id = %(connection)s
           AND prefix IN (%(entry_prefix)s, %(invoice_prefix)s)) = 2
    RETURNING prefix, {_NUMBER} AS number
), entry AS (
    INSERT INTO sandbox_journalentry
        (connection_id, number, posting_date, memo, external_document_number, state, created_at)
    SELECT %(connection)s, number, %(posting_date)s, %(memo)s, %(key)s, 'DRAFT', now()
    FROM drawn WHERE prefix = %(entry_prefix)s
    RETURNING id
), lines AS (
    INSERT INTO sandbox_journalline
        (entry_id, account_id, debit, credit, description, tax_code, dimensions)
    SELECT entry.id, line.account_id, line.debit, line.credit, line.description, line.tax_code,
           line.dimensions
    FROM entry, jsonb_to_recordset(%(lines)s::jsonb) AS line(
        account_id bigint, debit numeric, credit numeric, description text, tax_code text,
        dimensions jsonb)
)
INSERT INTO sandbox_ledgerinvoice
    (connection_id, kind, number, external_document_number, customer_id, posting_date,
     currency, amount, journal_entry_id, created_at)
SELECT %(connection)s, %(kind)s, drawn.number, %(key)s, %(customer)s, %(posting_date)s,
       %(currency)s, %(amount)s, entry.id, now()
FROM entry, drawn WHERE drawn.prefix = %(invoice_prefix)s
RETURNING id, number
"""

# Posting the entry is when the database checks its balance (ledger_sql.py).
_POST = """
UPDATE sandbox_journalentry SET state = 'POSTED'
WHERE id = (SELECT journal_entry_id FROM sandbox_ledgerinvoice
            WHERE connection_id = %(connection)s AND external_document_number = %(key)s)
"""

# One message: PostgreSQL runs the statements of one simple-protocol message as one transaction
# (the posting's refusal undoes the write), and psycopg sends a query bound on the client so.
_WRITE_AND_POST = _WRITE + ";\n" + _POST


@dataclass(frozen=True)
class LineRow:
    account_id: int
    debit: Decimal
    credit: Decimal
    description: str
    tax_code: str
    dimensions: dict[str, Any]


def invoice_write(
    *,
    connection_id: int,
    kind: str,
    key: str,
    customer_id: int,
    posting_date: date,
    currency: str,
    amount: Decimal,
    memo: str,
    lines: list[LineRow],
    entry_prefix: str,
    invoice_prefix: str,
) -> tuple[int, str] | None:
    """The new invoice's id and number, or None, with nothing written, when a number series does
    not exist yet (the caller creates it and calls again).

    Outside a transaction the two statements run as a transaction of their own. Inside one (an
    outer atomic block) they run in a savepoint, so a refusal leaves the caller's transaction
    usable; the number series then stay locked until that transaction ends."""
    rows = [
        {"account_id": line.account_id, "debit": str(line.debit), "credit": str(line.credit),
         "description": line.description, "tax_code": line.tax_code,
         "dimensions": line.dimensions}
        for line in lines
    ]  # fmt: skip
    parameters: dict[str, Any] = {
        "connection": connection_id, "kind": kind, "key": key, "customer": customer_id,
        "posting_date": posting_date, "currency": currency, "amount": amount, "memo": memo,
        "lines": json.dumps(rows), "entry_prefix": entry_prefix,
        "invoice_prefix": invoice_prefix,
    }  # fmt: skip
    if db.in_atomic_block:
        # Inside the caller's transaction: in a savepoint, so a refusal leaves it usable.
        with transaction.atomic():
            return _sent(parameters)
    return _sent(parameters)


def _sent(parameters: dict[str, Any]) -> tuple[int, str] | None:
    with db.cursor() as cursor:
        cursor.execute(_WRITE_AND_POST, parameters)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))
