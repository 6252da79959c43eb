"""A sandbox ledger that misbehaves like a real ERP over a real network, on purpose.

Enabled only by the CROSSWALK_SANDBOX_FAULTS setting (never by default), for the fault-injection
tests and `bench/`: e.g. "commit_then_drop=0.2,error_500=0.05,rate_limit=0.05,slow_commit=0.05".

- error_500: refused before anything is written (transient).
- rate_limit: a 429 with Retry-After: 1 (transient).
- commit_then_drop: the document is written, then the "connection drops" so the caller cannot
  know (transient, outcome unknown) — the case that creates duplicates in careless integrations.
- slow_commit: the document is written after a pause, then the call times out (outcome unknown).
- lookup_error: a lookup by key fails (transient).
- auth_error: the ERP refuses the credentials (opens the connection's circuit).
"""

from __future__ import annotations

import random
import time
from datetime import date

from django.conf import settings

from mappings.resolve import InvoicePlan
from syncengine.erps.base import ConnectorError, ErpDocument, FailureCategory
from syncengine.erps.sandbox.client import SandboxLedger
from syncengine.erps.sandbox.exchanges import reported

KINDS = ("error_500", "rate_limit", "commit_then_drop", "slow_commit", "lookup_error", "auth_error")


def parse_faults(text: str) -> dict[str, float]:
    """ "name=probability,…" → {name: probability}; raises ValueError naming a bad entry."""
    faults: dict[str, float] = {}
    for part in filter(None, (item.strip() for item in text.split(","))):
        name, _, value = part.partition("=")
        if name not in KINDS:
            raise ValueError(f"Unknown sandbox fault {name!r}; known: {', '.join(KINDS)}")
        probability = float(value)  # a probability, not money
        if not 0 <= probability <= 1:
            raise ValueError(f"Sandbox fault {name} must be between 0 and 1, got {value}")
        faults[name] = probability
    return faults


class FaultySandboxLedger(SandboxLedger):
    def __init__(self, *, connection, faults: dict[str, float] | None = None):  # type: ignore[no-untyped-def]
        super().__init__(connection=connection)
        self.faults = (
            faults if faults is not None else parse_faults(settings.CROSSWALK_SANDBOX_FAULTS)
        )

    def _roll(self, name: str) -> bool:
        return random.random() < self.faults.get(name, 0.0)

    def _before_write(self) -> None:
        if self._roll("auth_error"):
            raise ConnectorError(
                "Injected fault: HTTP 401, the ERP refused the credentials.",
                category=FailureCategory.AUTH,
                transient=True,
            )
        if self._roll("error_500"):
            raise ConnectorError(
                "Injected fault: HTTP 500 from the ERP.",
                category=FailureCategory.CONNECTION,
                transient=True,
            )
        if self._roll("rate_limit"):
            raise ConnectorError(
                "Injected fault: HTTP 429, Retry-After 1.",
                category=FailureCategory.RATE_LIMIT,
                transient=True,
                retry_after_seconds=1,
            )

    def _after_write(self) -> None:
        if self._roll("commit_then_drop"):
            raise ConnectorError(
                "Injected fault: connection dropped after the ERP committed.",
                category=FailureCategory.CONNECTION,
                transient=True,
                outcome_unknown=True,
            )
        if self._roll("slow_commit"):
            time.sleep(0.5)
            raise ConnectorError(
                "Injected fault: timed out after the ERP committed.",
                category=FailureCategory.CONNECTION,
                transient=True,
                outcome_unknown=True,
            )

    @reported("GET", "invoices")
    def find_invoice(self, *, key: str) -> ErpDocument | None:
        if self._roll("lookup_error"):
            raise ConnectorError(
                "Injected fault: lookup failed.",
                category=FailureCategory.CONNECTION,
                transient=True,
            )
        return super().find_invoice(key=key)

    @reported("POST", "invoices")
    def post_invoice(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        self._before_write()
        document = super().post_invoice(plan=plan, key=key)
        self._after_write()
        return document

    @reported("POST", "credit-memos")
    def post_source_credit_memo(self, *, plan: InvoicePlan, key: str) -> ErpDocument:
        self._before_write()
        document = super().post_source_credit_memo(plan=plan, key=key)
        self._after_write()
        return document

    @reported("POST", "credit-memos")
    def post_credit_memo(self, *, original_id: str, key: str, posting_date: date) -> ErpDocument:
        self._before_write()
        document = super().post_credit_memo(
            original_id=original_id, key=key, posting_date=posting_date
        )
        self._after_write()
        return document
