"""Helpers for browser tests (and scripts/readme_screenshots.py): chromium, screenshots, pixels, logging in."""

from __future__ import annotations

import base64
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def screenshot(page, name: str) -> bytes:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def pixel(page, png: bytes, x: int, y: int) -> tuple[int, int, int]:
    """The RGB of one pixel of a screenshot, decoded by the browser itself (no imaging library)."""
    data = base64.b64encode(png).decode()
    return tuple(
        page.evaluate(
            """async ([data, x, y]) => {
                const img = new Image(); img.src = 'data:image/png;base64,' + data; await img.decode();
                const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
                const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                return Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
            }""",
            [data, x, y],
        )
    )


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")


def fits(page, width: int, path: str) -> None:
    """The page needs no sideways scrolling at its viewport's width."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{path} is {scroll}px wide at {width}px"
