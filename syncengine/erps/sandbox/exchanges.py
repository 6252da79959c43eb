"""The sandbox ledger's calls reported as exchanges, so its records read like any ERP's.

The sandbox runs in-process, so there is no HTTP to show: each connector call is reported as
the request it stands for (`sandbox://<connection>/<what>`), with the posting payload the
sandbox acts on and the document it answers. A refusal has no HTTP status: its message is the
exchange's error. Only the outermost call is reported, so the fault-injecting subclass and the
ledger it wraps make one exchange, not two.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from mappings.resolve import InvoicePlan
from syncengine.canonical import to_jsonable
from syncengine.erps.base import ConnectorError
from syncengine.erps.exchanges import exchange_record

_reporting: ContextVar[bool] = ContextVar("sandbox_exchange_reporting", default=False)

Call = TypeVar("Call", bound=Callable[..., Any])


def reported(method: str, what: str) -> Callable[[Call], Call]:
    """Report each call of the decorated connector method (keyword arguments only)."""

    def decorate(function: Call) -> Call:
        @functools.wraps(function)
        def call(self: Any, **arguments: Any) -> Any:
            if _reporting.get():
                return function(self, **arguments)
            token = _reporting.set(True)
            started = time.monotonic()
            url = f"sandbox://{self.connection.slug}/{what}"
            if method == "GET":
                url += "?" + "&".join(f"{name}={value}" for name, value in arguments.items())
            body = None if method == "GET" else _request_body(self, arguments)
            try:
                result = function(self, **arguments)
            except ConnectorError as error:
                _report(method, url, body, started, error=error.message)
                raise
            finally:
                _reporting.reset(token)
            _report(method, url, body, started, result=result)
            return result

        return call  # type: ignore[return-value]

    return decorate


def _request_body(connector: Any, arguments: dict[str, Any]) -> Any:
    plan = arguments.get("plan")
    if isinstance(plan, InvoicePlan):  # what the sandbox does with it, not the whole plan again
        return connector.preview_invoice(plan=plan, key=arguments["key"])
    return {
        name: to_jsonable(value) if dataclasses.is_dataclass(value) else str(value)
        for name, value in arguments.items()
    }


def _report(
    method: str,
    url: str,
    body: Any,
    started: float,
    *,
    result: Any = None,
    error: str = "",
) -> None:
    found = result is not None
    exchange_record(
        method=method,
        url=url,
        request_body=body,
        status=None if error else (200 if found else 404),
        response_body=to_jsonable(result) if found and dataclasses.is_dataclass(result) else None,
        elapsed_ms=round((time.monotonic() - started) * 1000),
        error=error,
    )
