"""Settings: secure by default, clear errors for bad values, and an SQLite default that loses nothing."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import is_postgres, postback_params

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "PRODUCTION": "true",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "postbacks.example.com",
    "DATABASE_URL": "postgres://postbacks:password@db.example.com:5432/postbacks",
    "CREDENTIAL_HASH_KEY": secrets.token_urlsafe(32),
    "ENCRYPTION_KEY": "fY-S6jrGCHlRRgw3dDmIY6oZ3eUHafy3xi6T1vtJ6o0=",
}


def manage(*args: str, env: dict[str, str], timeout: int = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PRODUCTION", "SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_check_deploy_is_clean_with_the_documented_production_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secret_key_refuses_to_start_naming_it():
    result = manage("check", env={**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is required" in result.stderr


@pytest.mark.parametrize("name", ["CREDENTIAL_HASH_KEY", "ENCRYPTION_KEY"])
def test_production_without_a_key_for_stored_secrets_refuses_to_start_naming_it(name):
    result = manage("check", env={**PRODUCTION, name: ""})
    assert result.returncode != 0
    assert f"{name} is required when PRODUCTION=true" in result.stderr


def test_server_side_cursors_can_be_disabled_for_pgbouncer():
    code = "from django.conf import settings; print(settings.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'])"
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused", "DATABASE_DISABLE_SERVER_SIDE_CURSORS": "true"}
    result = manage("shell", "-c", code, env=env)
    assert result.stdout.splitlines()[-1] == "True", result.stderr


@pytest.mark.parametrize(("value", "expected"), [(None, "False"), ("true", "True")])
def test_connection_health_checks_are_off_unless_asked_for(value, expected):
    code = "from django.conf import settings; print(settings.DATABASES['default']['CONN_HEALTH_CHECKS'])"
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused"}
    if value is not None:
        env["DATABASE_HEALTH_CHECKS"] = value
    result = manage("shell", "-c", code, env=env)
    assert result.stdout.splitlines()[-1] == expected, result.stderr


def test_the_example_environment_file_works_as_it_is(tmp_path):
    """Every variable of .env.example at its documented default (empty DATABASE_URL: SQLite)."""
    env = {}
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value.strip('"')
    env.update({"SQLITE_PATH": str(tmp_path / "db.sqlite3"), "SECRET_KEY_FILE": str(tmp_path / "key")})
    result = manage(
        "shell", "-c", "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])", env=env
    )
    assert result.stdout.splitlines()[-1] == "django.db.backends.sqlite3", result.stderr


def test_debug_is_off_unless_set():
    result = manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env={})
    assert result.stdout.splitlines()[-1] == "False", result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("POSTBACK_MAX_BODY_BYTES", "64k", "POSTBACK_MAX_BODY_BYTES must be an integer"),
        ("DELAY_LATE_AFTER_MINUTES", "fifteen", "DELAY_LATE_AFTER_MINUTES must be an integer"),
        ("DELAY_ALERT_AFTER_MINUTES", "0", "DELAY_ALERT_AFTER_MINUTES must be at least 1"),
        ("DEBUG", "maybe", "DEBUG must be true or false"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("IMPACT_API_BASE_URL", "http://api.impact.com", "IMPACT_API_BASE_URL must be an https:// URL"),
        ("ENCRYPTION_KEY", "not-a-fernet-key", "ENCRYPTION_KEY must be Fernet keys"),
        ("CREDENTIAL_HASH_KEY", "short", "CREDENTIAL_HASH_KEY must be at least 32 characters"),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT must be at least 1"),
        ("LOGIN_COOLOFF_MINUTES", "soon", "LOGIN_COOLOFF_MINUTES must be an integer"),
        ("STAFF_REQUIRE_OTP", "maybe", "STAFF_REQUIRE_OTP must be true or false"),
        ("PASSWORD_RESET_THROTTLE_RATE", "lots", "PASSWORD_RESET_THROTTLE_RATE must look like 5/h"),
    ],
)
def test_a_bad_variable_refuses_to_start_naming_it(name, value, message):
    result = manage("check", env={name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


# --- SQLite under concurrency ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(port: int, server: subprocess.Popen, attempts: int = 200) -> None:
    for _ in range(attempts):
        assert server.poll() is None, server.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            threading.Event().wait(0.05)  # waiting on the server process, not on the clock under test
    raise AssertionError("gunicorn did not start")


# The SQLite default is what is under test; on PostgreSQL these would only repeat it.
sqlite_only = pytest.mark.skipif(is_postgres(), reason="SQLite only")


class Gunicorn:
    def __init__(self, port: int, secret: str, db_path: Path, env: dict[str, str]):
        self.port, self.secret, self.db_path, self.env = port, secret, db_path, env
        self.access_log = db_path.parent / "access.log"

    def process(self) -> str:
        """Apply what the server stored, as `make run`'s processor does beside it."""
        result = manage("process_deliveries", "--once", env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def url(self, params: dict[str, str]) -> str:
        return f"http://127.0.0.1:{self.port}/postbacks/impact/?{urlencode(params)}"


@pytest.fixture(scope="module")
def gunicorn_on_sqlite(tmp_path_factory):
    """gunicorn (3 sync workers, postbacks_site/gunicorn.conf.py) on a fresh SQLite file, as `make run` serves."""
    db_path = tmp_path_factory.mktemp("sqlite") / "db.sqlite3"
    env = {"SQLITE_PATH": str(db_path), "SECRET_KEY": secrets.token_urlsafe(50)}
    assert manage("migrate", "--noinput", env=env).returncode == 0
    secret = manage("create_credential", "--label", "load", env=env).stdout.splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "postbacks_site/gunicorn.conf.py"],
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **env,
            "PORT": str(port),
            "WEB_CONCURRENCY": "3",
            "GUNICORN_ACCESS_LOG": str(db_path.parent / "access.log"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_listening(port, server)
        yield Gunicorn(port, secret, db_path, env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()  # only the process this fixture started
            server.wait(timeout=10)


@sqlite_only
def test_thirty_two_concurrent_senders_lose_nothing_on_a_sqlite_file(gunicorn_on_sqlite):
    server = gunicorn_on_sqlite
    senders, per_sender = 32, 2
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(senders)

    def sender(n: int) -> None:
        barrier.wait(timeout=20)
        for i in range(per_sender):
            # Half the senders change one shared action (row contention), the others track their own.
            params = postback_params(action_id=f"OWN-{n}-{i}")
            if n % 2:
                params = postback_params(action_id="SHARED", Amount=f"{n}.{i:02d}", DeltaAmount="1")
            request = urllib.request.Request(server.url(params), headers={"X-Postback-Token": server.secret})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    outcome = (response.status, json.loads(response.read())["outcome"])
            except Exception as exc:
                outcome = (0, repr(exc))
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    total = senders * per_sender
    assert results.count((200, "received")) == total, [r for r in results if r != (200, "received")][:5]
    server.process()
    ours = "action_id = 'SHARED' OR action_id LIKE 'OWN-%'"
    with sqlite3.connect(server.db_path) as db_file:
        assert db_file.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (
            db_file.execute(f"SELECT count(*) FROM events_delivery WHERE outcome = 'applied' AND ({ours})").fetchone()[
                0
            ]
            == total
        )
        assert db_file.execute(f"SELECT sum(event_count) FROM events_action WHERE {ours}").fetchone()[0] == total
        seqs = [
            row[0]
            for row in db_file.execute(
                "SELECT e.seq FROM events_actionevent e JOIN events_action a ON a.id = e.action_id "
                "WHERE a.action_id = 'SHARED' ORDER BY e.seq"
            )
        ]
    assert seqs == list(range(1, total // 2 + 1))


@sqlite_only
def test_a_chunked_post_through_gunicorn_is_stored_with_its_body(gunicorn_on_sqlite):
    server = gunicorn_on_sqlite
    body = json.dumps(postback_params(action_id="CHUNKED")).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/postbacks/impact/",
            body=iter([body[:20], body[20:]]),  # an iterable body is sent with Transfer-Encoding: chunked
            headers={"Content-Type": "application/json", "X-Postback-Token": server.secret},
            encode_chunked=True,
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert (response.status, answer["outcome"]) == (200, "received")
    server.process()
    with sqlite3.connect(server.db_path) as db_file:
        stored, outcome = db_file.execute(
            "SELECT body, outcome FROM events_delivery WHERE id = ?", (answer["delivery"],)
        ).fetchone()
    assert (bytes(stored), outcome) == (body, "applied")


@sqlite_only
def test_a_request_line_of_seven_kilobytes_reaches_the_endpoint(gunicorn_on_sqlite):
    """gunicorn's own default (4 KB) answered long templates with an HTML 414 before Django."""
    server = gunicorn_on_sqlite
    params = postback_params(action_id="LONG-LINE", Memo="x" * 7000)  # kept in the event's extra
    request = urllib.request.Request(server.url(params), headers={"X-Postback-Token": server.secret})
    assert len(server.url(params)) > 7000
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
        assert (response.status, answer["outcome"]) == (200, "received")
    server.process()
    with sqlite3.connect(server.db_path) as db_file:
        query = "SELECT outcome FROM events_delivery WHERE id = ?"
        assert db_file.execute(query, (answer["delivery"],)).fetchone()[0] == "applied"


@sqlite_only
def test_the_access_log_never_holds_the_token_parameter(gunicorn_on_sqlite):
    server = gunicorn_on_sqlite
    # Other tests on this server log lines for the same path: this request's own is told by its agent.
    agent = "access-log-test"
    url = server.url({"ActionId": "LOG-1", "token": server.secret})
    with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": agent}), timeout=10) as response:
        assert response.status == 200
    for _ in range(100):  # gunicorn writes the line after answering
        text = server.access_log.read_text() if server.access_log.exists() else ""
        if agent in text:
            break
        time.sleep(0.05)
    (line,) = [line for line in text.splitlines() if agent in line]
    assert '"GET /postbacks/impact/ HTTP/1.1" 200' in line
    assert server.secret not in text and "token" not in text


def test_the_login_lockout_reads_its_limit_and_cool_off_from_the_environment():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME)",
        env={"LOGIN_FAILURE_LIMIT": "3", "LOGIN_COOLOFF_MINUTES": "90"},
    )
    assert result.stdout.splitlines()[-1] == "3 1:30:00", result.stderr
