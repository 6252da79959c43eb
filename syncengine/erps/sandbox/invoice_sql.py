"""An invoice (or credit memo) and its journal entry written in one round trip, on PostgreSQL.

The ORM writes a sandbox invoice in five statements (numbers, entry, lines, posting the entry,
invoice) between BEGIN and COMMIT, each a round trip, while both number series stay locked, so
concurrent workers queue behind one another for the length of all seven. Here one statement draws
both numbers and inserts the entry, its lines and the invoice, and a second statement in the same
message posts the entry, which is when the database checks the balance (ledger_sql.py). Sent
outside a transaction, PostgreSQL runs the two statements of one message as one transaction of
their own: both happen or neither does. The rows and rules are the ORM path's; only the number of
trips differs. SQLite keeps the ORM path (it has no data-modifying WITH, and no network between
Python and the database).
"""

from __future__ import annotations

import contextlib
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
RETURNING id, number;
UPDATE sandbox_journalentry SET state = 'POSTED'
WHERE id = (SELECT journal_entry_id FROM sandbox_ledgerinvoice
            WHERE connection_id = %(connection)s AND external_document_number = %(key)s);
"""


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

    Outside a transaction the message is its own transaction. Inside one (an outer atomic block)
    it runs in a savepoint, so a refusal leaves the caller's transaction usable; the number
    series then stay locked until that transaction ends."""
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
    # A transaction block of our own would cost two more round trips (BEGIN, COMMIT).
    savepoint = transaction.atomic() if db.in_atomic_block else contextlib.nullcontext()
    with savepoint, db.cursor() as cursor:
        # Both statements go in one message (Django binds parameters on the client); the first
        # one's rows come back first.
        cursor.execute(_WRITE, parameters)
        written = cursor.fetchone()
    if written is None:
        return None
    return int(written[0]), str(written[1])
