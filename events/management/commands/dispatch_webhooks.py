"""`manage.py dispatch_webhooks`: the dispatcher's loop, sending the forwarding outbox's messages."""

import logging

from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone

from events.forwarding import dispatch_all
from events.forwarding.dispatch import due
from events.management.worker import WorkerCommand

logger = logging.getLogger("events.forwarding")

# Idle, a dispatcher looks for due messages this often (an indexed look at the pending ones).
POLL_SECONDS = 0.5


class Command(WorkerCommand):
    logger = logger
    help = (
        "Send the forwarding outbox: signed messages to the publisher's endpoints, in order per action, "
        "retried with backoff. Several dispatchers share the work on PostgreSQL. Loops until SIGTERM/SIGINT; "
        "--once sends everything due now and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Send everything due now (one attempt each), exit.")

    def handle(self, *args, once=False, **options):
        self.listen_for_stop()
        if once:
            self._drain()
            return
        logger.info("dispatcher started: looking for due messages every %s s", POLL_SECONDS)
        self.run_loop(lambda: dispatch_all(stop=self.stop) > 0, POLL_SECONDS)
        logger.info("dispatcher stopped")

    def _drain(self) -> None:
        """Rounds until nothing is due: a message whose predecessor was just acknowledged is due at
        once; one that failed waits for its retry time, so each message gets one attempt here."""
        try:
            total = dispatch_all(timezone.now(), stop=self.stop)
        except DatabaseError as exc:
            raise CommandError(f"database error: {exc}") from exc
        left = due(timezone.now()).count()
        self.stdout.write(f"Sent {total} messages; {left} due still.")
