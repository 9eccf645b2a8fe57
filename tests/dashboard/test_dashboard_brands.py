"""Brands: one row per brand, sortable, searchable, exportable."""

from datetime import timedelta
from decimal import Decimal

from tests_dashboard_common import NOW, iso


def _brands(send):
    for i, delay in enumerate([60, 120, 600]):
        send(ActionId=f"S{i}", CampaignId="1001", CampaignName="Acme Shoes", Payout="10",
             CreationDate=iso(NOW - timedelta(seconds=delay)))  # fmt: skip
    send(ActionId="S0", CampaignId="1001", CampaignName="Acme Shoes", Status="REVERSED", Payout="0",
         UpdateDate=iso(NOW - timedelta(seconds=30)))  # fmt: skip
    send(ActionId="B1", CampaignId="2002", CampaignName="Blue Bikes", Payout="99", Currency="EUR",
         CreationDate=iso(NOW - timedelta(hours=2)))  # fmt: skip


def _names(response):
    return [row["brand"].name for row in response.context["rows"]]


def test_each_brand_row_has_its_figures(staff_client, send, later):
    _brands(send)
    later()
    rows = {row["brand"].campaign_id: row for row in staff_client.get("/brands/").context["rows"]}
    acme, bikes = rows["1001"], rows["2002"]
    assert (acme["tracked"], acme["reversed"]) == (3, 1)
    assert acme["reversed_share"] == 1 / 3  # of its 3 actions tracked in the period, 1 is reversed by now
    assert acme["nets"] == [("USD", Decimal("20"))]
    # Delays 30, 60, 120, 600: p95 = 120 + 0.85 * 480.
    assert round(acme["delay_p95"]) == 528
    assert bikes["nets"] == [("EUR", Decimal("99"))]
    assert bikes["brand"].last_received_at == NOW


def test_brands_sort_by_any_column_both_ways(staff_client, send, later):
    _brands(send)
    later()
    assert _names(staff_client.get("/brands/?sort=name")) == ["Acme Shoes", "Blue Bikes"]
    assert _names(staff_client.get("/brands/?sort=-name")) == ["Blue Bikes", "Acme Shoes"]
    assert _names(staff_client.get("/brands/?sort=-payout")) == ["Blue Bikes", "Acme Shoes"]
    assert _names(staff_client.get("/brands/?sort=-delay_p95")) == ["Blue Bikes", "Acme Shoes"]
    html = staff_client.get("/brands/?sort=-payout").content.decode()
    assert 'aria-sort="descending"' in html


def test_brands_search_by_name_or_campaign_id(staff_client, send):
    _brands(send)
    assert _names(staff_client.get("/brands/?q=bikes")) == ["Blue Bikes"]
    assert _names(staff_client.get("/brands/?q=1001")) == ["Acme Shoes"]
    assert "No brand matches" in staff_client.get("/brands/?q=zzz").content.decode()


def test_brands_export_as_csv(staff_client, send, later):
    _brands(send)
    later()
    response = staff_client.get("/brands/?format=csv&sort=name")
    lines = b"".join(response.streaming_content).decode("utf-8-sig").strip().splitlines()
    assert lines[0].startswith("campaign_id,name,tracked")
    assert lines[1].startswith("1001,Acme Shoes,3,0,1,0.3333,USD,20.00,")
    assert (
        lines[2] == "2002,Blue Bikes,1,0,0,0.0000,EUR,99.00,2026-11-21T12:00:00+00:00,2 h 00 min,1"
    )  # two hours late: one open alert


def test_no_brands_yet_points_to_the_setup(staff_client):
    assert "No brands yet" in staff_client.get("/brands/").content.decode()
