"""In a real browser (Debian's chromium through Playwright): the demo data on the overview, and
the setup page's test postback sent, shown and removed. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from events.models import Action
from tests.conftest import ENDPOINT

# Playwright's sync API runs an event loop in this thread; the ORM calls here are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection (asgiref's
        # context-local storage): close it here, or the test database cannot be dropped.
        connections.close_all()


@pytest.fixture
def staff_page(page, live_server, django_user_model):
    django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    page.goto(live_server.url + "/accounts/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "pw-staff-123")
    page.click("button[type=submit]")
    return page


def shoot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_demo_data_fills_the_overview_and_the_test_postback_works_from_the_setup_page(
    staff_page, live_server, credential, settings
):
    page = staff_page
    live_server.thread.httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    call_command(
        "simulate_postbacks",
        url=live_server.url + ENDPOINT,
        token=credential.secret,
        scenario="demo",
        actions=60,
        concurrency=1,
        verify=True,
        progress=False,
        stdout=io.StringIO(),
    )
    page.goto(live_server.url + "/")
    assert page.locator("text=Actions").first.is_visible()
    shoot(page, "demo-overview")

    settings.PUBLIC_URL = live_server.url
    page.goto(live_server.url + "/setup/")
    assert live_server.url + "/postbacks/impact/?ActionId={ActionId}" in page.inner_text("#get-template")
    page.check("input[value=post-json]")
    page.click("text=Send test postback")
    page.wait_for_selector("text=The endpoint answered HTTP 200")
    assert "tracked (new → tracked)" in page.inner_text("main")
    shoot(page, "setup-test-postback")
    test_action = Action.objects.get(action_id__startswith="TEST-")
    page.click("text=Remove the synthetic action")
    page.wait_for_selector(f"text=Removed the synthetic action {test_action.action_id}")
    assert not Action.objects.filter(action_id__startswith="TEST-").exists()
    assert Action.objects.count() == 60
