"""`manage.py bootstrap`: the first run's admin user and postback credential, printed once."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.urls import reverse

from events import impact
from events.models import Credential


class Command(BaseCommand):
    help = "First run: create an admin user and a postback credential, and print them once. Idempotent."

    def handle(self, *args, **options):
        User = get_user_model()
        endpoint = settings.PUBLIC_URL + reverse("impact-postback")
        lines = []
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            username = "admin"
            if User.objects.filter(username=username).exists():  # an ordinary user took the name
                username = f"admin-{secrets.token_hex(2)}"
            User.objects.create_superuser(username, "", password)
            lines += [f"Admin user:     {username} / {password}   (log in at {settings.PUBLIC_URL}/admin/)"]
        if not Credential.objects.exists():
            credential, secret = Credential.create_with_secret(label="impact.com (created on first run)")
            lines += [
                f"Credential:     {secret}",
                f"  send it in the {credential.header_name} header (ask impact.com support to add it),",
                "  or append &token=<credential> to the URL below until they do.",
            ]
        if not lines:
            self.stdout.write(f"Already set up. Postback endpoint: {endpoint}")
            return
        bar = "=" * 78
        self.stdout.write(bar)
        self.stdout.write("First run: shown once, keep them somewhere safe.")
        for line in lines:
            self.stdout.write(line)
        self.stdout.write("")
        self.stdout.write("Paste this URL into impact.com (Settings > Technical > Event Notifications >")
        self.stdout.write("Action Life Cycle Events, method GET):")
        self.stdout.write(impact.url_template(endpoint))
        self.stdout.write(bar)
