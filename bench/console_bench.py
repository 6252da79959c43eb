"""Benchmark: the console's sync log and searches over 1,000,000 sync records on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/console_bench.py [--records 1000000] [--repeat 40] [--keep]

Creates (or, with --keep, reuses) the database `crosswalk_console_bench` on the server of
DATABASE_URL, migrates it, and fills it with `--records` documents and sync records in one
INSERT … SELECT generate_series per table (a realistic mix: mostly posted, some blocked, failed,
waiting; invoice numbers, customers and amounts that repeat the way real ones do). Then renders
each page in-process with Django's test client, as an AR user, `--repeat` times, and prints the
server time per page (request in, rendered response out: views, queries, templates) at p50 / p95 /
max, plus the number of queries of one render. Results are for docs/performance.md; nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATABASE = "crosswalk_console_bench"


def bench_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL server: this benchmark is about PostgreSQL.")
    return urlunsplit(urlsplit(url)._replace(path=f"/{DATABASE}"))


def ensure_database(url: str, *, keep: bool) -> None:
    import psycopg

    server = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
        if exists and not keep:
            admin.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
            exists = None
        if not exists:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')


# One statement per table: PostgreSQL generates the rows itself, so a million take seconds.
FILL_DOCUMENTS = """
INSERT INTO syncengine_sourcedocument
    (connection_id, kind, source_id, number, status, customer_name, total, payload, canonical,
     content_hash, receipt_id, first_received_at, last_received_at)
SELECT %(connection)s, 'INVOICE', n::text, (100000 + n)::text, 'ok',
       'Customer ' || (n %% 5000) || CASE WHEN n %% 7 = 0 THEN ' Foods' ELSE ' Mechanical' END,
       ((n::bigint * 7919) %% 500000) / 100.0 + 25, '{}'::jsonb, '{}'::jsonb, md5(n::text),
       %(receipt)s, %(start)s::timestamptz + n * interval '20 seconds',
       %(start)s::timestamptz + n * interval '20 seconds'
FROM generate_series(1, %(count)s) AS n
"""
FILL_RECORDS = """
INSERT INTO syncengine_syncrecord
    (connection_id, document_id, operation, idempotency_key, state, attempts,
     attempts_before_retry, lease_token, erp_document_id, erp_document_number, erp_document_url,
     failure_category, failure_cause, message, problems, received_at, posted_at,
     state_changed_at, retry_batch)
SELECT d.connection_id, d.id, 'CREATE', 'ST-INV-' || d.source_id,
       CASE WHEN n %% 100 < 90 THEN 'POSTED' WHEN n %% 100 < 94 THEN 'BLOCKED'
            WHEN n %% 100 < 97 THEN 'FAILED' ELSE 'READY' END,
       1, 0, '',
       CASE WHEN n %% 100 < 90 THEN 'led-' || n ELSE '' END,
       CASE WHEN n %% 100 < 90 THEN 'SI-' || (500000 + n) ELSE '' END, '',
       CASE WHEN n %% 100 BETWEEN 90 AND 93 THEN 'UNMAPPED_SERVICE_LINE'
            WHEN n %% 100 BETWEEN 94 AND 96 THEN 'VALUE' ELSE '' END,
       CASE WHEN n %% 100 BETWEEN 90 AND 93 THEN 'UNMAPPED_SERVICE_LINE:Fire Sprinkler ' || (n %% 3)
            WHEN n %% 100 BETWEEN 94 AND 96 THEN 'VALUE' ELSE '' END,
       CASE WHEN n %% 100 BETWEEN 90 AND 96 THEN 'Waiting for a fix.' ELSE '' END,
       '[]'::jsonb, d.first_received_at,
       CASE WHEN n %% 100 < 90 THEN d.first_received_at + interval '90 seconds' END,
       d.first_received_at + interval '90 seconds', ''
FROM syncengine_sourcedocument d, LATERAL (SELECT d.source_id::int AS n) AS s
WHERE d.connection_id = %(connection)s
"""


def fill(count: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection as db
    from django.utils import timezone

    from console.access import Role
    from syncengine.models import Connection, SourceReceipt, SyncRecord

    connection, _ = Connection.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user, created = User.objects.get_or_create(username="ar-bench")
    if created:
        user.groups.add(Group.objects.get_or_create(name=Role.AR)[0])
        connection.members.add(user)
    have = SyncRecord.objects.filter(connection=connection).count()
    if have >= count:
        print(f"reusing {have:,} sync records")
        return
    receipt = SourceReceipt.objects.create(
        connection=connection, channel=SourceReceipt.Channel.DEMO, body="{}", body_bytes=2,
        received_at=timezone.now(), outcome=SourceReceipt.Outcome.ACCEPTED,
    )  # fmt: skip
    params = {"connection": connection.pk, "receipt": receipt.pk, "count": count,
              "start": "2026-01-01T00:00:00Z"}  # fmt: skip
    started = time.perf_counter()
    with db.cursor() as cursor:
        cursor.execute("TRUNCATE syncengine_syncrecord, syncengine_sourcedocument CASCADE")
        cursor.execute(FILL_DOCUMENTS, params)
        cursor.execute(FILL_RECORDS, params)
    with db.cursor() as cursor:
        # What autovacuum would have done by then: statistics, and the visibility map that lets
        # counts be answered from indexes alone.
        cursor.execute("VACUUM ANALYZE")
    print(f"filled {count:,} documents and sync records in {time.perf_counter() - started:.1f} s")


def pages(count: int) -> dict[str, str]:
    middle = 100000 + count // 2
    return {
        "sync log, first page": "/sync/",
        "sync log, page 100 (keyset)": f"/sync/?before={count - 5000}",
        "sync log, failed": "/sync/?state=FAILED",
        "sync log, blocked by one cause": "/sync/?cause=UNMAPPED_SERVICE_LINE:Fire+Sprinkler+1",
        "sync log, one received day": "/sync/?from=2026-03-01&to=2026-03-01",
        "sync log, text filter": "/sync/?q=Foods",
        "search, exact invoice number": f"/search/?q={middle}",
        "search, number fragment": f"/search/?q={str(middle)[1:5]}",
        "search, ERP number": f"/search/?q=SI-{500000 + count // 3}",
        "search, customer": "/search/?q=Customer+4242",
        "search, amount": "/search/?q=1,234.50",
        "dashboard": "/connections/bench/",
    }


def measure(repeat: int, count: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection as db
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username="ar-bench"))
    print(f"\n{'page':<34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    for label, url in pages(count).items():
        with CaptureQueriesContext(db) as queries:
            response = client.get(url)  # also warms caches, as any page seen before would be
        query_count = len(queries)  # now: each request starts by emptying Django's query log
        if response.status_code != 200:
            sys.exit(f"{url} answered {response.status_code}")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{label:<34} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f} "
              f"{query_count:8d}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="reuse the database if filled")
    args = parser.parse_args()
    url = bench_url()
    ensure_database(url, keep=args.keep)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    # As in production: cached templates, no query log kept between requests.
    os.environ.setdefault("DEBUG", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fill(args.records)
    measure(args.repeat, args.records)


if __name__ == "__main__":
    main()
