"""The demo data on the overview, and the setup page's test postback sent, shown and removed."""

from __future__ import annotations

import io
import socket

import pytest
from django.core.management import call_command

from events.models import Action
from tests.conftest import ENDPOINT, OPERATOR_PERMISSIONS, grant

from .browser_helpers import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_demo_data_fills_the_overview_and_the_test_postback_works_from_the_setup_page(
    page, live_server, credential, settings, django_user_model
):
    grant(django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True), *OPERATOR_PERMISSIONS)
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
    page.set_default_timeout(15_000)
    log_in(page, live_server.url, "staff", "pw-staff-123")
    assert page.locator("text=Actions").first.is_visible()
    screenshot(page, "demo-overview")

    settings.PUBLIC_URL = live_server.url
    page.goto(live_server.url + "/setup/")
    assert live_server.url + "/postbacks/impact/?ActionId={ActionId}" in page.inner_text("#get-template")
    page.check("input[value=post-json]")
    page.click("text=Send test postback")
    page.wait_for_selector("text=The endpoint answered HTTP 200")
    assert "tracked (new → tracked)" in page.inner_text("main")
    screenshot(page, "setup-test-postback")
    test_action = Action.objects.get(action_id__startswith="TEST-")
    page.click("text=Remove the synthetic action")
    page.wait_for_selector(f"text=Removed the synthetic action {test_action.action_id}")
    assert not Action.objects.filter(action_id__startswith="TEST-").exists()
    assert Action.objects.count() == 60
