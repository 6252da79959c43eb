"""An invoice (or credit memo) and its journal entry written in one round trip, on PostgreSQL.

The ORM writes a sandbox invoice in five statements (numbers, entry, lines, posting the entry,
invoice) between BEGIN and COMMIT, each a round trip, while both number series stay locked, so
concurrent workers queue behind one another for the length of all seven. Here a function of the
ledger (migration 0011) draws both numbers and inserts the entry, its lines and the invoice in
one statement, then posts the entry, which is when the database checks the balance
(ledger_sql.py). One call, so one round trip and one transaction; PL/pgSQL plans the function's
statements once per connection. The rows and rules are the ORM path's; only the number of trips
and plans differs. SQLite keeps the ORM path (it has no data-modifying WITH, no functions, and
no network between Python and the database).

Earlier versions sent the two statements in a psycopg pipeline (prepared: strace counted 9
sends and 15 polls per invoice, and the worker spent 0.47 ms of CPU against 0.16 ms for one
message), then as one simple-protocol message (planned on every invoice: 0.55 ms more of the
server's time). docs/performance.md has the figures.
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

# The function migration 0011 creates (PostgreSQL): both numbers drawn, the entry, its lines
# and the invoice inserted in one statement; then the entry posted, when the database checks
# its balance (ledger_sql.py). No row when a number series is missing. A change to it needs a
# new migration running `function_create` again (CREATE OR REPLACE), as 0010 did for the guards.
_FUNCTION = f"""
CREATE OR REPLACE FUNCTION sandbox_invoice_write(
    p_connection bigint, p_kind text, p_key text, p_customer bigint, p_posting_date date,
    p_currency text, p_amount numeric, p_memo text, p_lines jsonb, p_entry_prefix text,
    p_invoice_prefix text
) RETURNS TABLE (invoice_id bigint, invoice_number text) AS $$
BEGIN
    WITH drawn AS (
        UPDATE sandbox_numberseries SET last_value = last_value + 1
        WHERE id IN (
            SELECT id FROM sandbox_numberseries
            WHERE connection_id = p_connection AND prefix IN (p_entry_prefix, p_invoice_prefix)
            ORDER BY prefix FOR UPDATE
        )
        -- Both series or neither: a missing one must not leave the other's number used up.
        AND (SELECT count(*) FROM sandbox_numberseries
             WHERE connection_id = p_connection
               AND prefix IN (p_entry_prefix, p_invoice_prefix)) = 2
        RETURNING prefix, {_NUMBER} AS number
    ), entry AS (
        INSERT INTO sandbox_journalentry
            (connection_id, number, posting_date, memo, external_document_number, state,
             created_at)
        SELECT p_connection, number, p_posting_date, p_memo, p_key, 'DRAFT', now()
        FROM drawn WHERE prefix = p_entry_prefix
        RETURNING id
    ), lines AS (
        INSERT INTO sandbox_journalline
            (entry_id, account_id, debit, credit, description, tax_code, dimensions)
        SELECT entry.id, line.account_id, line.debit, line.credit, line.description,
               line.tax_code, line.dimensions
        FROM entry, jsonb_to_recordset(p_lines) AS line(
            account_id bigint, debit numeric, credit numeric, description text, tax_code text,
            dimensions jsonb)
    )
    INSERT INTO sandbox_ledgerinvoice AS invoice
        (connection_id, kind, number, external_document_number, customer_id, posting_date,
         currency, amount, journal_entry_id, created_at)
    SELECT p_connection, p_kind, drawn.number, p_key, p_customer, p_posting_date, p_currency,
           p_amount, entry.id, now()
    FROM entry, drawn WHERE drawn.prefix = p_invoice_prefix
    RETURNING invoice.id, invoice.number INTO invoice_id, invoice_number;
    IF invoice_id IS NULL THEN
        RETURN;
    END IF;
    UPDATE sandbox_journalentry SET state = 'POSTED'
    WHERE id = (SELECT journal_entry_id FROM sandbox_ledgerinvoice WHERE id = invoice_id);
    RETURN NEXT;
END
$$ LANGUAGE plpgsql;
"""


def function_create(vendor: str) -> list[str]:
    return [_FUNCTION] if vendor == "postgresql" else []


def function_drop(vendor: str) -> list[str]:
    return ["DROP FUNCTION IF EXISTS sandbox_invoice_write;"] if vendor == "postgresql" else []


_WRITE = """
SELECT invoice_id, invoice_number FROM sandbox_invoice_write(
    %(connection)s, %(kind)s, %(key)s, %(customer)s, %(posting_date)s, %(currency)s,
    %(amount)s, %(memo)s, %(lines)s::jsonb, %(entry_prefix)s, %(invoice_prefix)s)
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

    Outside a transaction the call is a transaction of its own. Inside one (an outer atomic
    block) it runs in a savepoint, so a refusal leaves the caller's transaction usable; the
    number series then stay locked until that transaction ends."""
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
        cursor.execute(_WRITE, parameters)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))
