"""Security headers on every page, no inline scripts to need 'unsafe-inline', production settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/", "/postbacks/impact/"])
def test_every_response_carries_the_security_headers(client, db, url):
    response = client.get(url)
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["object-src"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_the_header_lists_the_directives_in_the_order_written(client, db):
    # django-csp alone orders them by a set of strings: differently in each process.
    written = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    assert client.get("/accounts/login/")["Content-Security-Policy"] == written


def test_the_policy_is_the_header_text_given_and_an_empty_one_sends_none():
    values = _production_settings("CONTENT_SECURITY_POLICY")
    assert "'frame-ancestors': [\"'none'\"]" in values["CONTENT_SECURITY_POLICY"]
    env = {**os.environ, "CONTENT_SECURITY_POLICY": "", "DJANGO_SETTINGS_MODULE": "postbacks_site.settings"}
    code = "from django.conf import settings; print(settings.CONTENT_SECURITY_POLICY)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_without_a_policy_no_header_is_sent(client, db, settings):
    settings.CONTENT_SECURITY_POLICY = None
    assert "Content-Security-Policy" not in client.get("/accounts/login/")


def test_templates_have_no_inline_scripts_or_event_handlers():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"<script\b[^>]*>", text, re.I):
            if "src=" not in match.group(0) and "application/json" not in match.group(0):
                offenders.append(f"{path.name}: {match.group(0)}")
        offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"\son[a-z]+\s*=", text, re.I)]
        offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"javascript:", text, re.I)]
    assert offenders == []


def _production_settings(*names: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PRODUCTION": "true",
        "SECRET_KEY": "x" * 60,
        "ALLOWED_HOSTS": "postbacks.example.com",
        "CREDENTIAL_HASH_KEY": "k" * 40,
        "ENCRYPTION_KEY": "fY-S6jrGCHlRRgw3dDmIY6oZ3eUHafy3xi6T1vtJ6o0=",
        "DJANGO_SETTINGS_MODULE": "postbacks_site.settings",
    }
    code = "from django.conf import settings\n" + "\n".join(f"print({n!r}, repr(settings.{n}))" for n in names)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def test_production_turns_on_hsts_secure_cookies_and_json_logs():
    values = _production_settings(
        "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "LOG_FORMAT"
    )
    assert int(values["SECURE_HSTS_SECONDS"]) >= 31_536_000
    assert values["SESSION_COOKIE_SECURE"] == values["CSRF_COOKIE_SECURE"] == "True"
    assert values["SECURE_SSL_REDIRECT"] == "True"
    assert values["LOG_FORMAT"] == "'json'"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("METRICS_ALLOWED_CIDRS", "localhost"),
        ("POSTBACK_REFUSAL_THROTTLE_RATE", "lots"),
        ("LOG_FORMAT", "xml"),
        ("METRICS_TOKEN", "short"),
        ("CONTENT_SECURITY_POLICY", "default-src 'self'; script-source 'self'"),
    ],
)
def test_bad_security_settings_are_refused_by_name(name, value):
    env = {**os.environ, name: value, "DJANGO_SETTINGS_MODULE": "postbacks_site.settings"}
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.DEBUG"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr and name in out.stderr
