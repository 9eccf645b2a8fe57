"""The lists, the overview and a missing page read well at 1366 px and at 390 px in chromium: every
payout and delay in view (narrow screens stack each row under its column names), secondary text at
4.5:1 or more, dates in ISO form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User

from .browser_helpers import fits, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


CONTRAST = """(selector) => {
    const lum = (rgb) => {
        const [r, g, b] = rgb.match(/\\d+/g).slice(0, 3).map(Number).map((c) => c / 255)
            .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const bg = getComputedStyle(el).backgroundColor;
            if (bg && !bg.endsWith(", 0)") && bg !== "transparent") return bg;
        }
        return "rgb(255, 255, 255)";
    };
    return Array.from(document.querySelectorAll(selector)).map((el) => {
        const [a, b] = [lum(getComputedStyle(el).color), lum(background(el))].sort((x, y) => y - x);
        return (a + 0.05) / (b + 0.05);
    });
}"""


@pytest.fixture
def history(transactional_db, send):
    now = datetime.now(UTC)
    created = (now - timedelta(hours=2)).isoformat()
    send(ActionId="19816.5280.969444420", Payout="12.34", Oid="ORD-9246735", SubId1="blog", CreationDate=created)
    send(ActionId="J1", CampaignId="3003", CampaignName="Kettle & Crumb", Currency="JPY", Amount="20000",
         Payout="1500", CreationDate=created)  # fmt: skip
    send(ActionId="J1", CampaignId="3003", Currency="JPY", Status="REJECTED", Payout="0", DeltaPayout="-1500",
         UpdateDate=(now - timedelta(minutes=30)).isoformat())  # fmt: skip
    User.objects.create_user("staff", password="correct horse 1", is_staff=True)


def test_lists_show_every_payout_and_delay_in_view(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    for path, columns in (("/brands/", ["Net payout", "Delay p95"]), ("/brands/1001/", ["Payout", "Delay"])):
        page.goto(live_server.url + path)
        fits(page, width, path)
        row = page.locator("table.data tbody tr").first
        for label in columns:
            cell = row.locator(f'[data-label="{label}"]')
            box = cell.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (path, label, box)
            if name == "phone":  # stacked: each value under its column's name
                before = cell.evaluate("(el) => getComputedStyle(el, '::before').content")
                assert before == f'"{label}"', (path, label, before)
        screenshot(page, f"reading-{name}{path.replace('/', '-').rstrip('-')}")


def test_alert_pages_show_every_delay_and_receipt_in_view(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    page.goto(live_server.url + "/alerts/")
    fits(page, width, "/alerts/")
    row = page.locator("table.data tbody tr").first
    for label in ("Longest delay", "Opened"):
        box = row.locator(f'[data-label="{label}"]').bounding_box()
        assert box and box["x"] + box["width"] <= width, (label, box)
    row.get_by_role("link").click()
    page.wait_for_url("**/alerts/*/")
    fits(page, width, "alert page")
    evidence = page.locator("table.data tbody tr").first
    for label in ("Received", "Delay"):
        box = evidence.locator(f'[data-label="{label}"]').bounding_box()
        assert box and box["x"] + box["width"] <= width, (label, box)
    assert "h" in evidence.locator('[data-label="Delay"]').inner_text()  # "1 h 55 min", not seconds
    screenshot(page, f"reading-{name}-alert")


def test_secondary_text_reads_at_4_5_to_1_or_more(sized, live_server, history):
    _name, _width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    for path in ("/", "/brands/", "/brands/1001/", "/deliveries/", "/alerts/"):
        page.goto(live_server.url + path)
        ratios = page.evaluate(CONTRAST, ".hint, .sub, .muted, .subtitle, .kpi-label, .flag, .badge, .outcome")
        assert ratios and min(ratios) >= 4.5, (path, min(ratios))


def test_the_overview_names_its_days_and_picks_a_currency(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    page.goto(live_server.url + "/?period=7d")
    subtitle = page.locator(".subtitle").inner_text()
    assert "Last 7 days · " in subtitle and " – " in subtitle and "→" not in subtitle
    assert "Reversed by now" in page.locator("main").inner_text()
    picker = page.get_by_role("navigation", name="Currency of the payout chart")
    picker.get_by_role("link", name="JPY").click()
    page.wait_for_url("**currency=JPY**")
    assert "(JPY)" in page.locator("#overview-payout-title").inner_text()
    start = page.locator('input[name="start"]')
    assert start.get_attribute("placeholder") == "YYYY-MM-DD" and start.get_attribute("type") == "text"
    fits(page, width, "/?period=7d")
    screenshot(page, f"reading-{name}-overview")


def test_a_missing_action_answers_a_page_to_go_on_from(sized, live_server, history):
    name, width, page = sized
    log_in(page, live_server.url, "staff", "correct horse 1")
    response = page.goto(live_server.url + "/actions/NOPE-1/")
    assert response.status == 404
    assert page.get_by_role("navigation", name="Main").is_visible()
    assert "No action with ActionId NOPE-1 has arrived yet." in page.locator("main").inner_text()
    fits(page, width, "/actions/NOPE-1/")
    screenshot(page, f"reading-{name}-404")
