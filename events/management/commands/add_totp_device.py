"""`manage.py add_totp_device USERNAME`: a TOTP device (django-otp) for a login, its secret printed once.

Admin lists and deletes devices but never shows a secret again (OTP_ADMIN_HIDE_SENSITIVE_DATA), and
with STAFF_REQUIRE_OTP the first staff account cannot reach admin before it has a device: this
command is the way in.
"""

from base64 import b32encode

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Give a user a TOTP device for the one-time code at login. The otpauth:// URL (for an "
        "authenticator app, or a QR code made from it) is printed alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="The device's name in admin.")
        parser.add_argument("--replace", action="store_true", help="Delete the user's other TOTP devices.")

    def handle(self, *args, username, name, replace, **options):
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user {username!r}")
        if replace:
            TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name=name[:64], confirmed=True)
        self.stderr.write(
            f"TOTP device {device.pk} ({device.name}) added for {username}. From now on its one-time code "
            f"is asked for at login. Secret for manual entry: {b32encode(device.bin_key).decode()}. "
            "Shown once; the otpauth:// URL follows:"
        )
        self.stdout.write(device.config_url)
