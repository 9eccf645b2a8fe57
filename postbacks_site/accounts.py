"""Logins: the lockout page, the second factor, and password reset only where mail is delivered.

- Wrong passwords are counted by django-axes (settings, "Logins"); `locked_out()` is the page a
  locked-out username+address gets on /accounts/login/ and /admin/login/: 429 with Retry-After.
- A second factor (django-otp TOTP): the login forms ask for a one-time code. Anyone with a
  confirmed device must give a valid one; with STAFF_REQUIRE_OTP, staff without a device cannot log
  in. A missing or wrong code is answered exactly like a wrong password (so the answer does not
  tell that the password was right) and is counted by django-axes like one.
- Password reset sends a link by email. With the console, file, in-memory or dummy backend no email
  leaves the building (the console one would even print a working reset link into the logs), so the
  reset pages answer 404 and the login page does not offer them. Where mail is delivered, reset
  requests are counted per client address and per email address (`RateWindow`, the throttles'
  store) and answer 429 past PASSWORD_RESET_THROTTLE_RATE.
"""

from __future__ import annotations

import hashlib
import math
from functools import wraps

from axes.helpers import get_cool_off
from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django_otp import devices_for_user

from events.common.networks import client_address
from events.models import RateWindow, parse_rate

# Backends that deliver no mail to anyone outside this process or machine.
NOT_DELIVERING = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}
ADDRESS_SCOPE = "password_reset_address"
EMAIL_SCOPE = "password_reset_email"


def password_reset_available() -> bool:
    """True when EMAIL_URL configures a backend that delivers mail (tests may say in-memory does)."""
    if settings.PASSWORD_RESET_ANY_EMAIL_BACKEND:
        return True
    return settings.EMAIL_BACKEND not in NOT_DELIVERING


def too_many(request: HttpRequest, template: str, seconds: float, context: dict) -> HttpResponse:
    """A styled 429 that says how long to wait, with the same figure in Retry-After."""
    minutes = max(1, math.ceil(seconds / 60))
    response = render(request, template, {**context, "wait_minutes": minutes}, status=429)
    response["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE): the page, never the login form again.

    429 rather than axes' older 403: the request is refused for its rate, not for who sends it, and
    the same credentials will work after the cool-off.
    """
    cool_off = get_cool_off(request)
    seconds = cool_off.total_seconds() if cool_off else 60.0
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "admin": request.path.startswith("/admin/")}
    return too_many(request, "registration/locked_out.html", seconds, context)


def code_field() -> forms.CharField:
    return forms.CharField(
        label="One-time code",
        required=False,
        max_length=16,
        strip=True,
        help_text="From your authenticator app; leave empty if your account has none.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def code_matches(device, token: str) -> bool:
    """django-otp's own check, with its throttle of repeated wrong codes per device."""
    allowed, _ = device.verify_is_allowed()
    return allowed and device.verify_token(token)


class SecondFactorMixin:
    """After the password: the one-time code, when the user has a device or must have one."""

    def confirm_second_factor(self) -> None:
        user = self.get_user()
        if user is None:  # a wrong password: refused already, and counted by axes
            return
        devices = list(devices_for_user(user, confirmed=True))
        if not devices and not (settings.STAFF_REQUIRE_OTP and user.is_staff):
            return
        token = self.cleaned_data.get("otp_token") or ""
        # Read by django-otp's user_logged_in handler, which marks the session as verified.
        user.otp_device = next((device for device in devices if code_matches(device, token)), None) if token else None
        if user.otp_device is None:
            user_login_failed.send(
                sender=type(self), credentials={"username": user.get_username()}, request=self.request
            )
            raise self.get_invalid_login_error()

    def clean(self):
        cleaned = super().clean()
        self.confirm_second_factor()
        return cleaned


class LoginForm(SecondFactorMixin, AuthenticationForm):
    otp_token = code_field()


class AdminLoginForm(SecondFactorMixin, AdminAuthenticationForm):
    otp_token = code_field()


class LoginView(auth_views.LoginView):
    """Django's login with the one-time code, offering the password reset link only where the reset
    pages are served."""

    form_class = LoginForm

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "password_reset_available": password_reset_available()}


def needs_mail(view):
    """404 for the reset pages unless mail is delivered (the module docstring says why)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not password_reset_available():
            raise Http404("Password reset needs an email backend that delivers mail.")
        return view(request, *args, **kwargs)

    return wrapper


def email_key(email: str) -> str:
    """The throttle's key for an email address: a hash, so the table holds no address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def reset_throttled(request: HttpRequest) -> float | None:
    """Count one reset request for this client address and the email asked for; the longest wait
    if either is over PASSWORD_RESET_THROTTLE_RATE. The email's count does not depend on whether an
    account has that address, so the answer tells nothing about who has one."""
    rate, now = parse_rate(settings.PASSWORD_RESET_THROTTLE_RATE), timezone.now()
    keys = [(ADDRESS_SCOPE, client_address(request))]
    email = request.POST.get("email", "")
    if email.strip():
        keys.append((EMAIL_SCOPE, email_key(email[:320])))
    waits = []
    for scope, key in keys:
        with transaction.atomic():
            waits.append(RateWindow.objects.hit(scope, key, rate, now))
    return max((wait for wait in waits if wait is not None), default=None)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset request, throttled per client address and per email address."""

    def post(self, request, *args, **kwargs):
        wait = reset_throttled(request)
        if wait is not None:
            return too_many(request, "registration/password_reset_throttled.html", wait, {})
        return super().post(request, *args, **kwargs)
