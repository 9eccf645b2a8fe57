"""Retention: remove the raw payloads of old deliveries, in short batches.

    manage.py prune --deliveries-older-than 90d [--delete-rows] [--batch-size 5000] [--dry-run]

By default the body, query string and headers of deliveries received before the cutoff are
emptied and `pruned_at` is set; the delivery row (time, method, address, outcome, reason, action,
event) stays, and so do the actions, their events and every audit row. `--delete-rows` deletes
the old delivery rows instead (events keep their history; their link to the delivery becomes
empty). Each batch is its own short transaction on at most --batch-size ids, so the table is
never locked for long; SIGTERM/Ctrl-C stops cleanly after the current batch.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from events.models import Delivery
from events.reporting import rollups

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `2w`, `45s`."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90d, 12h, 30m or 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Remove raw payloads (or whole rows) of deliveries older than a duration, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--deliveries-older-than", required=True, metavar="DURATION", help="e.g. 90d, 12h, 2w")
        parser.add_argument(
            "--delete-rows", action="store_true", help="delete the delivery rows instead of emptying their payload"
        )
        parser.add_argument("--batch-size", type=int, default=5000, help="ids per transaction (default 5000)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be pruned; change nothing")

    def handle(self, *args, **options):
        try:
            age = parse_duration(options["deliveries_older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        batch_size = options["batch_size"]
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be between 1 and 100000")
        cutoff = timezone.now() - age
        delete = options["delete_rows"]
        candidates = Delivery.objects.filter(received_at__lt=cutoff)
        if not delete:
            candidates = candidates.filter(pruned_at__isnull=True)
        verb = "delete" if delete else "empty the payload of"

        if options["dry_run"]:
            self.stdout.write(
                f"Dry run: would {verb} {candidates.count()} deliveries received before {cutoff:%Y-%m-%d %H:%M:%S %Z}."
            )
            return

        self.stopping = False
        previous = signal.signal(signal.SIGTERM, self._stop)
        done, last_id, started = 0, 0, time.monotonic()
        try:
            while not self.stopping:
                ids = list(candidates.filter(id__gt=last_id).order_by("id").values_list("id", flat=True)[:batch_size])
                if not ids:
                    break
                last_id = ids[-1]
                with transaction.atomic():
                    batch = Delivery.objects.filter(id__in=ids)
                    if delete:
                        batch.delete()
                        rollups.forget(end=cutoff)  # the overview counted them in their days
                    else:
                        batch.update(body=b"", query_string="", headers={}, pruned_at=timezone.now())
                done += len(ids)
                self.stdout.write(
                    f"  {done} deliveries pruned (up to id {last_id}, {time.monotonic() - started:.1f} s)"
                )
        except KeyboardInterrupt:
            self.stopping = True
        finally:
            signal.signal(signal.SIGTERM, previous)
        state = "Stopped early" if self.stopping else "Done"
        action = "deleted" if delete else "payloads emptied"
        self.stdout.write(
            self.style.SUCCESS(f"{state}: {done} deliveries {action} (received before {cutoff:%Y-%m-%d %H:%M:%S %Z}).")
        )

    def _stop(self, signum, frame):
        self.stopping = True
