"""The overview's ratios answer a question: the share of the period's tracked actions reversed by now
(never over 100 %), the payout lost as a share of the payout gained; and its payout chart shows the
currency asked for."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from tests_dashboard_common import NOW, iso


@pytest.fixture
def week_with_old_reversals(send, time_machine):
    """Three actions tracked in the last 7 days, one of them reversed; and five actions tracked three
    weeks ago, all reversed this week (they made the old rate read 200 %)."""
    for i in range(5):
        time_machine.move_to(NOW - timedelta(days=21), tick=False)
        send(ActionId=f"OLD{i}", Payout="10.00", CreationDate=iso(NOW - timedelta(days=21, minutes=1)))
    time_machine.move_to(NOW - timedelta(hours=3), tick=False)
    for i in range(3):
        send(ActionId=f"NEW{i}", Payout="20.00", CreationDate=iso(NOW - timedelta(hours=3, minutes=1)))
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    for name in ["NEW0", *(f"OLD{i}" for i in range(5))]:
        send(ActionId=name, Status="REVERSED", Payout="0", UpdateDate=iso(NOW - timedelta(hours=1, minutes=1)))
    time_machine.move_to(NOW, tick=False)


def test_the_reversal_share_is_the_periods_cohort_reversed_by_now(staff_client, week_with_old_reversals):
    response = staff_client.get("/?period=7d")
    assert (response.context["summary"]["tracked"], response.context["summary"]["reversed"]) == (3, 6)
    assert (response.context["reversed_by_now"], response.context["reversed_share"]) == (1, 1 / 3)
    html = response.content.decode()
    assert "Reversed by now" in html and "33.3%" in html
    assert "1 of the 3 actions tracked in the period are reversed today" in html
    assert "200.0%" not in html


def test_a_month_ago_cohort_counts_the_reversals_that_came_later(staff_client, week_with_old_reversals):
    response = staff_client.get("/?period=custom&start=2026-10-30&end=2026-11-01")
    assert (response.context["summary"]["tracked"], response.context["reversed_by_now"]) == (5, 5)
    assert response.context["reversed_share"] == 1


def test_the_payout_lost_is_shown_as_a_share_of_the_payout_gained(staff_client, week_with_old_reversals):
    response = staff_client.get("/?period=7d")
    (usd,) = response.context["money_cards"]
    # Gained 3 × $20; lost $20 of this week's action and 5 × $10 of older ones.
    assert (usd["gained"], usd["lost"]) == (60, -70)
    assert round(usd["lost_share"], 4) == Decimal("1.1667")
    assert "116.7% of the payout gained (lost ÷ gained in the period)" in response.content.decode()


def test_the_brands_list_shows_each_brands_cohort(staff_client, week_with_old_reversals):
    (row,) = staff_client.get("/brands/?period=7d").context["rows"]
    assert row["reversed_share"] == 1 / 3
    assert "Reversed by now" in staff_client.get("/brands/").content.decode()


def test_the_payout_chart_shows_the_currency_picked(staff_client, send, time_machine):
    time_machine.move_to(NOW - timedelta(hours=2), tick=False)
    for i in range(3):
        send(ActionId=f"U{i}", Payout="10.00", CreationDate=iso(NOW - timedelta(hours=2, minutes=1)))
    send(ActionId="E1", CampaignId="2002", Payout="7.00", Currency="EUR", CreationDate=iso(NOW - timedelta(hours=2)))
    time_machine.move_to(NOW, tick=False)

    default = staff_client.get("/?period=7d")
    assert default.context["chart"]["currency"] == "USD"  # the busiest
    assert [code for code, _ in default.context["chart_currencies"]] == ["USD", "EUR"]
    html = default.content.decode()
    assert 'aria-label="Currency of the payout chart"' in html and "currency=EUR" in html

    euros = staff_client.get("/?period=7d&currency=EUR")
    assert euros.context["chart"]["currency"] == "EUR"
    assert sum(row["net"] for row in euros.context["chart"]["table"]) == 7
    assert "?period=24h&amp;currency=EUR" in euros.content.decode()  # the period links keep it
    assert staff_client.get("/?period=7d&currency=XYZ").context["chart"]["currency"] == "USD"
