"""`manage.py create_credential`: a postback credential, its secret printed once."""

from django.core.management.base import BaseCommand, CommandError

from events.intake.credentials import is_header_name
from events.models import DEFAULT_HEADER, Credential, hash_secret


class Command(BaseCommand):
    help = "Create a postback credential. The new secret is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--label", required=True, help="What this credential is for.")
        parser.add_argument("--header", default=DEFAULT_HEADER, help=f"Header name (default {DEFAULT_HEADER}).")
        parser.add_argument("--secret", help="Use this value (agreed with impact.com support) instead of generating.")

    def handle(self, *args, label, header, secret, **options):
        if secret is not None and len(secret) < 16:
            raise CommandError("--secret must be at least 16 characters long")
        if not is_header_name(header.strip()):
            raise CommandError(f"--header {header!r} is not a valid HTTP header name")
        if secret is not None and Credential.objects.filter(secret_hash=hash_secret(secret)).exists():
            raise CommandError("--secret is already used by another credential; use a different one")
        credential, secret = Credential.create_with_secret(label=label, header_name=header.strip(), secret=secret)
        self.stderr.write(
            f"Created credential {credential.pk} ({label}); send it in the {credential.header_name} header "
            "or as the token query parameter. The secret is shown once:"
        )
        self.stdout.write(secret)
