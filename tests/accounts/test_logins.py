"""Wrong passwords on both login pages: django-axes locks one username from one client address out
after LOGIN_FAILURE_LIMIT failures for LOGIN_COOLOFF_MINUTES, behind trusted proxies only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone

PASSWORD = "right-password-4821"
ATTACKER = "203.0.113.9"
OTHER = "198.51.100.7"
PROXY = "10.0.0.2"
LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


@pytest.fixture(autouse=True)
def _still_clock(db, settings):
    settings.TRUSTED_PROXIES = []
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as traveller:
        yield traveller


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("pat", password=PASSWORD, is_staff=True)


def log_in(client, password, remote_addr=ATTACKER, url="/accounts/login/", username="pat", **headers):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=remote_addr, headers=headers)


def fail(client, times, **kwargs):
    return [log_in(client, "wrong-guess", **kwargs).status_code for _ in range(times)]


def test_the_limit_of_wrong_passwords_locks_that_user_out_from_that_address(client, staff):
    assert fail(client, LIMIT - 1) == [200] * (LIMIT - 1)  # the form again, with its error
    locked = log_in(client, "wrong-guess")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    page = locked.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page and 'class="card narrow"' in page
    # Even the right password is refused now, and no session is opened.
    right = log_in(client, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_another_address_or_another_user_is_not_locked(client, staff, django_user_model):
    django_user_model.objects.create_user("sam", password=PASSWORD)
    fail(client, LIMIT)
    assert log_in(client, "wrong-guess").status_code == 429
    assert log_in(client, PASSWORD, username="sam").status_code == 302
    client.logout()
    assert log_in(client, PASSWORD, remote_addr=OTHER).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, staff, _still_clock):
    fail(client, LIMIT)
    _still_clock.shift(timedelta(minutes=14, seconds=59))
    assert log_in(client, PASSWORD).status_code == 429
    # That try while locked started the wait again.
    _still_clock.shift(timedelta(minutes=14, seconds=59))
    assert log_in(client, PASSWORD).status_code == 429
    _still_clock.shift(timedelta(minutes=15, seconds=1))
    assert log_in(client, PASSWORD).status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(client, staff):
    fail(client, LIMIT - 1)
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()
    assert fail(client, LIMIT - 1) == [200] * (LIMIT - 1)


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_lockout(client, staff):
    codes = [log_in(client, "wrong-guess", **{"X-Forwarded-For": f"192.0.2.{n}"}).status_code for n in range(LIMIT)]
    assert codes[-1] == 429
    assert log_in(client, PASSWORD, **{"X-Forwarded-For": "192.0.2.200"}).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_a_trusted_proxy_forwarded_address_is_the_one_locked(client, staff, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    fail(client, LIMIT, remote_addr=PROXY, **{"X-Forwarded-For": ATTACKER})
    assert log_in(client, PASSWORD, remote_addr=PROXY, **{"X-Forwarded-For": ATTACKER}).status_code == 429
    # Everyone else behind the same proxy still logs in.
    assert log_in(client, PASSWORD, remote_addr=PROXY, **{"X-Forwarded-For": OTHER}).status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_the_admin_login_is_locked_too_and_shares_the_count(client, staff):
    fail(client, LIMIT - 1, url="/admin/login/")
    locked = log_in(client, "wrong-guess", url="/admin/login/")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert 'href="/admin/login/"' in locked.content.decode()
    assert log_in(client, PASSWORD).status_code == 429  # and the dashboard's login page


def test_the_reset_commands_unlock(client, staff):
    fail(client, LIMIT)
    call_command("axes_reset_username", "pat")
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()
    fail(client, LIMIT)
    call_command("axes_reset_ip", ATTACKER)
    assert log_in(client, PASSWORD).status_code == 302


def test_admins_see_and_delete_lockouts_in_admin(client, staff, admin_client):
    fail(client, LIMIT)
    attempt = AccessAttempt.objects.get()
    listing = admin_client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and ATTACKER in listing.content.decode()
    admin_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert not AccessAttempt.objects.exists()
    assert log_in(client, PASSWORD).status_code == 302
