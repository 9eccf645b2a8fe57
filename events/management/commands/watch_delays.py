"""`manage.py watch_delays`: the delay watcher's loop, one host at a time (advisory lock)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

from events.alerts.watcher import LOCK_KEY, Watcher
from events.models import sql


class Command(BaseCommand):
    help = (
        "Watch for delay alerts: every WATCH_INTERVAL_SECONDS reconcile with impact.com's API (when an account "
        "is configured and RECONCILE_EVERY_MINUTES has passed), check, and notify. One host works at a time "
        "(PostgreSQL advisory lock). Stops cleanly on SIGTERM/SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit (for cron).")

    def handle(self, *args, once=False, **options):
        self.stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._stop)
        # Retry-After waits end early on SIGTERM too.
        watcher = Watcher(log=self.stdout.write, sleep=self.stop.wait)
        interval = settings.WATCH_INTERVAL_SECONDS
        while not self.stop.is_set():
            try:
                with sql.advisory_lock(LOCK_KEY) as got:
                    if not got:
                        self.stdout.write("Another watcher holds the lock; standing by.")
                    while got and not self.stop.is_set():
                        summary = watcher.run_pass()
                        self.stdout.write(f"pass {watcher.passes}: {summary}")
                        if once:
                            return
                        # The lock lives on this connection: keep it open while working.
                        self.stop.wait(interval)
            except DatabaseError as exc:
                self.stderr.write(f"database error, retrying in {interval} s: {exc}")
                close_old_connections()
            if once:
                return
            self.stop.wait(interval)
        self.stdout.write("Stopped.")

    def _stop(self, signum, frame):
        self.stdout.write(f"Signal {signum}: stopping after the current pass.")
        self.stop.set()
