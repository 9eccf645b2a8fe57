"""Money formatting, pure Python: amounts with their currency, signed deltas, plain amounts for CSV.

Every figure is a sum of exact values rounded once, here, to its currency's minor units (JPY none)."""

from __future__ import annotations

from decimal import Decimal

from events.common.money import minor_units, round_money

MINUS = "\u2212"  # a real minus sign: lines up with "+" and reads better than a hyphen
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "AUD": "A$", "CAD": "C$", "INR": "₹"}


def decimals_for(currency: str) -> int:
    return minor_units(currency)


def quantize(amount: Decimal, currency: str = "") -> Decimal:
    """Rounded once, to the currency's minor unit (callers sum exact values first)."""
    return round_money(amount, currency)


def format_money(amount, currency: str = "", *, signed: bool = False) -> str:
    """`$1,234.50`, `1,234.50 SEK`, `−$3.00`; with `signed`, positives get a `+`. None gives ``."""
    if amount is None:
        return ""
    currency = (currency or "").upper()
    value = quantize(Decimal(amount), currency)
    places = decimals_for(currency)
    digits = f"{abs(value):,.{places}f}"
    sign = MINUS if value < 0 else ("+" if signed and value > 0 else "")
    symbol = SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{digits}"
    if currency:
        return f"{sign}{digits} {currency}"
    return f"{sign}{digits}"


def plain_amount(amount, currency: str = "") -> str:
    """For CSV: `-1234.50`, no grouping, no symbol (the currency has its own column)."""
    if amount is None:
        return ""
    return format(quantize(Decimal(amount), currency), "f")
