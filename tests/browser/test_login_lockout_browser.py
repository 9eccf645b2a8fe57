"""The lockout as a browser sees it: after the limit of wrong passwords, a styled page that says why
and for how long, in the site's own look (the stylesheet loads under the CSP), not an error page."""

from __future__ import annotations

import pytest

from .browser_helpers import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_lockout_page_is_the_sites_own_and_says_how_long(page, live_server, django_user_model):
    django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    answers = []
    page.on(
        "response", lambda response: answers.append(response.status) if "/accounts/login/" in response.url else None
    )
    for _ in range(5):
        page.goto(live_server.url + "/accounts/login/")
        page.get_by_label("Username").fill("staff")
        page.get_by_label("Password").fill("wrong-guess")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
    heading = page.get_by_role("heading", name="Too many failed logins")
    assert heading.is_visible()
    assert "paused for 15 minutes" in page.inner_text("main")
    assert answers[-1] == 429
    # Styled: the card of app.css, not the browser's default white page with black text.
    assert page.eval_on_selector(".card", "el => getComputedStyle(el).borderRadius") != "0px"
    screenshot(page, "login-locked-out")
    page.get_by_role("link", name="Back to the login page").click()
    page.get_by_label("Username").fill("staff")
    page.get_by_label("Password").fill("pw-staff-123")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Too many failed logins").is_visible()
