"""Resolution of approved timecards into time entries: employee, pay type, job, cost code and
department, each with its reason; or every problem. Pure, like `mappings.resolve`.

- employee from the technician map (by technician id, else name);
- pay type from the labor-type map; generic time (PTO, holiday …) takes it from its label;
- cost code from the service-line map, department from the office map (labor entries);
- pay rate: left to the ERP's rate for the employee and pay type (not sent).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from mappings.resolve import Catalog, Coding, CompiledRules, Problem
from mappings.ruleset import CatalogKind, norm
from syncengine.canonical import Timecard, TimeEntry, TimeKind


@dataclass(frozen=True)
class TimePlanEntry:
    key: str
    work_date: str
    kind: str
    hours: Decimal
    employee: str
    pay_type: str
    job_number: str = ""
    cost_code: str = ""
    department: str = ""
    clock_in: str = ""
    clock_out: str = ""
    codings: dict[str, Coding] = field(default_factory=dict)


@dataclass(frozen=True)
class TimePlan:
    technician: str
    employee: str
    week_starting: str
    total_hours: Decimal
    entries: tuple[TimePlanEntry, ...]
    rule_version: int | None = None


def entry_key(card: Timecard, entry: TimeEntry) -> str:
    """The idempotency key of one time entry: re-sending a week skips what already went."""
    key = f"ST-TE-{card.source_id}-{entry.source_id}"
    if len(key) <= 35:
        return key
    digest = hashlib.sha256(f"{card.source_id}\x00{entry.source_id}".encode()).hexdigest()
    return f"ST-TE-{digest[:29]}"


def resolve_timecard(
    card: Timecard, rules: CompiledRules, catalog: Catalog
) -> TimePlan | list[Problem]:
    problems: list[Problem] = []
    maps = _maps(rules)
    employee = _employee(card, maps, catalog, problems)
    entries = [_entry(card, entry, employee, maps, catalog, problems) for entry in card.entries]
    if problems:
        return list(dict.fromkeys(problems))
    return TimePlan(
        technician=card.technician,
        employee=employee,
        week_starting=card.week_starting.isoformat(),
        total_hours=card.total_hours,
        entries=tuple(entry for entry in entries if entry is not None),
        rule_version=rules.version,
    )


def _maps(rules: CompiledRules) -> dict[str, dict[str, dict[str, str]]]:
    return {
        kind: {norm(source): targets for source, targets in rows.items()}
        for kind, rows in rules.ruleset.maps.items()
    }


def _employee(card: Timecard, maps: dict, catalog: Catalog, problems: list[Problem]) -> str:  # type: ignore[type-arg]
    rows = maps.get("TECHNICIAN", {})
    row = rows.get(norm(card.technician_id)) or rows.get(norm(card.technician)) or {}
    code = row.get("employee", "")
    if not code:
        problems.append(Problem(
            "UNMAPPED_TECHNICIAN",
            f"No employee code for technician {card.technician!r}: add them to the technician map.",
            card.technician,
        ))  # fmt: skip
        return ""
    value = catalog.get(CatalogKind.EMPLOYEE, code)
    if value is None or not value.present or not value.active:
        problems.append(
            Problem(
                "UNKNOWN_EMPLOYEE",
                f"Employee {code} does not exist or is inactive in the ERP.",
                code,
            )
        )
    return code


def _entry(
    card: Timecard,
    entry: TimeEntry,
    employee: str,
    maps: dict,  # type: ignore[type-arg]
    catalog: Catalog,
    problems: list[Problem],
) -> TimePlanEntry | None:
    pay_type = maps.get("LABOR_TYPE", {}).get(norm(entry.labor_type), {}).get("pay_type", "")
    if not pay_type:
        problems.append(Problem(
            "UNMAPPED_LABOR_TYPE",
            f"No pay type for labor type {entry.labor_type!r}: add it to the labor-type map.",
            entry.labor_type,
        ))  # fmt: skip
        return None
    codings = {"pay_type": Coding(pay_type, f"pay type {pay_type} from the labor-type map "
                                            f"({entry.labor_type})")}  # fmt: skip
    cost_code = department = ""
    if entry.kind == TimeKind.LABOR:
        service_line = maps.get("SERVICE_LINE", {}).get(norm(entry.service_line), {})
        cost_code = service_line.get("cost_code", "")
        department = maps.get("OFFICE", {}).get(norm(entry.office), {}).get("department", "")
        if cost_code:
            codings["cost_code"] = Coding(cost_code, f"cost code {cost_code} from the service-line "
                                                     f"map ({entry.service_line})")  # fmt: skip
        if department:
            codings["department"] = Coding(department, f"department {department} from the office "
                                                       f"map ({entry.office})")  # fmt: skip
    return TimePlanEntry(
        key=entry_key(card, entry), work_date=entry.work_date.isoformat(), kind=entry.kind,
        hours=entry.hours, employee=employee, pay_type=pay_type, job_number=entry.job_number,
        cost_code=cost_code, department=department, clock_in=entry.clock_in,
        clock_out=entry.clock_out, codings=codings,
    )  # fmt: skip
