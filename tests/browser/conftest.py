"""Playwright (sync API) driving Debian's chromium against pytest-django's live_server.

One Playwright instance and one chromium for the whole of tests/browser (a package, so the
"package" scope ends with its last test): a second sync_playwright() in the same session fails
("Playwright Sync API inside the asyncio loop"). Skipped when /usr/bin/chromium is missing.
Screenshots go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import pytest

from .browser_helpers import CHROMIUM, CHROMIUM_ARGS


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="package", autouse=True)
def orm_under_playwright_loop():
    """Playwright's sync API keeps an event loop running in this thread; Django's ORM refuses to run
    under it unless told it is safe (it is: one test thread, no coroutines). Only while these tests
    run: the variable must not reach other tests' subprocesses (`check --deploy` reports async.E001)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="package")
def browser(orm_under_playwright_loop):
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


WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}


@pytest.fixture(params=list(WIDTHS))
def sized(request, browser):
    """(name, width, page) at a desktop's 1366 px and a phone's 390 px, each its own context."""
    width, height = WIDTHS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=width < 500)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield request.param, width, page
    context.close()
