"""Money conventions shared by every app: Decimal only, one precision, one rounding rule.

Amounts are rounded once, when a source quantity × price becomes a line amount, half-up to the
currency's minor unit (cents for every currency Crosswalk handles today). Nothing else rounds.
"""

from decimal import ROUND_HALF_UP, Decimal

MAX_DIGITS = 20
DECIMAL_PLACES = 2
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
