"""A deploy made the standard Django way (`migrate`, `collectstatic`, gunicorn) and nothing else
refuses a wrong credential with 401, then throttles with 429: no step outside the migrations."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.site.test_settings import BASE_DIR, free_port, manage, wait_until_listening


def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_after_migrate_and_collectstatic_alone_a_wrong_credential_gets_401_then_429(tmp_path):
    env = {
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        # Per day: the windows are fixed, and four requests never straddle midnight in practice.
        "POSTBACK_REFUSAL_THROTTLE_RATE": "3/d",
    }
    for step in (["migrate", "--noinput"], ["collectstatic", "--noinput"], ["create_credential", "--label", "x"]):
        result = manage(*step, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "postbacks_site/gunicorn.conf.py"],
        cwd=BASE_DIR,
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_listening(port, server)
        url = f"http://127.0.0.1:{port}/postbacks/impact/?ActionId=A1"
        codes = [status_of(url, {"X-Postback-Token": "wrong-credential-0123456789"}) for _ in range(4)]
        no_credential = status_of(url, {})
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()  # only the process this test started
            server.wait(timeout=10)
    assert codes == [401, 401, 401, 429], server.stderr.read()
    assert no_credential == 429  # the same address, whatever it sends
