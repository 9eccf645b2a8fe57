"""Money is summed exactly and rounded once, to each currency's minor units (JPY none), in the cards,
the tables and the CSVs."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from tests_dashboard_common import NOW, iso


def test_yen_cards_add_up_and_show_no_decimals(staff_client, send, time_machine):
    time_machine.move_to(NOW - timedelta(hours=2), tick=False)
    for i, payout in enumerate(["1000", "2000", "500"]):
        send(ActionId=f"J{i}", CampaignId="3003", Currency="JPY", Amount="20000", Payout=payout,
             CreationDate=iso(NOW - timedelta(hours=2, minutes=1)))  # fmt: skip
    send(ActionId="J0", CampaignId="3003", Currency="JPY", Payout="822", DeltaPayout="-178",
         UpdateDate=iso(NOW - timedelta(hours=2)))  # fmt: skip
    send(ActionId="J1", CampaignId="3003", Currency="JPY", Status="REJECTED", Payout="0", DeltaPayout="-2000",
         UpdateDate=iso(NOW - timedelta(hours=2)))  # fmt: skip
    time_machine.move_to(NOW, tick=False)

    response = staff_client.get("/?period=7d")
    html = response.content.decode()
    assert "¥3,500" in html and "\u2212¥178" in html and "\u2212¥2,000" in html and "+¥1,322" in html
    assert "¥3,500.00" not in html


def test_fractions_are_summed_exactly_then_rounded_once(staff_client, send, time_machine):
    time_machine.move_to(NOW - timedelta(hours=2), tick=False)
    for i in range(3):  # 3 × ¥0.4 = ¥1.2: ¥1 (rounding each first would say ¥0)
        send(ActionId=f"F{i}", CampaignId="3003", Currency="JPY", Payout="0.4",
             CreationDate=iso(NOW - timedelta(hours=2, minutes=1)))  # fmt: skip
    time_machine.move_to(NOW, tick=False)

    (yen,) = staff_client.get("/?period=7d").context["money_cards"]
    assert "¥1" in staff_client.get("/?period=7d").content.decode()
    assert str(yen["gained"].normalize()) == "1.2"
    brands = b"".join(staff_client.get("/brands/?format=csv").streaming_content).decode("utf-8-sig")
    (row,) = csv.DictReader(io.StringIO(brands))
    assert (row["currency"], row["net_payout"]) == ("JPY", "1")
    events = b"".join(staff_client.get("/brands/3003/?format=csv").streaming_content).decode("utf-8-sig")
    assert {r["payout"] for r in csv.DictReader(io.StringIO(events))} == {"0"}  # a row: its one value, rounded once
