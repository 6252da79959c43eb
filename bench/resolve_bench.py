"""Benchmark: resolve a stream of canonical invoices against a large rule set, on one core.

    .venv/bin/python bench/resolve_bench.py [--rules 10000] [--lines 1000000] [--profile]

Builds a realistic rule set (by default 10,000 rules: ~2,000 service-line map rows, ~6,000 GL
routing rules over 1-3 attributes, ~2,000 dimension values, tax-rate, office, state, job-type and
item-type maps), a catalog holding every target plus unused ERP entries, and streams invoices of
5 lines through `resolve_invoice`, generated on the fly 1,000 at a time (never the whole run).

Prints lines/s and documents/s (resolution only, generation excluded; by wall time per call and
by this process's CPU time per call, the steadier figure on a shared machine), p50/p95
per-document time (reservoir sample), plans and problems, where revenue accounts came from, and
memory at 10 %, 50 % and 100 % of the run:
ru_maxrss during the timed pass, then tracemalloc peaks during a second, traced pass (tracing
slows Python several-fold, so it never runs during the timed pass). `--profile` runs the timed
pass under cProfile instead and prints the top 20 functions. Pure: no database, no Django
settings. Results are for docs/performance.md; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mappings.resolve import (  # noqa: E402
    Catalog,
    CatalogValue,
    CompiledRules,
    InvoicePlan,
    Problem,
    compile_rules,
    resolve_invoice,
)
from mappings.ruleset import MAP_KINDS, CatalogKind, RuleSet, parse_ruleset  # noqa: E402
from syncengine.canonical import Address, Invoice, InvoiceLine, Job, Location, Ref  # noqa: E402
from syncengine.money import ZERO, to_cents  # noqa: E402

LINES_PER_INVOICE = 5
SAMPLE_SIZE = 10_000  # per-document times kept for percentiles (reservoir: memory stays flat)
FAMILIES = ["HVAC", "Plumbing", "Electrical", "Refrigeration", "Fire", "Elevators", "Kitchen"]
STATES = ["NC", "SC", "VA", "GA", "TN", "FL", "AL", "KY", "WV", "MD", "PA", "OH"]
JOB_TYPES = ["repair", "install", "maintenance", "inspection", "emergency", "quote", "warranty",
             "retrofit", "startup", "survey", "cleaning", "testing"]  # fmt: skip
TAGS = [f"Tag {name}" for name in ("National", "Key account", "Government", "School", "Hospital",
        "Retail", "Grocery", "Restaurant", "Hotel", "Campus", "Chain", "Franchise", "VIP",
        "Net 60", "Tax exempt")]  # fmt: skip
CITIES = ["Raleigh", "Durham", "Charlotte", "Greensboro", "Wilmington", "Asheville", "Columbia",
          "Charleston", "Greenville", "Richmond", "Norfolk", "Roanoke", "Atlanta", "Savannah",
          "Nashville", "Memphis", "Knoxville", "Tampa", "Orlando", "Jacksonville", "Birmingham",
          "Louisville", "Baltimore", "Pittsburgh", "Columbus"]  # fmt: skip
OFFICES = [f"Office {city}" for city in CITIES]
LINE_KINDS = ["labor", "part", "other"]
UNMAPPED_SHARE = 0.002  # lines on a service line nothing maps: their documents block
UNMAPPED_RATE_SHARE = 0.002  # invoices taxed at a rate the tax-rate map lacks


# --- the rule set ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """The source values the generated invoices draw from."""

    service_lines: list[str]
    tax_rates: list[Decimal]


def service_line_name(index: int) -> str:
    return f"{FAMILIES[index % len(FAMILIES)]} {index // len(FAMILIES):03d}"


def account(index: int) -> str:
    return str(4000 + index % 600)


def build_content(total_rules: int, seed: int = 7, tie_heavy: bool = False) -> dict[str, Any]:
    """A rule-set document of about `total_rules` rules (map rows, routing rules, dim values)."""
    rng = random.Random(seed)
    n_service_lines = total_rules // 5
    n_routing = total_rules * 3 // 5
    n_tax_rates = 40
    fixed = n_tax_rates + 50 + len(OFFICES) + len(STATES) + 3 + 1 + len(OFFICES) + len(STATES)
    n_dimension_values = max(total_rules - n_service_lines - n_routing - fixed, 0)
    service_lines = [service_line_name(i) for i in range(n_service_lines)]
    maps: dict[str, dict[str, dict[str, str]]] = {
        "SERVICE_LINE": {
            name: {"revenue_account": account(i), "cost_code": f"CC{i % 300:03d}"}
            | ({"cost_center": f"CTR{i % 50:02d}"} if i % 10 == 0 else {})
            for i, name in enumerate(service_lines)
        },
        "COST_CENTER": {f"CTR{i:02d}": {"gl_account": account(300 + i)} for i in range(50)},
        "OFFICE": {name: {"department": f"DEP{i:02d}"} for i, name in enumerate(OFFICES)},
        "LOCATION_STATE": {
            state: {"work_state": state, "tax_class": f"TC-{state}", "tax_code": f"ST-{state}"}
            for state in STATES
        },
        "TAX_RATE": {
            rate: {"tax_code": f"TX{i:02d}", "tax_account": str(2300 + i % 4)}
            for i, rate in enumerate(tax_rate_texts(n_tax_rates))
        },
        "JOB_TYPE": {
            job_type: {"gl_account": account(400 + i)} for i, job_type in enumerate(JOB_TYPES[-3:])
        },  # fmt: skip
        "ITEM_TYPE": {"part": {"gl_account": account(500)}},
    }
    dimensions = [
        {"dimension": "DEPARTMENT", "source": "service_line", "default": "GEN",
         "values": {name: f"D{i % 200:03d}" for i, name in
                    enumerate(service_lines[:n_dimension_values])}},
        {"dimension": "CLASS", "source": "office", "required": True,
         "values": {name: f"CL{i:02d}" for i, name in enumerate(OFFICES)}},
        {"dimension": "REGION", "source": "location_state", "default": "R0",
         "values": {state: f"R{i % 4 + 1}" for i, state in enumerate(STATES)}},
        {"dimension": "PROJECT", "source": "job", "pass_through": True},
    ]  # fmt: skip
    return {
        "defaults": {"receivable_account": "1200", "revenue_account": "", "tax_account": "2390",
                     "tax_code_source": "RATE"},
        "maps": maps,
        "routing": routing_rules(rng, service_lines, n_routing, tie_heavy),
        "dimensions": dimensions,
        "numbering": [{"entity": "CUSTOMER", "prefix": "C", "start": 1000, "end": 9999}],
        "ownership": [],
    }  # fmt: skip


def tax_rate_texts(count: int) -> list[str]:
    return [str(Decimal("4.00") + Decimal(i) / 8) for i in range(count)]


# Routing signatures and their share of the routing rules. Rules pointing at one attribute value
# only (e.g. every line of an office) would swallow the maps, so single-attribute rules test a
# service line or a customer tag.
SIGNATURES: list[tuple[tuple[str, ...], float]] = [
    (("service_line",), 0.20),
    (("line_kind", "service_line"), 0.22),
    (("office", "service_line"), 0.15),
    (("customer_tag", "service_line"), 0.06),
    (("job_type", "service_line"), 0.05),
    (("service_line", "state"), 0.05),
    (("document_kind", "line_kind", "service_line"), 0.04),
    (("line_kind", "office", "service_line"), 0.12),
    (("customer_tag", "line_kind", "service_line"), 0.04),
    (("job_type", "line_kind", "state"), 0.03),
    (("line_kind", "office", "state"), 0.03),
    (("customer_tag",), 0.001),
    (("customer_tag", "line_kind"), 0.006),
]


def routing_rules(
    rng: random.Random, service_lines: list[str], count: int, tie_heavy: bool
) -> list[dict[str, Any]]:
    """`count` rules with distinct keys per signature.

    Priorities make the set tie-free: each signature has its own priority band and rules on
    customer tags get one priority per tag (a line can carry several tags). `tie_heavy` gives
    every rule priority 0, so rules of different signatures that can meet tie.
    """
    routed = service_lines[: max(len(service_lines) * 6 // 10, 1)]  # the rest use the maps
    values = {
        "service_line": routed, "line_kind": LINE_KINDS, "office": OFFICES, "state": STATES,
        "job_type": JOB_TYPES, "customer_tag": TAGS, "document_kind": ["invoice"],
    }  # fmt: skip
    rules: list[dict[str, Any]] = []
    weights = sum(share for _signature, share in SIGNATURES)
    for band, (signature, share) in enumerate(SIGNATURES):
        wanted = max(round(count * share / weights), 1)
        space = 1
        for attribute in signature:
            space *= len(values[attribute])
        keys: set[tuple[str, ...]] = set()
        while len(keys) < min(wanted, space) and len(rules) + len(keys) < count:
            keys.add(tuple(rng.choice(values[attribute]) for attribute in signature))
        for key in sorted(keys):
            conditions = dict(zip(signature, key, strict=True))
            tag = TAGS.index(conditions["customer_tag"]) if "customer_tag" in conditions else 0
            priority = 0 if tie_heavy else band * 100 + tag
            rules.append({"id": len(rules) + 1, "conditions": conditions,
                          "account": account(len(rules) * 7), "priority": priority})  # fmt: skip
    return rules


def build_catalog(ruleset: RuleSet, extra_accounts: int = 3000) -> Catalog:
    """Every value the rule set points at, active and postable, plus unused ERP accounts."""
    lists: dict[str, dict[str, CatalogValue]] = {}

    def add(kind: str, key: str, code: str | None = None) -> None:
        lists.setdefault(kind, {})[key] = CatalogValue(code or key, name=f"{kind} {key}")

    for number in range(10000, 10000 + extra_accounts):
        add(CatalogKind.ACCOUNT, str(number))
    defaults = ruleset.defaults
    for code in (defaults.receivable_account, defaults.revenue_account, defaults.tax_account):
        if code:
            add(CatalogKind.ACCOUNT, code)
    for kind, rows in ruleset.maps.items():
        for targets in rows.values():
            for name, code in targets.items():
                add(MAP_KINDS[kind].targets[name], code)
    for rule in ruleset.routing:
        add(CatalogKind.ACCOUNT, rule.account)
    for setting in ruleset.dimensions:
        add(CatalogKind.DIMENSION, setting.dimension)
        for code in [*setting.values.values(), setting.default]:
            if code:
                add(CatalogKind.DIMENSION_VALUE, f"{setting.dimension}/{code}", code)
    return Catalog(lists=lists)


def vocabulary(ruleset: RuleSet) -> Vocabulary:
    rates = [Decimal(rate) for rate in ruleset.maps["TAX_RATE"]]
    return Vocabulary(service_lines=list(ruleset.maps["SERVICE_LINE"]), tax_rates=rates)


# --- the document stream ------------------------------------------------------------------------


def invoices(count: int, vocab: Vocabulary, seed: int = 11) -> Iterator[Invoice]:
    """`count` invoices of 5 lines, made one at a time from a seeded generator."""
    rng = random.Random(seed)
    prices = [Decimal(cents) / 100 for cents in range(500, 250_000, 997)]
    quantities = [Decimal(q) for q in ("1", "1", "2", "0.5", "2.5", "3", "4", "10")]
    customers = [
        (Ref(str(600 + i), f"Customer {i}"), tuple(rng.sample(TAGS, rng.choice((0, 0, 0, 1, 2)))))
        for i in range(2000)
    ]
    locations = [
        Location(str(9000 + i), f"Site {i}", Address(f"{i} Main St", "Town", STATES[i % 12]))
        for i in range(5000)
    ]
    first_day = date(2026, 1, 1)
    for number in range(count):
        customer, tags = rng.choice(customers)
        job_service_line = rng.choice(vocab.service_lines)
        lines = []
        for index in range(LINES_PER_INVOICE):
            service_line = job_service_line if index < 2 else rng.choice(vocab.service_lines)
            if rng.random() < UNMAPPED_SHARE:
                service_line = "Unmapped line"
            quantity, price = rng.choice(quantities), rng.choice(prices)
            lines.append(
                InvoiceLine(
                    source_id=str(index + 1), description=f"{service_line} work",
                    item_type=rng.choice(LINE_KINDS), service_line=service_line,
                    quantity=quantity, unit_price=price, amount=to_cents(quantity * price),
                    taxable=index % 2 == 1,
                )
            )  # fmt: skip
        rate = rng.choice(vocab.tax_rates) if rng.random() < 0.8 else ZERO
        if rng.random() < UNMAPPED_RATE_SHARE:
            rate = Decimal("9.99")
        taxable = sum((line.amount for line in lines if line.taxable), ZERO)
        yield Invoice(
            source_id=str(100_000 + number), number=str(500_000 + number), status="ok",
            transaction_date=first_day + timedelta(days=number % 365), currency="USD",
            customer=customer, location=rng.choice(locations),
            job=Job(str(70_000 + number), f"J-{70_000 + number}", rng.choice(JOB_TYPES),
                    job_service_line),
            office=Ref(str(number % 25), rng.choice(OFFICES)), lines=tuple(lines),
            tax_rate=rate, tax_amount=to_cents(taxable * rate / 100),
            lines_total=sum((line.amount for line in lines), ZERO), customer_tags=tags,
        )  # fmt: skip


# --- running -------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    percent: int
    documents: int
    maxrss_mb: float
    traced_peak_mb: float | None


@dataclass
class RunResult:
    documents: int = 0
    lines: int = 0
    seconds: float = 0.0  # wall time inside resolve_invoice
    cpu_seconds: float = 0.0  # this process's CPU time resolving (batches, generation excluded)
    plans: int = 0
    problem_documents: int = 0
    problem_codes: Counter[str] = field(default_factory=Counter)
    revenue_from: Counter[str] = field(default_factory=Counter)
    samples: list[float] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)


BATCH = 1000  # documents generated ahead of resolving them (generation is never timed)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(
    documents: Iterator[Invoice],
    total: int,
    rules: CompiledRules,
    catalog: Catalog,
    traced: bool = False,
) -> RunResult:
    """Resolve every document, timing only `resolve_invoice`."""
    result = RunResult()
    marks = {max(total * percent // 100, 1): percent for percent in (10, 50, 100)}
    rng = random.Random(5)
    clock = time.perf_counter
    while batch := list(islice(documents, BATCH)):
        for invoice in batch:
            # Each plan is tallied and dropped at once, as the engine posts and drops it: keeping
            # a batch of plans alive would make the collector scan them all, a cost of the
            # benchmark, not of resolution.
            cpu_started = time.process_time()
            started = clock()
            outcome = resolve_invoice(invoice, rules, catalog)
            elapsed = clock() - started
            result.cpu_seconds += time.process_time() - cpu_started
            result.seconds += elapsed
            tally(result, invoice, outcome)
            del outcome
            sample(result.samples, elapsed, result.documents, rng)
            if result.documents in marks:
                peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
                result.checkpoints.append(
                    Checkpoint(marks[result.documents], result.documents, maxrss_mb(), peak)
                )
    return result


def tally(result: RunResult, invoice: Invoice, outcome: InvoicePlan | list[Problem]) -> None:
    result.documents += 1
    result.lines += len(invoice.lines)
    if isinstance(outcome, list):
        result.problem_documents += 1
        result.problem_codes.update({problem.code for problem in outcome})
        return
    result.plans += 1
    for line in outcome.lines:
        if line.line_kind != "tax":
            result.revenue_from[revenue_source(line.reason)] += 1


def revenue_source(reason: str) -> str:
    if " from rule " in reason:
        return "routing rule"
    if "connection default" in reason:
        return "default"
    return reason.split(" from the ", 1)[1].split(" (", 1)[0]  # "service-line map" …


def sample(samples: list[float], value: float, seen: int, rng: random.Random) -> None:
    """Reservoir sampling: a uniform sample of every document's time in constant memory."""
    if len(samples) < SAMPLE_SIZE:
        samples.append(value)
    elif (slot := rng.randrange(seen)) < SAMPLE_SIZE:
        samples[slot] = value


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def timed(label: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = action()
    print(f"{label}: {(time.perf_counter() - started) * 1000:.0f} ms")
    return value


def report(result: RunResult) -> None:
    print(f"documents: {result.documents:,}  lines: {result.lines:,}")
    print(f"resolution time: {result.seconds:.2f} s wall, {result.cpu_seconds:.2f} s CPU "
          "(generation excluded)")  # fmt: skip
    print(f"throughput (wall): {result.lines / result.seconds:,.0f} lines/s, "
          f"{result.documents / result.seconds:,.0f} documents/s")  # fmt: skip
    print(f"throughput (CPU):  {result.lines / result.cpu_seconds:,.0f} lines/s, "
          f"{result.documents / result.cpu_seconds:,.0f} documents/s")  # fmt: skip
    print(f"per document, wall (sample of {len(result.samples):,}): "
          f"p50 {percentile(result.samples, 0.5) * 1e6:.1f} µs, "
          f"p95 {percentile(result.samples, 0.95) * 1e6:.1f} µs, "
          f"mean {statistics.fmean(result.samples) * 1e6:.1f} µs")  # fmt: skip
    print(f"plans: {result.plans:,}  problem documents: {result.problem_documents:,}  "
          f"problems by code: {dict(result.problem_codes.most_common())}")  # fmt: skip
    print(f"revenue accounts of planned lines from: {dict(result.revenue_from.most_common())}")


def report_memory(title: str, result: RunResult) -> None:
    print(title)
    for mark in result.checkpoints:
        traced = (
            f", tracemalloc peak {mark.traced_peak_mb:.1f} MB"
            if mark.traced_peak_mb is not None
            else ""
        )
        print(f"  {mark.percent:>3}% ({mark.documents:,} documents): "
              f"ru_maxrss {mark.maxrss_mb:.1f} MB{traced}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000, help="rules in the set (≈)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="invoice lines to resolve")
    parser.add_argument("--profile", action="store_true", help="cProfile the run, print top 20")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    args = parser.parse_args()

    content = timed("build rule set", lambda: build_content(args.rules))
    ruleset: RuleSet = timed("parse rule set", lambda: parse_ruleset(content))
    rules: CompiledRules = timed("compile rules", lambda: compile_rules(ruleset, version=1))
    catalog = build_catalog(ruleset)
    vocab = vocabulary(ruleset)
    total = max(args.lines // LINES_PER_INVOICE, 1)
    counts = rules_count(ruleset)
    entries = sum(len(values) for values in catalog.lists.values())
    print(f"rules: {sum(counts.values()):,} {counts} in {signatures_used(ruleset)} routing "
          f"signatures; catalog entries: {entries:,}")  # fmt: skip
    print(f"python {sys.version.split()[0]}, {total:,} invoices × {LINES_PER_INVOICE} lines")
    gc.collect()

    if args.profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(run, invoices(total, vocab), total, rules, catalog)
        report(result)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    result = run(invoices(total, vocab), total, rules, catalog)
    report(result)
    report_memory("memory, timed pass:", result)
    if not args.no_trace:
        tracemalloc.start()
        traced = run(invoices(total, vocab), total, rules, catalog, traced=True)
        tracemalloc.stop()
        report_memory("memory, traced pass (tracemalloc started after compiling):", traced)


def rules_count(ruleset: RuleSet) -> dict[str, int]:
    return {
        "map rows": sum(len(rows) for rows in ruleset.maps.values()),
        "routing": len(ruleset.routing),
        "dimension values": sum(len(s.values) for s in ruleset.dimensions),
    }


def signatures_used(ruleset: RuleSet) -> int:
    return len({tuple(sorted(rule.conditions)) for rule in ruleset.routing})


if __name__ == "__main__":
    main()
