"""Sorting the brands by net payout compares amounts within one currency only."""

from __future__ import annotations

from datetime import timedelta

from tests_dashboard_common import NOW, iso

BRANDS = [  # campaign, name, currency, payout
    ("1", "Yen Big", "JPY", "23004"),
    ("2", "Yen Small", "JPY", "500"),
    ("3", "Maple Big", "CAD", "2116.77"),
    ("4", "Maple Small", "CAD", "10.00"),
    ("5", "Dollar", "USD", "300.00"),
]


def test_sorting_by_net_payout_groups_brands_by_currency(staff_client, send, time_machine):
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    for campaign, name, currency, payout in BRANDS:
        send(ActionId=f"A{campaign}", CampaignId=campaign, CampaignName=name, Currency=currency, Payout=payout,
             CreationDate=iso(NOW - timedelta(hours=1, minutes=1)))  # fmt: skip
    send(ActionId="NOPAY", CampaignId="6", CampaignName="No payout", Payout=None, Currency=None,
         CreationDate=iso(NOW - timedelta(hours=1, minutes=1)))  # fmt: skip
    time_machine.move_to(NOW, tick=False)

    def names(sort):
        return [row["brand"].name for row in staff_client.get(f"/brands/?sort={sort}").context["rows"]]

    assert names("-payout") == ["Maple Big", "Maple Small", "Yen Big", "Yen Small", "Dollar", "No payout"]
    assert names("payout") == ["Maple Small", "Maple Big", "Yen Small", "Yen Big", "Dollar", "No payout"]
    assert "within each currency" in staff_client.get("/brands/?sort=-payout").content.decode()
