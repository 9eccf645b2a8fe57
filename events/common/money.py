"""Currencies' minor units: how many decimals an amount of each currency has (JPY none).

Pure; the one table the pages, the CSVs and the simulator round with.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 currencies without a minor unit in practice (the rest have cents).
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "HUF", "UGX", "PYG", "XOF", "XAF"})


def minor_units(currency: str | None) -> int:
    """Decimals of `currency`: 0 for JPY and the like, 2 otherwise (and without a currency)."""
    return 0 if (currency or "").upper() in ZERO_DECIMAL_CURRENCIES else 2


def smallest_unit(currency: str | None) -> Decimal:
    """1 for JPY, 0.01 for USD."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount, currency: str | None = "", rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`amount` rounded once to the minor unit of `currency`."""
    return Decimal(amount).quantize(smallest_unit(currency), rounding=rounding)
