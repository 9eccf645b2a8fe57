"""The overview answers: what happened in the period, what did it cost, is ingest healthy."""

from datetime import timedelta
from decimal import Decimal

import pytest
from tests_dashboard_common import NOW, iso


def view_a_minute_later(time_machine):
    time_machine.move_to(NOW + timedelta(minutes=1), tick=False)


def _history(send):
    a1_created = iso(NOW - timedelta(seconds=240))
    send(ActionId="A1", Payout="10.00", CreationDate=a1_created)
    send(ActionId="A2", Payout="20.00", CreationDate=iso(NOW - timedelta(seconds=120)))
    send(ActionId="A3", Payout="30.00", CreationDate=iso(NOW - timedelta(minutes=20)))
    # Approved after it was created: an update time before CreationDate would be older than the
    # tracked values and kept as superseded (README, "Lifecycle rules").
    send(
        ActionId="A1",
        Status="APPROVED",
        Payout="12.50",
        DeltaPayout="2.50",
        CreationDate=a1_created,
        UpdateDate=iso(NOW - timedelta(seconds=60)),
    )
    send(ActionId="A2", Status="REVERSED", Payout="0", UpdateDate=iso(NOW - timedelta(hours=2)))


def test_overview_counts_actions_money_and_delays(staff_client, send, time_machine):
    _history(send)
    view_a_minute_later(time_machine)
    response = staff_client.get("/?period=24h")
    summary = response.context["summary"]
    assert (summary["tracked"], summary["modified"], summary["reversed"]) == (3, 1, 1)
    # Delays 60, 120, 240, 1200, 7200 s: percentile_cont on PostgreSQL and the fallback agree.
    assert summary["delay_p50"] == 240
    assert summary["delay_p95"] == pytest.approx(6000)
    assert (summary["delay_max"], summary["late"], summary["alert_late"]) == (7200, 2, 1)
    (usd,) = response.context["money_cards"]
    assert (usd["currency"], usd["gained"], usd["changed"], usd["lost"], usd["net"]) == (
        "USD", Decimal("60"), Decimal("2.5"), Decimal("-20"), Decimal("42.5")
    )  # fmt: skip
    html = response.content.decode()
    assert "$60.00" in html and "+$42.50" in html and "\u2212$20.00" in html
    assert "33.3%" in html
    assert "<dd>4 min</dd>" in html and "<dd>1 h 40 min</dd>" in html  # p50 and p95 as durations


def test_events_outside_the_period_are_not_counted(staff_client, send, time_machine):
    time_machine.move_to(NOW - timedelta(days=8), tick=False)
    send(ActionId="OLD", CreationDate=iso(NOW - timedelta(days=8, minutes=1)))
    time_machine.move_to(NOW, tick=False)
    send(ActionId="NEW", CreationDate=iso(NOW - timedelta(minutes=1)))
    view_a_minute_later(time_machine)
    assert staff_client.get("/?period=7d").context["summary"]["tracked"] == 1
    assert staff_client.get("/?period=30d").context["summary"]["tracked"] == 2


def test_ingest_health_links_to_invalid_and_refused_deliveries(staff_client, send, time_machine):
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(minutes=1)))
    send(ActionId="", Status="PENDING")  # invalid: no ActionId
    send(ActionId="A9", headers={"X-Postback-Token": "wrong-secret"})  # refused
    view_a_minute_later(time_machine)
    response = staff_client.get("/")
    html = response.content.decode()
    assert response.context["problem_deliveries"] == 1 and response.context["refused"] == 1
    assert "Needs attention" in html
    assert "/deliveries/?outcome=invalid&amp;date_from=2026-11-15&amp;date_to=2026-11-21" in html  # 7 whole days
    assert "/deliveries/refused/?date_from=2026-11-15&amp;date_to=2026-11-21" in html


def test_healthy_ingest_says_so_with_the_last_postback_time(staff_client, send):
    send(ActionId="A1", CreationDate=iso(NOW - timedelta(minutes=1)))
    html = staff_client.get("/").content.decode()
    assert "Healthy" in html
    assert "2026-11-21 12:00:00" in html


def test_a_new_install_explains_how_to_connect_impact(staff_client):
    html = staff_client.get("/").content.decode()
    assert "No postbacks yet" in html
    assert "/postbacks/impact/?ActionId={ActionId}&amp;CampaignId={CampaignId}" in html
    assert "&quot;ActionId&quot;: &quot;{ActionId}&quot;" in html  # the JSON body template
    assert "/admin/events/credential/add/" in html
    assert "None configured yet" in html


def test_a_bad_custom_period_falls_back_with_a_reason(staff_client):
    response = staff_client.get("/?period=custom&start=2026-11-10&end=2026-11-01")
    assert response.status_code == 200
    assert response.context["period"].key == "7d"
    assert "The end date is before the start date" in response.content.decode()


def test_custom_period_is_whole_days_in_the_display_zone(staff_client, send, settings, time_machine):
    settings.DISPLAY_TIME_ZONE = "America/New_York"
    # 2026-11-21 03:00 UTC is still Nov 20 in New York.
    time_machine.move_to(NOW.replace(hour=3), tick=False)
    send(ActionId="A1", CreationDate=iso(NOW.replace(hour=2)))
    time_machine.move_to(NOW, tick=False)
    nov20 = staff_client.get("/?period=custom&start=2026-11-20&end=2026-11-20")
    nov21 = staff_client.get("/?period=custom&start=2026-11-21&end=2026-11-21")
    assert (nov20.context["summary"]["tracked"], nov21.context["summary"]["tracked"]) == (1, 0)
    assert "America/New_York (UTC-05:00)" in nov20.content.decode()
    assert "2026-11-20 22:00:00" in nov20.content.decode()  # received 03:00 UTC, shown in New York


def test_open_alerts_card_is_there_for_the_alerts_feature(staff_client):
    assert "Open delay alerts" in staff_client.get("/").content.decode()
