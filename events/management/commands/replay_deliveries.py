from django.core.management.base import BaseCommand, CommandError

from events.models import Delivery, Outcome
from events.processing import replay


class Command(BaseCommand):
    help = "Process stored deliveries again (after fixing a mapping or a bug). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--outcome",
            default="failed,invalid",
            help="Comma-separated outcomes to replay (default failed,invalid; 'received' for unprocessed).",
        )
        parser.add_argument("--id", type=int, action="append", dest="ids", help="Replay this delivery id (repeatable).")

    def handle(self, *args, outcome, ids, **options):
        outcomes = [o.strip() for o in outcome.split(",") if o.strip()]
        if not outcomes and not ids:
            raise CommandError(f"--outcome names no outcome; choose from {', '.join(Outcome.values)}")
        unknown = set(outcomes) - set(Outcome.values)
        if unknown:
            raise CommandError(
                f"unknown outcome(s): {', '.join(sorted(unknown))}; choose from {', '.join(Outcome.values)}"
            )
        deliveries = Delivery.objects.filter(pk__in=ids) if ids else Delivery.objects.filter(outcome__in=outcomes)
        if ids:
            missing = set(ids) - set(deliveries.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no delivery with id {', '.join(map(str, sorted(missing)))}")
        total = deliveries.count()
        self.stdout.write(f"Replaying {total} deliveries...")
        counts = replay(deliveries, progress=lambda done, total: self.stdout.write(f"  {done}/{total}"))
        summary = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items())) or "nothing to do"
        self.stdout.write(self.style.SUCCESS(f"Done: {summary}"))
