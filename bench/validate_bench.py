"""Benchmark: publish-time validation of a large rule set, pure (no database, no Django settings).

    .venv/bin/python bench/validate_bench.py [--rules 10000] [--runs 5] [--profile]

Validates the rule set `bench/resolve_bench.py` builds (by default 10,000 rules) against a catalog
holding its targets, with the source values of the last 30 days (every mapped service line and
office seen, plus 300 values nothing maps); then the same set with every routing rule at priority
0, so rules of different signatures that can meet tie ("tie-heavy"); then a worst case where
every pair of routing rules ties. Prints the median and fastest of `--runs` runs of
`parse_ruleset`, `validate_ruleset` (which includes `routing_ties`) and `routing_ties` alone, and
what was found. Results are for docs/performance.md; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolve_bench import OFFICES, build_catalog, build_content  # noqa: E402

from mappings.resolve import Catalog  # noqa: E402
from mappings.ruleset import RuleSet, parse_ruleset  # noqa: E402
from mappings.validation import Issue, SeenValue, routing_ties, validate_ruleset  # noqa: E402


def seen_values(ruleset: RuleSet) -> list[SeenValue]:
    """What the source sent lately: every mapped service line and office, and 300 new values."""
    seen = [
        SeenValue("service_line", source, documents=1 + index % 40)
        for index, source in enumerate(ruleset.maps["SERVICE_LINE"])
    ]
    seen += [SeenValue("office", office, documents=25) for office in OFFICES]
    seen += [SeenValue("service_line", f"New line {i}", documents=1 + i % 7) for i in range(200)]
    seen += [SeenValue("tax_rate", f"{5 + i / 100:.2f}", documents=3) for i in range(100)]
    return seen


def measure(label: str, action: Callable[[], Any], runs: int) -> Any:
    times, value = [], None
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        value = action()
        times.append(time.perf_counter() - started)
    print(f"  {label}: median {statistics.median(times) * 1000:,.0f} ms, "
          f"fastest {min(times) * 1000:,.0f} ms ({runs} runs)")  # fmt: skip
    return value


def summary(issues: list[Issue]) -> str:
    counts = Counter(f"{issue.severity} {issue.code}" for issue in issues)
    return ", ".join(f"{code}: {count}" for code, count in sorted(counts.items())) or "none"


def bench(title: str, content: dict[str, Any], runs: int) -> None:
    ruleset: RuleSet = parse_ruleset(content)
    catalog: Catalog = build_catalog(ruleset)
    seen = seen_values(ruleset)
    print(f"{title}: {len(ruleset.routing):,} routing rules, "
          f"{sum(len(rows) for rows in ruleset.maps.values()):,} map rows, "
          f"{sum(len(d.values) for d in ruleset.dimensions):,} dimension values, "
          f"{len(seen):,} seen source values")  # fmt: skip
    measure("parse_ruleset", lambda: parse_ruleset(content), runs)
    issues = measure("validate_ruleset", lambda: validate_ruleset(ruleset, catalog, seen), runs)
    ties = measure("routing_ties alone", lambda: routing_ties(ruleset.routing), runs)
    print(f"  issues: {summary(issues)}")
    capped = [issue for issue in ties if issue.subject == "routing"]
    print(f"  routing ties reported: {len(ties) - len(capped):,} pairs"
          + (f" + {len(capped)} summaries ({capped[0].message})" if capped else ""))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one validation")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    if args.profile:
        ruleset = parse_ruleset(build_content(args.rules, tie_heavy=True))
        catalog, seen = build_catalog(ruleset), seen_values(ruleset)
        profiler = cProfile.Profile()
        profiler.runcall(validate_ruleset, ruleset, catalog, seen)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    bench("tie-free set", build_content(args.rules), args.runs)
    bench("tie-heavy set", build_content(args.rules, tie_heavy=True), args.runs)
    bench("worst case, every routing rule tied", all_tied(args.rules), args.runs)


def all_tied(total_rules: int) -> dict[str, Any]:
    """The routing rules each on their own customer tag, all at priority 0: since a customer can
    carry any number of tags, every pair ties (18 million pairs for 6,000 rules)."""
    content = build_content(total_rules)
    content["routing"] = [
        {"id": rule["id"], "conditions": {"customer_tag": f"Tag {rule['id']}"},
         "account": rule["account"], "priority": 0}
        for rule in content["routing"]
    ]  # fmt: skip
    return content


if __name__ == "__main__":
    main()
