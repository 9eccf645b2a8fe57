"""Publisher staff use the dashboard in a real browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User

from events.models import Delivery
from tests.conftest import OPERATOR_PERMISSIONS, grant

from .browser_helpers import log_in, pixel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@pytest.fixture
def history(transactional_db, send):
    """A brand with a tracked, modified and reversed action, an invalid and a failed delivery."""
    now = datetime.now(UTC)
    assert send(ActionId="A1", CreationDate=_iso(now - timedelta(minutes=20))).delivery.outcome == "applied"
    modified = send(
        ActionId="A1", Status="APPROVED", Amount="125.00", Payout="12.50", DeltaPayout="2.50",
        CreationDate=_iso(now - timedelta(minutes=20)), UpdateDate=_iso(now - timedelta(minutes=3)),
    )  # fmt: skip
    assert modified.delivery.outcome == "applied"
    send(ActionId="A2", CreationDate=_iso(now - timedelta(hours=3)))
    send(
        ActionId="A2", Status="REVERSED", Payout="0", StatusDetail="Returned by customer",
        CreationDate=_iso(now - timedelta(hours=3)), UpdateDate=_iso(now - timedelta(hours=2)),
    )  # fmt: skip
    assert send(ActionId="", Status="PENDING").delivery.outcome == "invalid"
    failed = Delivery.objects.create(
        method="GET",
        path="/postbacks/impact/",
        query_string=urlencode(
            {
                "ActionId": "A3",
                "CampaignId": "1001",
                "CampaignName": "Acme Shoes",
                "Status": "PENDING",
                "Payout": "7.00",
                "Currency": "USD",
                "CreationDate": _iso(now - timedelta(minutes=8)),
            }
        ),
        outcome="failed",
        reason="OperationalError: database is locked",
        attempts=1,
    )
    grant(User.objects.create_user("staff", password="correct horse 1", is_staff=True), *OPERATOR_PERMISSIONS)
    User.objects.create_user("viewer", password="correct horse 2")
    return failed


def test_staff_follow_a_brand_to_an_action_export_and_replay(page, live_server, history):
    base = live_server.url
    log_in(page, base, "staff", "correct horse 1")

    # Overview: figures and a drawn chart.
    assert page.get_by_role("heading", name="Overview").is_visible()
    png = screenshot(page, "overview")
    bars = page.locator("svg.svg-chart rect.bar.tracked")
    assert bars.count() >= 1
    box = bars.first.bounding_box()
    assert box["height"] > 2 and box["width"] > 2
    r, g, b = pixel(page, png, int(box["x"] + box["width"] / 2), int(box["y"] + box["height"] / 2))
    assert (abs(r - 0x3B), abs(g - 0x6F), abs(b - 0xD8)) < (12, 12, 12), (r, g, b)  # the "tracked" blue

    # Focus is visible: tabbing onto a link draws a 3 px outline.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineWidth")
    assert outline == "3px"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Brands").click()
    page.wait_for_url(f"{base}/brands/")
    screenshot(page, "brands")
    page.get_by_role("link", name="Acme Shoes").click()
    page.wait_for_url(f"{base}/brands/1001/")
    screenshot(page, "brand")

    page.get_by_label("Kind").select_option("reversed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**kind=reversed**")
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 1
    assert "Reversed" in rows.first.inner_text()
    screenshot(page, "brand-filtered")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    csv_text = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("received_at,changed_at,brand,action_id,kind")
    assert len(lines) == 2 and ",A2,reversed," in lines[1]

    page.goto(f"{base}/brands/1001/")
    page.get_by_role("link", name="A1").first.click()
    page.wait_for_url(f"{base}/actions/A1/")
    diff = page.locator("table.diff").first  # newest first: the modification
    assert "Payout" in diff.inner_text()
    assert diff.locator("td.old").filter(has_text="$10.00").count() == 1
    assert diff.locator("td.new").filter(has_text="$12.50").count() == 1
    screenshot(page, "action")

    page.goto(f"{base}/deliveries/?outcome=failed")
    screenshot(page, "deliveries")
    page.get_by_label(f"Select delivery {history.pk} for replay").check()
    page.get_by_role("button", name="Replay selected").click()
    page.wait_for_url("**ids=**")
    assert "Replayed 1 delivery: 1 applied." in page.locator(".messages").inner_text()
    screenshot(page, "deliveries-replayed")
    history.refresh_from_db()
    assert history.outcome == "applied"


def test_viewer_sees_no_replay_and_is_refused_when_posting(page, live_server, history):
    base = live_server.url
    log_in(page, base, "viewer", "correct horse 2")
    page.goto(f"{base}/deliveries/")
    assert page.get_by_role("button", name="Replay selected").count() == 0
    assert page.locator("input[name=delivery]").count() == 0
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{base}/deliveries/replay/",
        form={"delivery": str(history.pk), "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/deliveries/"},
    )
    assert response.status == 403
    history.refresh_from_db()
    assert history.outcome == "failed"


def test_every_page_fits_a_375px_phone(phone, live_server, history):
    base = live_server.url
    log_in(phone, base, "staff", "correct horse 1")
    for name, path in [
        ("phone-overview", "/"),
        ("phone-brands", "/brands/"),
        ("phone-brand", "/brands/1001/"),
        ("phone-action", "/actions/A1/"),
        ("phone-deliveries", "/deliveries/"),
        ("phone-refused", "/deliveries/refused/"),
    ]:
        phone.goto(base + path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide"
        screenshot(phone, name)
