"""The sandbox ledger's database rules (applied by migration 0002; on PostgreSQL, rule 2 for
lines is checked once per statement since migration 0010).

1. A journal entry is created as a draft; it becomes POSTED only if it has at least two lines
   and its debits equal its credits to the cent.
2. A posted entry, and every line of it, can be neither changed nor deleted.
"""

ENTRY = "sandbox_journalentry"
LINE = "sandbox_journalline"

POSTGRES = [
    f"""
    CREATE OR REPLACE FUNCTION sandbox_entry_guard() RETURNS trigger AS $$
    DECLARE
        imbalance numeric;
        line_count integer;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.state = 'POSTED' THEN
                RAISE EXCEPTION 'journal entry %: entries are created as drafts', NEW.number;
            END IF;
            RETURN NEW;
        END IF;
        IF OLD.state = 'POSTED' THEN
            RAISE EXCEPTION 'journal entry % is posted: % is not allowed', OLD.number, TG_OP;
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        IF NEW.state = 'POSTED' THEN
            SELECT COALESCE(SUM(debit) - SUM(credit), 0), COUNT(*)
              INTO imbalance, line_count
              FROM {LINE} WHERE entry_id = NEW.id;
            IF line_count < 2 OR imbalance <> 0 THEN
                RAISE EXCEPTION 'journal entry % does not balance: % lines, debits minus credits %',
                    NEW.number, line_count, imbalance;
            END IF;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql;
    """,
    f"""
    CREATE TRIGGER sandbox_entry_guard BEFORE INSERT OR UPDATE OR DELETE ON {ENTRY}
    FOR EACH ROW EXECUTE FUNCTION sandbox_entry_guard();
    """,
    f"""
    CREATE OR REPLACE FUNCTION sandbox_line_guard() RETURNS trigger AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') AND EXISTS (
            SELECT 1 FROM {ENTRY} WHERE id = OLD.entry_id AND state = 'POSTED') THEN
            RAISE EXCEPTION 'journal line % belongs to a posted entry: % is not allowed',
                OLD.id, TG_OP;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND EXISTS (
            SELECT 1 FROM {ENTRY} WHERE id = NEW.entry_id AND state = 'POSTED') THEN
            RAISE EXCEPTION 'lines cannot be added to a posted journal entry';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql;
    """,
    f"""
    CREATE TRIGGER sandbox_line_guard BEFORE INSERT OR UPDATE OR DELETE ON {LINE}
    FOR EACH ROW EXECUTE FUNCTION sandbox_line_guard();
    """,
]

POSTGRES_DROP = [
    f"DROP TRIGGER IF EXISTS sandbox_entry_guard ON {ENTRY};",
    "DROP FUNCTION IF EXISTS sandbox_entry_guard();",
    f"DROP TRIGGER IF EXISTS sandbox_line_guard ON {LINE};",
    "DROP FUNCTION IF EXISTS sandbox_line_guard();",
]

# SQLite stores these decimals with NUMERIC affinity; sums are rounded to the cent before the
# comparison so binary fractions cannot make a balanced entry look unbalanced.
_POSTED_ENTRY = f"(SELECT state FROM {ENTRY} WHERE id = {{row}}.entry_id) = 'POSTED'"

SQLITE = [
    f"""
    CREATE TRIGGER sandbox_entry_created_draft BEFORE INSERT ON {ENTRY}
    WHEN NEW.state = 'POSTED'
    BEGIN SELECT RAISE(ABORT, 'journal entries are created as drafts'); END;
    """,
    f"""
    CREATE TRIGGER sandbox_entry_posted_frozen BEFORE UPDATE ON {ENTRY}
    WHEN OLD.state = 'POSTED'
    BEGIN SELECT RAISE(ABORT, 'journal entry is posted: UPDATE is not allowed'); END;
    """,
    f"""
    CREATE TRIGGER sandbox_entry_posted_kept BEFORE DELETE ON {ENTRY}
    WHEN OLD.state = 'POSTED'
    BEGIN SELECT RAISE(ABORT, 'journal entry is posted: DELETE is not allowed'); END;
    """,
    f"""
    CREATE TRIGGER sandbox_entry_balances BEFORE UPDATE OF state ON {ENTRY}
    WHEN NEW.state = 'POSTED' AND (
        (SELECT COUNT(*) FROM {LINE} WHERE entry_id = NEW.id) < 2
        OR (SELECT ROUND(COALESCE(SUM(debit), 0) - COALESCE(SUM(credit), 0), 2)
            FROM {LINE} WHERE entry_id = NEW.id) <> 0
    )
    BEGIN SELECT RAISE(ABORT, 'journal entry does not balance'); END;
    """,
    f"""
    CREATE TRIGGER sandbox_line_insert_open BEFORE INSERT ON {LINE}
    WHEN {_POSTED_ENTRY.format(row="NEW")}
    BEGIN SELECT RAISE(ABORT, 'lines cannot be added to a posted journal entry'); END;
    """,
    f"""
    CREATE TRIGGER sandbox_line_update_open BEFORE UPDATE ON {LINE}
    WHEN {_POSTED_ENTRY.format(row="OLD")} OR {_POSTED_ENTRY.format(row="NEW")}
    BEGIN SELECT RAISE(ABORT, 'journal line belongs to a posted entry: UPDATE is not allowed');
    END;
    """,
    f"""
    CREATE TRIGGER sandbox_line_delete_open BEFORE DELETE ON {LINE}
    WHEN {_POSTED_ENTRY.format(row="OLD")}
    BEGIN SELECT RAISE(ABORT, 'journal line belongs to a posted entry: DELETE is not allowed');
    END;
    """,
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS sandbox_entry_created_draft;",
    "DROP TRIGGER IF EXISTS sandbox_entry_posted_frozen;",
    "DROP TRIGGER IF EXISTS sandbox_entry_posted_kept;",
    "DROP TRIGGER IF EXISTS sandbox_entry_balances;",
    "DROP TRIGGER IF EXISTS sandbox_line_insert_open;",
    "DROP TRIGGER IF EXISTS sandbox_line_update_open;",
    "DROP TRIGGER IF EXISTS sandbox_line_delete_open;",
]


def forward(vendor: str) -> list[str]:
    return POSTGRES if vendor == "postgresql" else SQLITE


def backward(vendor: str) -> list[str]:
    return POSTGRES_DROP if vendor == "postgresql" else SQLITE_DROP


# Migration 0010, PostgreSQL: rule 2 for lines checked once per statement instead of once per
# row (a PL/pgSQL call for every line of every invoice was a fifth of the ledger's write). The
# statement's lines are joined with their entries in one query; an entry inserted by the same
# statement is still a draft, so the lines of a new entry pass.
_LINES_GUARD = f"""
CREATE OR REPLACE FUNCTION sandbox_lines_guard() RETURNS trigger AS $$
DECLARE
    touched bigint;
BEGIN
    -- Entry by entry (a statement's lines belong to one or a few), each looked up by its key:
    -- a join of the transition table would be planned without statistics and could read the
    -- whole entry table on every statement. Each query is planned only when reached: a trigger
    -- has only the transition tables of its event.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        FOR touched IN SELECT DISTINCT entry_id FROM new_lines LOOP
            IF EXISTS (SELECT 1 FROM {ENTRY} WHERE id = touched AND state = 'POSTED') THEN
                RAISE EXCEPTION 'lines cannot be added to a posted journal entry';
            END IF;
        END LOOP;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        FOR touched IN SELECT DISTINCT entry_id FROM old_lines LOOP
            IF EXISTS (SELECT 1 FROM {ENTRY} WHERE id = touched AND state = 'POSTED') THEN
                RAISE EXCEPTION 'lines of posted journal entry %: % is not allowed',
                    touched, TG_OP;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""

_PER_STATEMENT = [
    f"DROP TRIGGER IF EXISTS sandbox_line_guard ON {LINE};",
    "DROP FUNCTION IF EXISTS sandbox_line_guard();",
    _LINES_GUARD,
    f"""CREATE TRIGGER sandbox_lines_inserted AFTER INSERT ON {LINE}
        REFERENCING NEW TABLE AS new_lines
        FOR EACH STATEMENT EXECUTE FUNCTION sandbox_lines_guard();""",
    f"""CREATE TRIGGER sandbox_lines_updated AFTER UPDATE ON {LINE}
        REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
        FOR EACH STATEMENT EXECUTE FUNCTION sandbox_lines_guard();""",
    f"""CREATE TRIGGER sandbox_lines_deleted AFTER DELETE ON {LINE}
        REFERENCING OLD TABLE AS old_lines
        FOR EACH STATEMENT EXECUTE FUNCTION sandbox_lines_guard();""",
]

_PER_ROW = [
    f"DROP TRIGGER IF EXISTS sandbox_lines_inserted ON {LINE};",
    f"DROP TRIGGER IF EXISTS sandbox_lines_updated ON {LINE};",
    f"DROP TRIGGER IF EXISTS sandbox_lines_deleted ON {LINE};",
    "DROP FUNCTION IF EXISTS sandbox_lines_guard();",
    *POSTGRES[2:4],  # the row trigger of migration 0002 and its function
]


def lines_per_statement(vendor: str) -> list[str]:
    return _PER_STATEMENT if vendor == "postgresql" else []


def lines_per_row(vendor: str) -> list[str]:
    return _PER_ROW if vendor == "postgresql" else []
