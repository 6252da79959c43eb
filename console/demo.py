"""Deterministic, realistic demo data: a sandbox connection, its books, users, and ServiceTrade-
shaped invoices and timecards generated from a seed.

Running it twice changes nothing: every row is found by its natural key, invoice ids and numbers
derive from the seed, and dates are anchored to a fixed day (not "today"), so a second run
re-delivers byte-identical invoices that ingestion recognises as repeats.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from console.access import Role
from mappings import services as mapping_services
from mappings.catalog import catalog_refresh
from mappings.models import RuleVersion
from syncengine.erps.sandbox.models import (
    AccountType,
    LedgerAccount,
    LedgerListValue,
    LedgerTaxCode,
)
from syncengine.models import Connection
from syncengine.money import ZERO, to_cents

DEMO_PASSWORD = "crosswalk-demo"
DEMO_USERS = (("admin", Role.ADMIN), ("finance", Role.FINANCE), ("ar", Role.AR))
ANCHOR_DATE = date(2026, 11, 20)  # fixed so re-runs produce identical invoices

ACCOUNTS = [
    ("1100", "Operating Cash", AccountType.ASSET),
    ("1200", "Accounts Receivable", AccountType.ASSET),
    ("2300", "Sales Tax Payable", AccountType.LIABILITY),
    ("3000", "Retained Earnings", AccountType.EQUITY),
    ("4010", "HVAC Service Revenue", AccountType.INCOME),
    ("4011", "HVAC Parts Revenue", AccountType.INCOME),
    ("4020", "Fire Sprinkler Revenue", AccountType.INCOME),
    ("4030", "Fire Alarm Revenue", AccountType.INCOME),
    ("4040", "Plumbing Revenue", AccountType.INCOME),
    ("4050", "Kitchen Hood Revenue", AccountType.INCOME),
    ("4060", "Backflow Testing Revenue", AccountType.INCOME),
    ("5010", "Materials Cost", AccountType.EXPENSE),
]
# Backflow Testing is deliberately left unmapped so the demo shows blocked invoices and their fix.
SERVICE_LINES = {
    "HVAC": "4010",
    "Fire Sprinkler": "4020",
    "Fire Alarm": "4030",
    "Plumbing": "4040",
    "Kitchen Hood": "4050",
    "Backflow Testing": None,
}
STATE_TAX = {
    "NC": Decimal("7.25"),
    "SC": Decimal("7.00"),
    "VA": Decimal("5.30"),
    "GA": Decimal("7.00"),
    "TN": Decimal("9.25"),
}
OFFICES = [
    ("1", "Raleigh", "NC"),
    ("2", "Charlotte", "NC"),
    ("3", "Richmond", "VA"),
    ("4", "Atlanta", "GA"),
    ("5", "Nashville", "TN"),
]
CITIES = {
    "NC": ["Raleigh", "Durham", "Charlotte", "Cary"],
    "SC": ["Columbia", "Greenville"],
    "VA": ["Richmond", "Norfolk"],
    "GA": ["Atlanta", "Marietta"],
    "TN": ["Nashville", "Franklin"],
}
JOB_TYPES = ["repair", "inspection", "installation", "preventive_maintenance", "emergency"]
NAME_FIRST = [
    "Blue Ridge",
    "Piedmont",
    "Harbor",
    "Summit",
    "Oak Street",
    "Riverside",
    "Capital",
    "Magnolia",
    "Pinecrest",
    "Granite",
    "Crescent",
    "Lakeside",
    "Cedar",
    "Beacon",
]
NAME_SECOND = [
    "Foods",
    "Medical Group",
    "Hotels",
    "Schools",
    "Properties",
    "Logistics",
    "Dental",
    "Senior Living",
    "Grocers",
    "Fitness",
    "Bakery",
    "Brewing",
]
TECHNICIANS = [
    "Maria Lopez",
    "James Carter",
    "Aisha Khan",
    "Tom Becker",
    "Luis Ortega",
    "Priya Natarajan",
    "Sam O'Neil",
    "Grace Kim",
]
PARTS = [
    ("Condenser fan motor", "189.00"),
    ("Sprinkler head, pendant", "12.40"),
    ("Smoke detector", "46.75"),
    ("Ball valve 3/4in", "23.10"),
    ("Filter set", "38.00"),
    ("Hood cleaning degreaser", "64.00"),
    ("Thermostat", "129.99"),
    ("Pipe fitting", "4.35"),
    ("Backflow test kit parts", "52.20"),
    ("Refrigerant R-410A, lb", "31.80"),
]
LABOR_RATES = [Decimal("95.00"), Decimal("110.00"), Decimal("125.00"), Decimal("142.50")]
TRIP_CHARGE = Decimal("49.00")


RULES_EFFECTIVE_FROM = date(2025, 1, 1)
LABOR_PAY_TYPES = {"standard": "REG", "overtime": "OT", "PTO": "PTO", "holiday": "HOL"}
OFFICE_CODES = {"Raleigh": "RAL", "Charlotte": "CLT", "Richmond": "RIC", "Atlanta": "ATL",
                "Nashville": "BNA"}  # fmt: skip
SERVICE_LINE_CODES = {
    "HVAC": "HVAC", "Fire Sprinkler": "SPRK", "Fire Alarm": "ALRM", "Plumbing": "PLMB",
    "Kitchen Hood": "HOOD", "Backflow Testing": "BKFL",
}  # fmt: skip


# Two-way master data: the first demo company, edited on both sides (side, fields, hours ago).
DEMO_MASTER_REF = "5000"
# The ERP's phone arrives after ServiceTrade's newer one, so it loses (and is kept as lost).
DEMO_MASTER_DATA: tuple[tuple[str, dict[str, str], int], ...] = (
    ("SOURCE", {"phone": "919-555-0142", "email": "ap@example.com"}, 2),
    ("ERP", {"phone": "919-555-0100"}, 3),
    ("ERP", {"payment_terms": "NET30"}, 1),
)


def demo_connection_setup() -> Connection:
    """The demo connection with its books, catalog, published rules (version 1) and users."""
    now = timezone.now()
    with transaction.atomic():
        connection, _ = Connection.objects.get_or_create(
            slug="demo",
            defaults={
                "name": "Demo: ServiceTrade → sandbox ledger",
                "time_zone": "America/New_York",
            },
        )
        _demo_books(connection)
        _demo_users(connection)
    catalog_refresh(connection=connection, actor="load_demo", now=now)
    if not RuleVersion.objects.filter(connection=connection).exists():
        mapping_services.draft_replace(
            connection=connection,
            content=demo_rules(),
            actor="load_demo",
            now=now,
            reason="Demo rules",
        )
        mapping_services.draft_publish(
            connection=connection,
            effective_from=RULES_EFFECTIVE_FROM,
            reason="Demo rules as set up at implementation",
            actor="load_demo",
            now=now,
        )
    connection.refresh_from_db()
    return connection


def _demo_books(connection: Connection) -> None:
    for number, name, account_type in ACCOUNTS:
        LedgerAccount.objects.get_or_create(
            connection=connection, number=number, defaults={"name": name, "type": account_type}
        )
    for state, rate in STATE_TAX.items():
        LedgerTaxCode.objects.get_or_create(
            connection=connection, code=f"{state}-{rate}", defaults={"rate": rate}
        )
    lists = [("DIMENSION", "", "DEPARTMENT", "Department"), ("DIMENSION", "", "BRANCH", "Branch")]
    lists += [
        ("DIMENSION_VALUE", "DEPARTMENT", code, line) for line, code in SERVICE_LINE_CODES.items()
    ]
    lists += [("DIMENSION_VALUE", "BRANCH", code, office) for office, code in OFFICE_CODES.items()]
    lists += [("COST_CODE", "", f"{index + 1}00", line) for index, line in enumerate(SERVICE_LINES)]
    lists += [("EMPLOYEE", "", f"E{300 + index}", name) for index, name in enumerate(TECHNICIANS)]
    lists += [("PAY_TYPE", "", code, label) for label, code in LABOR_PAY_TYPES.items()]
    lists += [("DEPARTMENT", "", code, office) for office, code in OFFICE_CODES.items()]
    for kind, parent, code, name in lists:
        LedgerListValue.objects.get_or_create(
            connection=connection, kind=kind, parent=parent, code=code, defaults={"name": name}
        )


def demo_rules() -> dict[str, Any]:
    """The demo's crosswalk: service lines, tax rates, two dimensions and one routing rule."""
    service_lines = {
        line: {"revenue_account": account, "cost_code": f"{index + 1}00"}
        for index, (line, account) in enumerate(SERVICE_LINES.items())
        if account  # Backflow Testing is left unmapped on purpose: the demo shows a blocked invoice
    }
    tax_rates = {str(rate): {"tax_code": _tax_code_for_rate(rate)} for rate in STATE_TAX.values()}
    return {
        "defaults": {"receivable_account": "1200", "revenue_account": "", "tax_account": "2300",
                     "tax_code_source": "RATE"},
        "maps": {
            "SERVICE_LINE": service_lines, "TAX_RATE": tax_rates,
            "TECHNICIAN": {str(300 + index): {"employee": f"E{300 + index}"}
                           for index in range(len(TECHNICIANS))},
            "LABOR_TYPE": {label: {"pay_type": code} for label, code in LABOR_PAY_TYPES.items()},
            "OFFICE": {office: {"department": code} for office, code in OFFICE_CODES.items()},
        },
        "routing": [{"id": 1, "conditions": {"service_line": "HVAC", "line_kind": "part"},
                     "account": "4011", "priority": 0, "note": "HVAC parts sales"}],
        "dimensions": [
            {"dimension": "DEPARTMENT", "source": "service_line",
             "values": {line: code for line, code in SERVICE_LINE_CODES.items()
                        if SERVICE_LINES[line]},
             "default": "", "pass_through": False, "required": False},
            {"dimension": "BRANCH", "source": "office", "values": OFFICE_CODES, "default": "",
             "pass_through": False, "required": True},
        ],
        "numbering": [], "ownership": [],
    }  # fmt: skip


def _tax_code_for_rate(rate: Decimal) -> str:
    # Two states share 7.00 %; the map is keyed by rate, so the first state's code serves both.
    state = next(state for state, state_rate in STATE_TAX.items() if state_rate == rate)
    return f"{state}-{rate}"


def _demo_users(connection: Connection) -> None:
    for username, role in DEMO_USERS:
        group, _ = Group.objects.get_or_create(name=role)
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, password=DEMO_PASSWORD)
            user.is_staff = user.is_superuser = role == Role.ADMIN
            user.save()
        user.groups.add(group)
        connection.members.add(user)


@dataclass(frozen=True)
class Company:
    id: int
    name: str
    locations: tuple[dict[str, Any], ...]


def demo_companies(rng: random.Random, count: int) -> list[Company]:
    companies = []
    for index in range(count):
        name = f"{rng.choice(NAME_FIRST)} {rng.choice(NAME_SECOND)}"
        if index >= len(NAME_FIRST):
            name += f" {index // len(NAME_FIRST) + 1}"
        locations = tuple(_location(rng, index, number) for number in range(rng.randint(1, 3)))
        companies.append(Company(id=5000 + index, name=name, locations=locations))
    return companies


def _location(rng: random.Random, company_index: int, number: int) -> dict[str, Any]:
    state = rng.choice(list(STATE_TAX))
    city = rng.choice(CITIES[state])
    return {
        "id": 90000 + company_index * 10 + number,
        "name": f"{city} site {number + 1}",
        "address": {
            "street": f"{rng.randint(10, 9999)} {rng.choice(['Main', 'Oak', 'Elm', 'Park'])} St",
            "city": city,
            "state": state,
            "postalCode": f"{rng.randint(10000, 99999)}",
        },
    }


def demo_invoices(*, seed: int, count: int) -> Iterator[dict[str, Any]]:
    """`count` ServiceTrade invoice envelopes, the same for the same seed."""
    rng = random.Random(seed)
    companies = demo_companies(rng, max(12, count // 25))
    for index in range(count):
        yield {"data": _invoice(rng, index, rng.choice(companies))}


def _invoice(rng: random.Random, index: int, company: Company) -> dict[str, Any]:
    location = rng.choice(company.locations)
    service_line = rng.choices(list(SERVICE_LINES), weights=[30, 20, 15, 15, 10, 3])[0]
    office_id, office_name, _ = rng.choice(OFFICES)
    items = _items(rng, service_line, mixed_sign=rng.random() < 0.03)
    rate = STATE_TAX[location["address"]["state"]]
    lines_total = sum((Decimal(item["totalPrice"]) for item in items), ZERO)
    taxable = sum((Decimal(item["totalPrice"]) for item in items if item["taxable"]), ZERO)
    tax = to_cents(taxable * rate / Decimal(100))
    day = ANCHOR_DATE - timedelta(days=rng.randint(0, 45))
    at = datetime.combine(day, time(rng.randint(13, 22), rng.randint(0, 59)), tzinfo=UTC)
    status = rng.choices(["ok", "void", "internal_review"], weights=[94, 3, 3])[0]
    return {
        "id": 880000 + index,
        "invoiceNumber": str(10000 + index),
        "type": "invoice",
        "status": status,
        "transactionDate": int(at.timestamp()),
        "partial": rng.random() < 0.05,
        "customer": {"id": company.id, "name": company.name},
        "location": location,
        "job": {
            "id": 700000 + index,
            "number": f"J-{20000 + index}",
            "type": rng.choice(JOB_TYPES),
            "serviceLine": {
                "id": list(SERVICE_LINES).index(service_line) + 1,
                "name": service_line,
            },
        },
        "office": {"id": office_id, "name": office_name},
        "assignedUser": {"name": rng.choice(TECHNICIANS)},
        "items": items,
        "taxRate": str(rate),
        "totalTax": str(tax),
        "totalPrice": str(lines_total + tax),
    }


def _items(rng: random.Random, service_line: str, *, mixed_sign: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    hours = Decimal(rng.randint(2, 32)) / 4
    rate = rng.choice(LABOR_RATES)
    items.append(_item(len(items), f"{service_line} labor", "labor", hours, rate, taxable=False))
    for _ in range(rng.randint(0, 4)):
        name, price = rng.choice(PARTS)
        items.append(
            _item(
                len(items), name, "part", Decimal(rng.randint(1, 6)), Decimal(price), taxable=True
            )
        )
    if rng.random() < 0.4:
        items.append(
            _item(len(items), "Trip charge", "other", Decimal(1), TRIP_CHARGE, taxable=False)
        )
    if mixed_sign:
        items.append(
            _item(
                len(items),
                "Service agreement discount",
                "other",
                Decimal(1),
                Decimal("-35.00"),
                taxable=False,
            )
        )
    return items


def _item(
    index: int, name: str, item_type: str, quantity: Decimal, price: Decimal, *, taxable: bool
) -> dict[str, Any]:
    return {
        "id": index + 1,
        "description": name,
        "itemType": item_type,
        "quantity": str(quantity),
        "price": str(price),
        "totalPrice": str(to_cents(quantity * price)),
        "taxable": taxable,
    }


def demo_timecards(*, seed: int, weeks: int = 2) -> Iterator[dict[str, Any]]:
    """Approved weekly timecards per technician: labor on jobs, a clock pair, and some PTO."""
    rng = random.Random(seed + 1)
    for week in range(weeks):
        start = ANCHOR_DATE - timedelta(days=ANCHOR_DATE.weekday() + 7 * (week + 1))
        for tech_index, name in enumerate(TECHNICIANS):
            entries = [_time_entry(rng, start, day) for day in range(5)]
            entries.append({"id": "5", "kind": "clock", "date": start.isoformat(),
                            "clockIn": "07:30", "clockOut": "08:00", "hours": "0.5",
                            "laborType": "standard"})  # fmt: skip
            yield {"data": {
                "id": f"TC-{week}-{tech_index}",
                "technician": {"id": str(300 + tech_index), "name": name},
                "weekStarting": start.isoformat(),
                "status": "approved",
                "entries": entries,
            }}  # fmt: skip


def _time_entry(rng: random.Random, start: date, day: int) -> dict[str, Any]:
    when = (start + timedelta(days=day)).isoformat()
    if rng.random() < 0.05:
        return {"id": str(day), "kind": "generic", "date": when, "laborType": "PTO", "hours": "8"}
    office = rng.choice(OFFICES)[1]
    return {
        "id": str(day), "kind": "labor", "date": when,
        "jobNumber": f"J-{20000 + rng.randint(0, 199)}",
        "serviceLine": rng.choice([line for line, account in SERVICE_LINES.items() if account]),
        "office": office,
        "laborType": rng.choices(["standard", "overtime"], [88, 12])[0],
        "hours": str(Decimal(rng.randint(16, 40)) / 4),
    }  # fmt: skip
