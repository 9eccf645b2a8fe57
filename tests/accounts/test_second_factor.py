"""The optional second factor (django-otp TOTP): a code at login for anyone with a device, required
for staff with STAFF_REQUIRE_OTP; a missing or wrong code looks and counts like a wrong password."""

from __future__ import annotations

import re
from base64 import b32decode
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

PASSWORD = "right-password-4821"
ADDRESS = "203.0.113.9"
WRONG_PASSWORD_ERROR = "Your username, password or one-time code didn't match."


@pytest.fixture(autouse=True)
def _still_clock(db, settings):
    """Mid-way through a 30-second TOTP step, so a code made here is the one the server expects."""
    settings.TRUSTED_PROXIES = []
    now = timezone.now().replace(microsecond=0)
    with time_machine.travel(now.replace(second=now.second // 30 * 30 + 10), tick=False) as traveller:
        yield traveller


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("pat", password=PASSWORD, is_staff=True)


def code(key: bytes) -> str:
    return f"{totp(key):06d}"


def log_in(client, password=PASSWORD, otp_token="", url="/accounts/login/", username="pat"):
    data = {"username": username, "password": password, "otp_token": otp_token}
    return client.post(url, data, REMOTE_ADDR=ADDRESS)


def test_without_a_device_and_without_the_setting_the_password_is_enough(client, staff):
    assert log_in(client).status_code == 302


def test_with_a_device_the_code_is_needed_and_marks_the_session_verified(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone")
    refused = log_in(client)
    assert refused.status_code == 200 and WRONG_PASSWORD_ERROR in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert log_in(client, otp_token=code(device.bin_key)).status_code == 302
    assert client.session["otp_device_id"] == device.persistent_id


def test_a_wrong_code_reads_like_a_wrong_password_and_counts_towards_the_lockout(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone")
    wrong_password = log_in(client, password="wrong-guess").content.decode()
    wrong_code = log_in(client, otp_token="000000" if code(device.bin_key) != "000000" else "111111")
    assert (
        re.search(r'<p class="error".*?</p>', wrong_password).group()
        == re.search(r'<p class="error".*?</p>', wrong_code.content.decode()).group()
    )
    assert AccessAttempt.objects.get().failures_since_start == 2
    for _ in range(2):
        log_in(client, otp_token="123")
    locked = log_in(client)  # the fifth failure
    assert locked.status_code == 429
    assert log_in(client, otp_token=code(device.bin_key)).status_code == 429


def test_the_admin_login_asks_for_the_code_too(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone")
    page = client.get("/admin/login/").content.decode()
    assert 'name="otp_token"' in page
    refused = log_in(client, url="/admin/login/")
    assert refused.status_code == 200 and "Please enter the correct username and password" in refused.content.decode()
    assert log_in(client, url="/admin/login/", otp_token=code(device.bin_key)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_staff_must_have_a_device_when_the_setting_says_so(client, staff, django_user_model, settings):
    settings.STAFF_REQUIRE_OTP = True
    django_user_model.objects.create_user("viewer", password=PASSWORD)
    assert log_in(client).status_code == 200
    assert "_auth_user_id" not in client.session
    assert log_in(client, username="viewer").status_code == 302  # not staff: the password is enough
    client.logout()
    device = TOTPDevice.objects.create(user=staff, name="phone")
    assert log_in(client, otp_token=code(device.bin_key)).status_code == 302
    assert client.get("/").status_code == 200


def test_a_staff_session_without_a_code_ends_once_the_setting_is_on(client, staff, settings):
    client.force_login(staff)
    assert client.get("/").status_code == 200
    settings.STAFF_REQUIRE_OTP = True
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_the_command_adds_a_device_whose_code_logs_in(client, staff, _still_clock):
    out = StringIO()
    call_command("add_totp_device", "pat", stdout=out, stderr=StringIO())
    url = out.getvalue().strip().splitlines()[-1]
    assert url.startswith("otpauth://totp/impact.com%20postbacks%3Apat?")
    assert parse_qs(urlsplit(url).query)["issuer"] == ["impact.com postbacks"]
    secret = parse_qs(urlsplit(url).query)["secret"][0]
    key = b32decode(secret + "=" * (-len(secret) % 8))
    assert log_in(client, otp_token=code(key)).status_code == 302


def test_admin_never_shows_a_device_secret(admin_client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone")
    page = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert page.status_code == 200 and device.key not in page.content.decode()
    assert admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/").status_code == 403
    assert admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/").status_code == 403
