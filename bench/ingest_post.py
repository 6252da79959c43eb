"""Benchmark: ingest N demo invoices and post them with real Celery workers into the sandbox ledger.

    .venv/bin/python bench/ingest_post.py --invoices 2000 [--workers 2] [--concurrency 1]
    .venv/bin/python bench/ingest_post.py --invoices 1200 --rate 20   # steady arrivals

Without `--rate`, invoices arrive in pages of 500 as fast as they can be ingested (throughput).
With `--rate N`, they arrive one at a time, N per second, as webhooks would (latency at a steady
load); the run prints whether ingestion kept up with the schedule.

Uses DATABASE_URL / CELERY_BROKER_URL when set (a fresh PostgreSQL database is created and dropped
for the run), else the embedded defaults in a temporary folder; DEBUG is off unless set. Workers
start first (the first one runs beat, whose sweeper re-drives retries); invoices are then
ingested in pages of 500 while the workers post them, as in production.

Prints: ingest rate (invoices/s), end-to-end posting throughput (invoices/s from the first receipt
to the last posting), ingest-to-posted latency p50/p95/max, peak memory of this process and of
each worker, and the CPU time each side spent per invoice (this process, the workers,
PostgreSQL) — on a machine whose cores all three share, the sum says how far it can go.
Results are for docs/performance.md; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fresh_database(tmp: Path) -> tuple[str, str | None]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{tmp / 'bench.sqlite3'}", None
    import psycopg

    name = f"crosswalk_bench_{uuid.uuid4().hex[:8]}"
    server = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}")), name


def drop_database(name: str) -> None:
    import psycopg

    server = urlunsplit(urlsplit(os.environ["BENCH_SERVER_URL"])._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_tree_peak_mb(pid: int) -> float:
    """Peak resident memory of a worker and its pool children (Linux /proc)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    return sum(peak_rss_mb(one) for one in pids if Path(f"/proc/{one}").exists())


def cpu_seconds(workers: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU time used so far (user + system, Linux /proc) by this process, the workers with
    their pool children, and every PostgreSQL process on the machine (the run's database is
    the only busy one)."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(pid: int, *, reaped_children: bool = False) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            return 0.0
        ticks = int(fields[11]) + int(fields[12])
        if reaped_children:  # backends that have ended count towards the postmaster
            ticks += int(fields[13]) + int(fields[14])
        return ticks / tick

    def tree(pid: int) -> list[int]:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return [pid] + ([int(c) for c in children.read_text().split()] if children.exists() else [])

    postgres = [
        int(entry.name) for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _command(entry).startswith("postgres")
    ]  # fmt: skip
    return {
        "bench": time.process_time(),
        "workers": sum(used(pid) for worker in workers for pid in tree(worker.pid)),
        "postgresql": sum(used(pid, reaped_children=True) for pid in postgres),
    }


def _command(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="invoices per second, one at a time (0: pages)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="crosswalk-bench-"))
    server_url = os.environ.get("DATABASE_URL", "")
    database_url, database_name = fresh_database(tmp)
    os.environ.update(
        DATABASE_URL=database_url,
        BENCH_SERVER_URL=server_url,
        CROSSWALK_DATA_DIR=str(tmp / "data"),
        CROSSWALK_BROKER_DIR=str(tmp / "broker"),
        DJANGO_SETTINGS_MODULE="console.settings",
        LOG_LEVEL="WARNING",
    )
    # As production runs (CROSSWALK_ENV=production turns it off): Django's debug mode logs
    # every query, which a benchmark of the engine should not count.
    os.environ.setdefault("DEBUG", "false")
    try:
        run(args, tmp)
    finally:
        if database_name:
            drop_database(database_name)


def run(args: argparse.Namespace, tmp: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from console import demo

    connection = demo.demo_connection_setup()
    workers = start_workers(args, tmp)
    try:
        cpu_before = cpu_seconds(workers)
        ingest_seconds = ingest_steady(connection, args) if args.rate else ingest(connection, args)
        posted_at_end = wait_until_settled(args.invoices)
        cpu = {name: used - cpu_before[name] for name, used in cpu_seconds(workers).items()}
        report(args, ingest_seconds, posted_at_end, workers)
        print("cpu per invoice     " + ", ".join(
            f"{name} {seconds / args.invoices * 1000:.2f} ms" for name, seconds in cpu.items()
        ))  # fmt: skip
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def start_workers(args: argparse.Namespace, tmp: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(args.workers):
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "console",
            "worker",
            "--concurrency",
            str(args.concurrency),
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench{index}@%h",
        ]
        if index == 0:
            # Beat, as in production: its sweeper re-drives a record sent to retry, which
            # would otherwise wait until the run timed out.
            command += ["--beat", "--schedule", str(tmp / "celerybeat-schedule")]
        log = (tmp / f"worker{index}.log").open("wb")
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
            )
        )
    time.sleep(3)  # let the workers connect before the first nudge is published
    return workers


def ingest(connection: object, args: argparse.Namespace) -> float:
    import itertools
    import json

    from django.utils import timezone

    from console import demo
    from syncengine import services
    from syncengine.models import SourceReceipt

    generated = demo.demo_invoices(seed=args.seed, count=args.invoices)
    started = time.perf_counter()
    while batch := list(itertools.islice(generated, 500)):
        body = json.dumps({"data": {"invoices": [item["data"] for item in batch]}}).encode()
        services.invoices_ingest(
            connection=connection,
            body=body,  # type: ignore[arg-type]
            channel=SourceReceipt.Channel.DEMO,
            origin="bench",
            now=timezone.now(),
        )
    return time.perf_counter() - started


def ingest_steady(connection: object, args: argparse.Namespace) -> float:
    """One invoice per call, on a fixed schedule of `args.rate` a second; a call that runs late
    is not made up for by bunching the next ones, so the load stays steady."""
    import json

    from django.utils import timezone

    from console import demo
    from syncengine import services
    from syncengine.models import SourceReceipt

    generated = demo.demo_invoices(seed=args.seed, count=args.invoices)
    interval = 1 / args.rate
    started = time.perf_counter()
    late = 0
    for index, item in enumerate(generated):
        wait = started + index * interval - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -interval:
            late += 1
        services.invoices_ingest(
            connection=connection,  # type: ignore[arg-type]
            body=json.dumps({"data": item["data"]}).encode(),
            channel=SourceReceipt.Channel.WEBHOOK,
            origin="bench",
            now=timezone.now(),
        )
    elapsed = time.perf_counter() - started
    print(f"steady arrivals     {args.invoices / elapsed:.1f} invoices/s asked {args.rate:g}; "
          f"{late} arrived more than one interval late")  # fmt: skip
    return elapsed


def wait_until_settled(expected: int, timeout: float = 3600) -> float:
    from syncengine.models import SyncRecord, SyncState

    waiting = [SyncState.READY, SyncState.POSTING, SyncState.RETRY_SCHEDULED, SyncState.UNCERTAIN]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            SyncRecord.objects.count() >= expected
            and not SyncRecord.objects.filter(state__in=waiting).exists()
        ):
            return time.perf_counter()
        time.sleep(0.2)
    raise SystemExit("records did not settle in time")


def report(
    args: argparse.Namespace,
    ingest_seconds: float,
    _end: float,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    from django.db import connection as db
    from django.db.models import Count

    from syncengine.models import SyncRecord, SyncState

    posted = SyncRecord.objects.filter(state=SyncState.POSTED)
    latencies = sorted(
        (record.posted_at - record.received_at).total_seconds()
        for record in posted.only("posted_at", "received_at")
    )
    first_received = (
        SyncRecord.objects.order_by("received_at").values_list("received_at", flat=True).first()
    )
    last_posted = posted.order_by("-posted_at").values_list("posted_at", flat=True).first()
    span = (last_posted - first_received).total_seconds() if latencies else 0.0
    states = dict(SyncRecord.objects.values_list("state").annotate(n=Count("id")))
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 20 else [0.0] * 19
    broker = os.environ.get("CELERY_BROKER_URL") or "filesystem"
    print(f"database            {db.vendor}; broker {broker}")
    print(f"workers             {args.workers} x concurrency {args.concurrency}")
    print(f"invoices            {args.invoices} ({states})")
    print(
        f"ingest              {args.invoices / ingest_seconds:,.0f} invoices/s "
        f"({ingest_seconds:.1f} s)"
    )
    print(
        f"end to end          {len(latencies) / span if span else 0:,.0f} invoices/s posted "
        f"({span:.1f} s from first receipt to last posting)"
    )
    print(
        f"ingest->posted      p50 {statistics.median(latencies):.2f} s, "
        f"p95 {quantiles[18]:.2f} s, max {latencies[-1]:.2f} s"
    )
    bench_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = ", ".join(
        f"worker{i} {worker_tree_peak_mb(w.pid):.0f} MB" for i, w in enumerate(workers)
    )
    print(f"peak memory         bench {bench_mb:.0f} MB; {worker_mb}")


if __name__ == "__main__":
    main()
