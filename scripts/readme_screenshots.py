"""Regenerate the README's screenshots from the demo scenario (`make screenshots`).

A throwaway SQLite database in a temporary directory is migrated, given a staff user and a
credential, and served by gunicorn exactly as `make run` serves it; `simulate_postbacks --scenario
demo --verify` sends it a month of impact.com postbacks through the real endpoint. Debian's chromium,
driven by Playwright like the browser tests, then logs in and saves docs/screenshots/overview.png,
brand-timeline.png, locking-calendar.png and performance.png. Nothing outside docs/screenshots/ is touched.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PYTHON = sys.executable
GUNICORN = Path(sys.executable).with_name("gunicorn")
VIEWPORT = {"width": 1280, "height": 900}
USERNAME = "staff"
MAX_PNG_BYTES = 300_000
MAX_HEIGHT = 1500
MARGIN = 24
# The environment that would point the throwaway instance elsewhere, or change what it shows.
CLEARED = (
    "DATABASE_URL",
    "CACHE_URL",
    "PUBLIC_URL",
    "PRODUCTION",
    "DEBUG",
    "LOG_FORMAT",
    "DISPLAY_TIME_ZONE",
    "SECRET_KEY_FILE",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    print("$ manage.py", " ".join(args), flush=True)
    done = subprocess.run(  # noqa: S603 - this project's manage.py, our own arguments
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, text=True, stdout=subprocess.PIPE
    )
    print(done.stdout, end="", flush=True)
    return done.stdout


def instance_env(tmp: Path, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(
        SQLITE_PATH=str(tmp / "db.sqlite3"),
        STATIC_ROOT=str(tmp / "static"),
        SECRET_KEY=secrets.token_urlsafe(50),
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        LOG_LEVEL="WARNING",  # not one line per postback
    )
    return env


def set_up(env: dict, password: str) -> str:
    """Migrate, create the staff user and a credential; return the credential's secret."""
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({USERNAME!r}, password={password!r}, is_staff=True)",
    )
    return manage(env, "create_credential", "--label", "README screenshots").strip().splitlines()[-1]


def take_screenshots(base_url: str, password: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            page = context.new_page()
            page.set_default_timeout(15_000)
            log_in(page, base_url, USERNAME, password)
            page.get_by_role("heading", name="Overview").wait_for()
            page.get_by_role("link", name="30 d").click()
            page.wait_for_url("**period=30d**")
            # Down to the activity charts: the figures, delay, ingest health, alerts and both charts.
            saved.append(save(page, "overview", down_to=page.locator(".card:has(svg.svg-chart)").last))

            # The brand with the most actions in the period: the brands table's first row once sorted by it.
            page.goto(base_url + "/brands/")
            page.locator("table.data tbody th[scope=row] a").first.click()
            page.wait_for_url(base_url + "/brands/*/")
            # The charts and the newest few events.
            saved.append(save(page, "brand-timeline", down_to=page.locator("table.data tbody tr").nth(3)))

            # The locking calendar: its totals and the first days that have lockings.
            page.goto(base_url + "/locking/")
            days = page.locator("table.calendar tbody tr")
            saved.append(save(page, "locking-calendar", down_to=days.nth(min(9, days.count() - 1))))

            # Performance by SubId1 over the month, the busiest currency's table.
            page.goto(base_url + "/performance/?by=sub_id1&period=30d")
            saved.append(save(page, "performance", down_to=page.locator("table.performance").first))
        finally:
            browser.close()
    return saved


def save(page, name: str, down_to) -> Path:
    """Screenshot the page's top, 1280 px wide, down to (and including) one element, at most MAX_HEIGHT tall."""
    page.wait_for_load_state("networkidle")
    page.evaluate("window.scrollTo(0, 0)")
    box = down_to.bounding_box()
    height = min(MAX_HEIGHT, int(box["y"] + box["height"]) + MARGIN)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    size = path.stat().st_size
    print(f"Saved {path.relative_to(ROOT)} ({size // 1024} KB)", flush=True)
    if size > MAX_PNG_BYTES:
        raise SystemExit(f"{path.name} is {size} bytes, over the {MAX_PNG_BYTES} the README allows")
    return path


def stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="Port for the throwaway gunicorn (default: a free one).")
    parser.add_argument("--seed", type=int, default=1, help="The demo world's seed (default 1).")
    options = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")

    port = options.port or free_port()
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="readme-screenshots-") as tmp:
        env = instance_env(Path(tmp), port)
        token = set_up(env, password)
        print(f"$ gunicorn on 127.0.0.1:{port} (WEB_CONCURRENCY=2)", flush=True)
        command = [str(GUNICORN), "--config", "postbacks_site/gunicorn.conf.py"]
        server = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - fixed arguments
        try:
            manage(
                env,
                "simulate_postbacks",
                "--scenario",
                "demo",
                "--seed",
                str(options.seed),
                "--url",
                f"http://127.0.0.1:{port}/postbacks/impact/",
                "--token",
                token,
                "--wait",
                "60",
                "--verify",
                "--no-progress",
            )
            # One pass of the delay watcher, as `make demo` runs it beside gunicorn.
            manage(env, "watch_delays", "--once")
            take_screenshots(f"http://127.0.0.1:{port}", password)
        finally:
            stop(server)


if __name__ == "__main__":
    main()
