"""Codes for new ERP records (customers, sites, jobs) drawn from the numbering rules (rule kind 4).

A numbering rule gives an entity a prefix, a range and a width: `C` 1000–9999 width 5 issues
C01000, C01001 … . `code_issue` hands out the next free number under a row lock on the
entity's `NumberingCounter`, so concurrent callers queue instead of drawing the same number, and
records it as an `IssuedCode` with a `RuleAudit` row in the same transaction. The unique
constraints on `IssuedCode` (per code, and per source record) are the backstop: a code is never
issued twice, and a source record never gets two codes. Numbers already taken by an earlier
issue or an import are skipped, as are customer codes the ERP's catalog already lists.

The counter row stays locked until the caller's transaction ends: call this in a short
transaction, not inside a long one that also talks to the ERP.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from mappings.catalog import connection_today
from mappings.models import CatalogEntry, IssuedCode, NumberingCounter, RuleAudit, RuleVersion
from mappings.ruleset import NUMBERING_ENTITIES, CatalogKind, NumberingRule, parse_ruleset
from syncengine.models import Connection

# Entities whose codes may also exist in an ERP list that was not filled by issuing.
_CATALOG_KIND = {"CUSTOMER": CatalogKind.CUSTOMER}
_WINDOW = 500  # candidate codes checked per query when skipping taken ones
_CODE_LENGTH = IssuedCode._meta.get_field("code").max_length or 50
_SOURCE_REF_LENGTH = IssuedCode._meta.get_field("source_ref").max_length or 100


class NumberingError(ValueError):
    """A code cannot be issued; the message says why and what to change."""


class NumberingExhausted(NumberingError):
    pass


class NoNumberingRule(NumberingError):
    pass


def code_format(rule: NumberingRule, number: int) -> str:
    """`prefix` + the number, zero-padded to `width` digits (0: no padding)."""
    return f"{rule.prefix}{number:0{rule.width}d}" if rule.width > 0 else f"{rule.prefix}{number}"


@transaction.atomic
def code_issue(
    *,
    connection: Connection,
    entity: str,
    source_ref: str,
    rule: NumberingRule,
    actor: str,
    now: datetime,
) -> str:
    """The code of the source record `source_ref`: the one issued before, or the next free one.

    Raises NumberingExhausted when the rule's range has no free number left, NumberingError for
    an entity that does not match the rule or an empty source reference.
    """
    source_ref = source_ref.strip()
    _check(entity, source_ref, rule)
    issued = _issued_for(connection, entity, source_ref)
    if issued is not None:
        return issued
    NumberingCounter.objects.bulk_create(
        [NumberingCounter(connection=connection, entity=entity)], ignore_conflicts=True
    )
    counter = NumberingCounter.objects.select_for_update().get(connection=connection, entity=entity)
    # Someone may have issued for this record while we waited for the lock.
    issued = _issued_for(connection, entity, source_ref)
    if issued is not None:
        return issued
    number, code = _next_free(connection, entity, rule, counter.last_value)
    IssuedCode.objects.create(
        connection=connection, entity=entity, code=code, source_ref=source_ref, issued_at=now,
        issued_by=actor,
    )  # fmt: skip
    counter.last_value = number
    counter.save(update_fields=["last_value"])
    RuleAudit.objects.create(
        connection=connection, at=now, actor=actor, action=RuleAudit.Action.CODE_ISSUED,
        subject=f"numbering.{entity}.{code}"[:300],
        after={"code": code, "source_ref": source_ref, "number": number,
               "rule": {"prefix": rule.prefix, "start": rule.start, "end": rule.end,
                        "width": rule.width}},
    )  # fmt: skip
    return code


def code_issue_from_rules(
    *, connection: Connection, entity: str, source_ref: str, actor: str, now: datetime
) -> str:
    """`code_issue` with the entity's numbering rule from the rule version in force today."""
    if entity not in NUMBERING_ENTITIES:
        raise NumberingError(
            f"{entity!r} is not numbered; numbered entities are {', '.join(NUMBERING_ENTITIES)}."
        )
    today = connection_today(connection, now)
    version = RuleVersion.objects.in_force_on(connection, today)
    if version is None:
        raise NoNumberingRule(
            f"No posting rules are in force on {today}, so there is no numbering rule for "
            f"{entity}: publish a rule set with one."
        )
    rule = next((r for r in parse_ruleset(version.content).numbering if r.entity == entity), None)
    if rule is None:
        raise NoNumberingRule(
            f"The rules in force (version {version.number}) have no numbering rule for {entity}: "
            "add one under numbering and publish."
        )
    return code_issue(
        connection=connection,
        entity=entity,
        source_ref=source_ref,
        rule=rule,
        actor=actor,
        now=now,
    )


def _check(entity: str, source_ref: str, rule: NumberingRule) -> None:
    if entity != rule.entity:
        raise NumberingError(f"The numbering rule given is for {rule.entity}, not {entity}.")
    if not source_ref:
        raise NumberingError(f"A {entity} code needs the source record it is issued for.")
    if len(source_ref) > _SOURCE_REF_LENGTH:
        raise NumberingError(
            f"The source reference {source_ref[:20]!r}… is longer than {_SOURCE_REF_LENGTH} "
            "characters."
        )
    if rule.start < 0 or rule.end < rule.start:
        raise NumberingError(
            f"The {entity} numbering range {rule.start}–{rule.end} is empty or negative."
        )


def _issued_for(connection: Connection, entity: str, source_ref: str) -> str | None:
    return (
        IssuedCode.objects.filter(connection=connection, entity=entity, source_ref=source_ref)
        .values_list("code", flat=True)
        .first()
    )


def _next_free(
    connection: Connection, entity: str, rule: NumberingRule, last_value: int | None
) -> tuple[int, str]:
    """The lowest free number after the counter, within the rule's range.

    A counter outside the range (the rule was changed to a new range) starts at the range's start.
    """
    if last_value is not None and rule.start <= last_value <= rule.end:
        number = last_value + 1
    else:
        number = rule.start
    while number <= rule.end:
        window = {
            code_format(rule, n): n for n in range(number, min(number + _WINDOW, rule.end + 1))
        }
        taken = _taken(connection, entity, list(window))
        for code, candidate in window.items():
            if code not in taken:
                if len(code) > _CODE_LENGTH:
                    raise NumberingError(
                        f"{entity} code {code} is longer than {_CODE_LENGTH} characters: "
                        "shorten the prefix or the width."
                    )
                return candidate, code
        number += len(window)
    raise NumberingExhausted(
        f"Every {entity} code from {code_format(rule, rule.start)} to "
        f"{code_format(rule, rule.end)} ({rule.start}–{rule.end}) has been issued: widen the "
        f"{entity} numbering range or give it a new prefix, and publish."
    )


def _taken(connection: Connection, entity: str, codes: list[str]) -> set[str]:
    taken = set(
        IssuedCode.objects.filter(connection=connection, entity=entity, code__in=codes).values_list(
            "code", flat=True
        )
    )
    kind = _CATALOG_KIND.get(entity)
    if kind is not None:
        taken.update(
            CatalogEntry.objects.filter(
                connection=connection, kind=kind, parent="", code__in=codes
            ).values_list("code", flat=True)
        )
    return taken
