"""`manage.py reconcile_impact`: read impact.com's API now, check, and optionally backfill."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from events.alerts import missing, notify, watcher
from events.alerts.reconcile import client_for, reconcile
from events.common.times import format_moment
from events.models import ImpactAccount


class Command(BaseCommand):
    help = (
        "Read ActionUpdates and Actions from impact.com's API for the configured account(s), compare them "
        "with the postbacks received, and open missing-postback alerts. --backfill applies the changes that "
        "never got a postback as events whose source is `api`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--backfill", action="store_true", help="Apply missing changes as events (source api).")
        parser.add_argument("--no-fetch", action="store_true", help="Do not call the API; only check/backfill.")

    def handle(self, *args, backfill=False, no_fetch=False, **options):
        accounts = list(ImpactAccount.objects.filter(active=True))
        if not accounts and not no_fetch:
            raise CommandError(
                "No impact.com API account is configured: add one in Django admin (Events > Impact accounts)."
            )
        failed = False
        if not no_fetch:
            now = timezone.now()
            for account in accounts:
                if account.paused_until and account.paused_until > now:
                    self.stdout.write(
                        f"{account}: impact.com asked to wait until {format_moment(account.paused_until)}."
                    )
                    failed = True
                    continue
                report = reconcile(account, client_for(account))
                self.stdout.write(f"{account}: {report}")
                failed = failed or bool(report.error)
        summary = watcher.check()
        self.stdout.write(f"Check: {summary['missing']} change(s) without a postback past the deadline.")
        if backfill:
            count = missing.backfill()
            self.stdout.write(f"Backfilled {count} change(s) as events with source `api`.")
        sent = notify.send_due_notifications()
        self.stdout.write(f"Notifications: {sent['sent']} sent, {sent['failed']} failed.")
        if failed:
            raise CommandError("reconciliation stopped early (see above); it continues from the same point next run")
