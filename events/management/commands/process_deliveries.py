"""`manage.py process_deliveries`: the processor's loop, applying stored postbacks in batches."""

import logging

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError

from events.common import collector
from events.management.arguments import positive_int
from events.management.worker import WorkerCommand
from events.processing import pending, process_next_batch

logger = logging.getLogger("events.processing")

# Idle, a processor looks for new deliveries this often (an indexed look at the pending ones).
POLL_SECONDS = 0.2


class Command(WorkerCommand):
    logger = logger
    help = (
        "Apply stored postbacks: claim received deliveries in id order, a batch at a time, and apply each "
        "batch in one transaction. Several processors (on several hosts) share the work on PostgreSQL. "
        "Loops until SIGTERM/SIGINT; --once applies everything pending and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Apply everything pending, then exit 0.")
        parser.add_argument(
            "--batch",
            type=positive_int,
            default=settings.PROCESSING_BATCH_SIZE,
            help=f"Deliveries per batch (default PROCESSING_BATCH_SIZE, {settings.PROCESSING_BATCH_SIZE}).",
        )

    def handle(self, *args, once=False, batch=None, **options):
        self.listen_for_stop()
        with collector.settled():
            if once:
                self._drain(batch)
                return
            logger.info("processor started: batches of %s, looking for new deliveries every %s s", batch, POLL_SECONDS)
            self.run_loop(lambda: process_next_batch(batch) is not None, POLL_SECONDS)
            logger.info("processor stopped")

    def _drain(self, batch: int) -> None:
        total = 0
        while not self.stop.is_set():
            try:
                report = process_next_batch(batch)
            except DatabaseError as exc:
                raise CommandError(f"database error: {exc}") from exc
            if report is None:
                break
            total += report.count
            self.stdout.write(report.line())
        left = pending().count()
        self.stdout.write(f"Applied {total} deliveries; {left} still waiting.")
