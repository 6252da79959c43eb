"""JSON as ERPs read it: Decimals leave as exact JSON numbers and come back as Decimals.

The standard encoder knows no Decimal and the standard decoder turns numbers into floats; money
must never pass through a float, so every connector body and every preview goes through here.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import date
from decimal import Decimal
from typing import Any


def dumps(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON; a Decimal is written digit for digit (Decimal("110.00") → 110.00)."""
    marker = secrets.token_hex(8)  # per call, so no string in the data can look like one

    def default(item: Any) -> Any:
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError(f"{item} is not a number JSON can carry")
            return f"{marker}{format(item, 'f')}{marker}"
        if isinstance(item, date):
            return item.isoformat()
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")

    def unquoted(found: re.Match[str]) -> str:
        return found[2] if found[1] == marker else found[0]

    text = json.dumps(value, default=default, indent=indent, ensure_ascii=False)
    return _MARKED_NUMBER.sub(unquoted, text) if marker in text else text


# A Decimal as `default` writes it: a quoted number between two copies of the call's marker.
# One pattern for every call (a pattern per marker would be compiled anew on each call).
_MARKED_NUMBER = re.compile(r'"([0-9a-f]{16})(-?[0-9.]+)\1"')


def loads(text: str | bytes) -> Any:
    """JSON with every non-integer number read as a Decimal."""
    return json.loads(text, parse_float=Decimal)
