"""Currencies' minor units: the one table amounts are rounded with (JPY has none)."""

from __future__ import annotations

from decimal import Decimal

from events.common.money import minor_units, round_money, smallest_unit


def test_yen_have_no_minor_unit_and_dollars_have_cents():
    assert (minor_units("JPY"), minor_units("jpy"), minor_units("USD"), minor_units("")) == (0, 0, 2, 2)
    assert (smallest_unit("JPY"), smallest_unit("EUR")) == (Decimal(1), Decimal("0.01"))


def test_an_amount_is_rounded_once_to_its_currencys_unit():
    assert round_money(Decimal("-872.6"), "JPY") == Decimal(-873)
    assert round_money(Decimal("0.125"), "USD") == Decimal("0.12")  # half to even
