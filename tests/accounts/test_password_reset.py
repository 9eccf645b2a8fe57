"""Password reset: served only where mail is delivered, and throttled per address and per email.

pytest-django always swaps in Django's in-memory mail backend, which delivers nothing, so the reset
pages answer 404 in tests as they do with the console backend. The "served" tests mark that
backend as delivering through PASSWORD_RESET_ANY_EMAIL_BACKEND (a setting, never read from the
environment) and read the sent message from `mail.outbox`.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from events.models import RateWindow
from postbacks_site import accounts

ATTACKER = "203.0.113.9"
OTHER = "198.51.100.7"
RESET_PAGES = [
    "/accounts/password_reset/",
    "/accounts/password_reset/done/",
    "/accounts/reset/MQ/set-password/",
    "/accounts/reset/done/",
]


@pytest.fixture(autouse=True)
def _still_clock(db, settings):
    """The throttle counts in fixed one-hour windows: the clock stands still a second into one."""
    settings.TRUSTED_PROXIES = []
    with time_machine.travel(timezone.now().replace(minute=0, second=1, microsecond=0), tick=False) as traveller:
        yield traveller


@pytest.fixture
def mail_delivered(settings):
    settings.PASSWORD_RESET_ANY_EMAIL_BACKEND = True


@pytest.fixture
def pat(django_user_model):
    return django_user_model.objects.create_user("pat", email="pat@example.com", password="old-password-4821")


def ask(client, email="pat@example.com", remote_addr=ATTACKER):
    return client.post("/accounts/password_reset/", {"email": email}, REMOTE_ADDR=remote_addr)


@pytest.mark.parametrize(
    ("backend", "served"),
    [
        ("django.core.mail.backends.console.EmailBackend", False),
        ("django.core.mail.backends.filebased.EmailBackend", False),
        ("django.core.mail.backends.locmem.EmailBackend", False),
        ("django.core.mail.backends.dummy.EmailBackend", False),
        ("django.core.mail.backends.smtp.EmailBackend", True),
    ],
)
def test_only_a_delivering_backend_serves_reset(settings, backend, served):
    settings.EMAIL_BACKEND = backend
    assert accounts.password_reset_available() is served


@pytest.mark.parametrize("path", RESET_PAGES)
def test_without_mail_every_reset_page_is_404_and_the_login_page_offers_none(client, pat, path):
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "pat@example.com"}).status_code == 404
    assert not mail.outbox
    login = client.get("/accounts/login/").content.decode()
    assert "password_reset" not in login and "Forgot" not in login


def test_with_mail_the_link_arrives_and_sets_a_new_password(client, pat, mail_delivered):
    assert 'href="/accounts/password_reset/"' in client.get("/accounts/login/").content.decode()
    response = ask(client)
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert "Check your email" in client.get("/accounts/password_reset/done/").content.decode()
    (message,) = mail.outbox
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "fresh-pass-77193", "new_password2": "fresh-pass-77193"}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    pat.refresh_from_db()
    assert pat.check_password("fresh-pass-77193")


def test_an_invalid_link_says_so(client, mail_delivered):
    page = client.get("/accounts/reset/MQ/set-password/")
    assert page.status_code == 200 and "This link does not work" in page.content.decode()


def test_requests_from_one_address_are_throttled(client, pat, mail_delivered, settings, _still_clock):
    settings.PASSWORD_RESET_THROTTLE_RATE = "3/h"
    codes = [ask(client, email=f"someone{n}@example.com").status_code for n in range(3)]
    assert codes == [302, 302, 302]
    throttled = ask(client)
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) == 3599
    assert "Too many reset requests" in throttled.content.decode()
    assert not mail.outbox  # pat's address was never asked for before the throttle
    assert ask(client, remote_addr=OTHER).status_code == 302  # another address still may
    _still_clock.shift(timedelta(hours=1))
    assert ask(client).status_code == 302


def test_requests_for_one_email_are_throttled_from_any_address(client, pat, mail_delivered, settings):
    settings.PASSWORD_RESET_THROTTLE_RATE = "3/h"
    codes = [ask(client, email="Pat@Example.com ", remote_addr=f"192.0.2.{n}").status_code for n in range(4)]
    assert codes == [302, 302, 302, 429]
    assert len(mail.outbox) == 3
    # The table holds a hash of the email address, never the address.
    assert not RateWindow.objects.filter(key__icontains="example").exists()
    assert RateWindow.objects.filter(scope="password_reset_email", key=accounts.email_key("pat@example.com")).exists()


def test_a_spoofed_forwarded_for_does_not_dodge_the_throttle(client, pat, mail_delivered, settings):
    settings.PASSWORD_RESET_THROTTLE_RATE = "2/h"
    codes = [
        client.post(
            "/accounts/password_reset/",
            {"email": f"x{n}@example.com"},
            REMOTE_ADDR=ATTACKER,
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
        ).status_code
        for n in range(3)
    ]
    assert codes == [302, 302, 429]
