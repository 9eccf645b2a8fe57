"""The reports in chromium at 1366 px and 390 px: the locking calendar and a day of it, a performance
table (every figure in view; stacked under its column names on a phone), and the top bar's search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User

from .browser_helpers import fits, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def history(transactional_db, send):
    now = datetime.now(UTC)
    created = (now - timedelta(hours=2)).isoformat()
    send(ActionId="B1", Payout="12.34", Oid="ORD-9246735", SubId1="blog", CreationDate=created,
         LockingDate=(now + timedelta(days=3)).isoformat())  # fmt: skip
    send(ActionId="B2", Payout="30.00", SubId1="news", CreationDate=created,
         LockingDate=(now - timedelta(days=2)).isoformat())  # fmt: skip
    send(ActionId="J1", CampaignId="3003", CampaignName="Kettle & Crumb", Currency="JPY", Amount="20000",
         Payout="1500", SubId1="blog", CreationDate=created, LockingDate=(now + timedelta(days=3)).isoformat())  # fmt: skip
    User.objects.create_user("staff", password="correct horse 1", is_staff=True)


def _in_view(row, labels, width, stacked: bool) -> None:
    for label in labels:
        cell = row.locator(f'[data-label="{label}"]')
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (label, box)
        if stacked:
            before = cell.evaluate("(el) => getComputedStyle(el, '::before').content")
            assert before == f'"{label}"', (label, before)


def test_the_locking_calendar_and_a_day_of_it(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    page.goto(live_server.url + "/locking/")
    fits(page, width, "/locking/")
    rows = page.locator("table.calendar tbody tr")
    text = page.locator("table.calendar").inner_text()
    assert "$12.34" in text and "¥1,500" in text and "1 still pending" in text
    _in_view(rows.first, ["Day", "Payout locking", "Flags"], width, stacked=name == "phone")
    screenshot(page, f"reports-{name}-locking")
    page.locator("table.calendar tbody tr", has_text="still pending").get_by_role("link").first.click()
    page.wait_for_url("**day=**")
    fits(page, width, "locking day")
    brands = page.locator("table.day-brands tbody tr")
    _in_view(brands.first, ["Brand", "Payout locking", "Flags"], width, stacked=name == "phone")
    assert "1 still pending" in brands.first.inner_text()
    assert "B2" in page.locator("table.day-actions").inner_text()
    page.get_by_role("link", name="B2").click()
    page.wait_for_url("**/actions/B2/")
    assert "locked since" in page.locator("main").inner_text()


def test_a_performance_table_by_sub_id(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    page.goto(live_server.url + "/performance/?by=sub_id1")
    fits(page, width, "/performance/")
    tables = page.locator("table.performance")
    assert tables.count() == 2  # USD and JPY apart
    usd = page.locator("section", has=page.get_by_role("heading", name="USD")).locator("table")
    row = usd.locator("tbody tr").first
    _in_view(row, ["Value", "Actions tracked", "Reversed share", "Net"], width, stacked=name == "phone")
    screenshot(page, f"reports-{name}-performance")
    if name == "phone":  # no column header to click: the rows are stacked
        page.get_by_label("Sort, within each currency").select_option("-net")
        page.get_by_role("button", name="Show").click()
    else:
        usd.get_by_role("link", name="Net").click()
    page.wait_for_url("**sort=-net**")
    assert usd.locator("tbody tr").first.locator("th").inner_text() == "news"  # $30.00 before $12.34
    page.get_by_role("link", name="blog").first.click()
    page.wait_for_url("**value=blog**")
    assert "B1" in page.locator("table.data").inner_text()


def test_the_top_bar_search_finds_an_order_by_a_part_of_its_id(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    page.goto(live_server.url + "/brands/")
    page.get_by_role("searchbox", name="Search actions, orders, SubIds, brands").fill("9246735")
    page.get_by_role("search").first.get_by_role("button", name="Search").click()
    page.wait_for_url("**/search/?q=9246735")
    fits(page, width, "/search/")
    assert "B1" in page.locator("main").inner_text()
    screenshot(page, f"reports-{name}-search")
