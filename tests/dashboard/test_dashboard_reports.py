"""The reports through their pages, on histories sent through the real endpoint whose answers are
known: money by status (an action that locked, one reversed before its locking date, one still
pending past it, one locking ahead), the locking calendar and its days, performance by SubId across
brands and currencies, and the search box."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from tests_dashboard_common import NOW, iso

from events.alerts import watcher
from events.models import ActionReport, ReportZone, StatusTotal
from events.reporting import reports

ACME = {"CampaignId": "1001", "CampaignName": "Acme Shoes"}
NORD = {"CampaignId": "2002", "CampaignName": "Nord Books", "Currency": "EUR"}


def at(days: float) -> str:
    return iso(NOW + timedelta(days=days))


@pytest.fixture
def history(send, later):
    """Five actions of Acme (USD) and two of Nord (EUR):
    - L1 approved, locked 5 days ago: locked, $10.
    - R1 reversed 2 days before its locking date (tomorrow): reversed, $20 lost.
    - P1 still PENDING 3 days past its locking date: locked and flagged, $30.
    - F1 pending, locks in 3 days: pending, $40.
    - A1 approved, locks in 10 days: approved, $50.
    - N1 (EUR) pending, locks in 3 days; N2 (EUR) reversed. Sub ids: blog for L1, R1, N1, N2; news for the rest.
    """
    sent = [
        dict(ActionId="L1", Status="APPROVED", Payout="10.00", LockingDate=at(-5), SubId1="blog", **ACME),
        dict(ActionId="R1", Payout="20.00", LockingDate=at(1), SubId1="blog", **ACME),
        dict(ActionId="P1", Payout="30.00", LockingDate=at(-3), SubId1="news", **ACME),
        dict(ActionId="F1", Payout="40.00", LockingDate=at(3), SubId1="news", Oid="ORD-9246735", **ACME),
        dict(ActionId="A1", Status="APPROVED", Payout="50.00", LockingDate=at(10), SubId1="News", **ACME),
        dict(ActionId="N1", Payout="7.00", LockingDate=at(3), SubId1="BLOG", **NORD),
        dict(ActionId="N2", Payout="9.00", LockingDate=at(20), SubId1="blog", **NORD),
    ]
    for params in sent:
        send(CreationDate=at(-0.01), **params)
    for action_id, campaign, payout in (("R1", ACME, "20.00"), ("N2", NORD, "9.00")):
        send(
            ActionId=action_id, Status="REVERSED", Payout="0.00", DeltaPayout=f"-{payout}",
            UpdateDate=at(-0.005), **campaign,
        )  # fmt: skip
    later()


def test_every_action_gets_a_report_in_the_batch_that_changes_it(history):
    reversed_ = ActionReport.objects.get(action__action_id="R1")
    assert reversed_.reversed and reversed_.group == "reversed"
    assert (reversed_.gained, reversed_.lost, reversed_.payout) == (Decimal(20), Decimal(-20), Decimal(20))
    assert ActionReport.objects.count() == 7


def test_overview_shows_money_by_status_now_and_for_the_period(staff_client, history):
    response = staff_client.get("/")
    (_, now_cards), (_, period_cards) = response.context["status_rows"]
    usd = next(card for card in now_cards if card["currency"] == "USD")
    assert usd["locked"] == {"actions": 2, "payout": Decimal(40)}  # L1 and P1
    assert usd["overdue"] == {"actions": 1, "payout": Decimal(30)}  # P1, still pending
    assert usd["pending"] == {"actions": 1, "payout": Decimal(40)}  # F1
    assert usd["approved"] == {"actions": 1, "payout": Decimal(50)}  # A1
    assert usd["reversed"] == {"actions": 1, "payout": Decimal(20)}  # R1, though its locking date is ahead
    eur = next(card for card in now_cards if card["currency"] == "EUR")
    assert (eur["pending"]["actions"], eur["reversed"]["actions"], eur["locked"]["actions"]) == (1, 1, 0)
    assert period_cards == now_cards  # every action was tracked in the last 7 days
    html = response.content.decode()
    assert "Money by status" in html and "1 still pending" in html


def test_a_brand_page_shows_its_own_money_by_status(staff_client, history):
    response = staff_client.get("/brands/2002/")
    (_, now_cards), _ = response.context["status_rows"]
    assert [card["currency"] for card in now_cards] == ["EUR"]


def totals() -> dict:
    """{(group, currency, locking day): (actions, payout)} of StatusTotal, the empty keys left out."""
    return {
        (t.group, t.currency, t.locking_day): (t.actions, t.payout)
        for t in StatusTotal.objects.all()
        if t.actions or t.payout
    }


def test_totals_follow_each_change_without_a_recount(staff_client, send, history):
    staff_client.get("/")  # counts StatusTotal
    send(ActionId="F1", Status="REVERSED", Payout="0.00", DeltaPayout="-40.00", UpdateDate=at(0), **ACME)
    kept = totals()
    response = staff_client.get("/")
    (_, now_cards), _ = response.context["status_rows"]
    usd = next(card for card in now_cards if card["currency"] == "USD")
    assert usd["pending"]["actions"] == 0 and usd["reversed"] == {"actions": 2, "payout": Decimal(60)}
    reports.forget()
    staff_client.get("/")  # counted again from the reports: the same totals
    assert totals() == kept


def test_timeline_rows_and_the_action_page_say_when_it_locks(staff_client, history):
    html = staff_client.get("/brands/1001/").content.decode()
    assert "locks in 3 days" in html  # F1
    assert "locked since" in html and "still pending" in html  # P1
    assert "locks in 10 days" in staff_client.get("/actions/A1/").content.decode()
    assert "locked since 2026-11-16" in staff_client.get("/actions/L1/").content.decode()


def test_locking_calendar_shows_each_days_payout_and_flags_the_pending(staff_client, history):
    response = staff_client.get("/locking/")
    days = {d.day.isoformat(): d for d in response.context["days"]}  # the days with lockings, and today
    assert sorted(days) == sorted((NOW + timedelta(days=n)).date().isoformat() for n in (-5, -3, 0, 3, 10))
    in_three = days[(NOW + timedelta(days=3)).date().isoformat()]
    assert {c: (m["actions"], m["payout"]) for c, m in in_three.money.items()} == {
        "USD": (1, Decimal(40)),
        "EUR": (1, Decimal(7)),
    }
    assert days[(NOW - timedelta(days=3)).date().isoformat()].overdue == 1  # P1
    assert days[(NOW - timedelta(days=5)).date().isoformat()].overdue == 0  # L1 was approved
    # R1 (locking in a day) and N2 (in 20 days) were reversed: their days lock nothing.
    assert response.context["overdue"] == 1
    only_eur = staff_client.get("/locking/?currency=eur").context["days"]
    assert sum(d.actions for d in only_eur) == 1


def test_a_calendar_day_lists_its_actions_and_exports_them(staff_client, history):
    day = (NOW - timedelta(days=3)).date().isoformat()
    response = staff_client.get(f"/locking/?day={day}")
    assert [r.action.action_id for r in response.context["page"].rows] == ["P1"]
    assert "still pending" in response.content.decode()
    exported = staff_client.get(f"/locking/?day={day}&format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode("utf-8-sig"))))
    assert rows[1][1:] == ["P1", "1001", "pending", "USD", "30.00", "still pending when locked"]


def test_a_calendar_day_shows_its_brands_and_the_csv_every_days(staff_client, history):
    in_three = (NOW + timedelta(days=3)).date().isoformat()
    brands = staff_client.get(f"/locking/?day={in_three}").context["brands"]
    assert [(b["brand"].campaign_id, b["currency"], b["actions"], b["payout"]) for b in brands] == [
        ("2002", "EUR", 1, Decimal(7)),
        ("1001", "USD", 1, Decimal(40)),
    ]  # by currency, the largest payout first
    exported = staff_client.get("/locking/?format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ["day", "currency", "campaign_id", "brand", "actions", "payout", "still_pending_when_locked"]
    three_ago = (NOW - timedelta(days=3)).date().isoformat()
    assert [three_ago, "USD", "1001", "Acme Shoes", "1", "30.00", "1"] in rows  # P1, locked while pending
    assert [in_three, "EUR", "2002", "Nord Books", "1", "7.00", ""] in rows
    assert len(rows) == 1 + 5  # L1, P1, F1, N1, A1: one brand a day and currency


def test_an_unknown_brand_is_said_and_ignored(staff_client, history):
    response = staff_client.get("/locking/?brand=nope")
    assert response.status_code == 200
    assert "No brand has the campaign ID" in response.content.decode()


def test_performance_by_sub_id_across_brands_per_currency(staff_client, history):
    response = staff_client.get("/performance/?by=sub_id1")
    groups = response.context["groups"]
    usd = {r["value"]: r for r in groups["USD"]}
    assert usd["blog"]["tracked"] == 2 and usd["blog"]["reversed"] == 1
    assert usd["blog"]["reversed_rate"] == 0.5
    assert (usd["blog"]["gained"], usd["blog"]["lost"], usd["blog"]["net"]) == (Decimal(30), Decimal(-20), Decimal(10))
    assert usd["news"]["tracked"] == 2 and usd["News"]["tracked"] == 1  # values as sent
    eur = {r["value"]: r for r in groups["EUR"]}
    assert eur["blog"]["reversed_rate"] == 1.0 and eur["BLOG"]["reversed"] == 0
    assert all(r["reversed"] <= r["tracked"] for rows in groups.values() for r in rows)


def test_performance_sorts_within_each_currency_and_drills_into_actions(staff_client, history):
    groups = staff_client.get("/performance/?by=sub_id1&sort=-net").context["groups"]
    assert [r["value"] for r in groups["USD"]] == ["news", "News", "blog"]  # $70, $50, $10
    drill = staff_client.get("/performance/?by=sub_id1&value=blog&brand=1001")
    assert sorted(r.action.action_id for r in drill.context["page"].rows) == ["L1", "R1"]
    assert "sub_id=blog" in drill.context["timeline"]
    exported = staff_client.get("/performance/?by=sub_id1&format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["dimension", "value", "currency"] and len(rows) == 1 + 5


def test_performance_by_every_dimension_answers(staff_client, history):
    for by in ("sub_id2", "sub_id3", "tracker", "promo_code", "referring_type"):
        response = staff_client.get(f"/performance/?by={by}&period=30d")
        assert response.status_code == 200
        assert sum(r["tracked"] for rows in response.context["groups"].values() for r in rows) == 7


@pytest.mark.parametrize(
    ("text", "section", "expected"),
    [
        ("F1", "action", ["F1"]),
        ("9246735", "orders", ["F1"]),
        ("ord-9246735", "orders", ["F1"]),
        ("Blog", "sub_ids", ["N2", "N1", "R1", "L1"]),
    ],
)
def test_one_search_box_finds_across_brands(staff_client, history, text, section, expected):
    response = staff_client.get("/search/", {"q": text})
    found = response.context["results"][section]
    ids = [getattr(row, "action_id", None) if section != "sub_ids" else row.action.action_id for row in found]
    assert sorted(ids) == sorted(expected)


def test_search_finds_brands_by_name_or_campaign_id(staff_client, history):
    assert [b.campaign_id for b in staff_client.get("/search/?q=nord").context["results"]["brands"]] == ["2002"]
    assert [b.campaign_id for b in staff_client.get("/search/?q=1001").context["results"]["brands"]] == ["1001"]
    response = staff_client.get("/search/?q=zzz-nothing")
    assert "Nothing matches" in response.content.decode()
    assert 'id="top-search"' in response.content.decode()


def test_the_backfill_gives_actions_stored_before_the_table_their_reports(make_history):
    make_history(20)  # bulk-created, as actions stored before migration 0010_reports were
    assert ActionReport.objects.count() == 0
    assert reports.backfill() == 13
    reversals = ActionReport.objects.exclude(lost=0)  # their money from the events: actions 0, 5 and 10
    assert {(r.action.action_id, r.gained, r.lost) for r in reversals} == {
        (action_id, Decimal(10), Decimal(-10)) for action_id in ("1001.000000", "1003.000005", "1002.000010")
    }
    modified = ActionReport.objects.get(action__action_id="1001.000003")
    assert (modified.gained, modified.changed, modified.sub_id1) == (Decimal(10), Decimal("2.5"), "sub3")


def test_the_delay_watcher_counts_the_status_totals_ahead(history):
    assert not ReportZone.objects.exists()
    watcher.Watcher(log=lambda text: None).run_pass()
    assert ReportZone.objects.get().zone == "UTC"
    assert sum(t.actions for t in StatusTotal.objects.all()) == 7
