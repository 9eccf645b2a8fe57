"""Playwright (sync API) driving Debian's chromium against pytest-django's live_server.

Skipped when /usr/bin/chromium is missing. Screenshots go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
# under a running loop unless told it is safe (it is: one test thread, no coroutines).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=1, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
