"""How an endpoint is doing, for its pages: pending and failed messages, and the share of attempts
answered 2xx over the last day. Each figure is one grouped query over an index of its own, for
every endpoint at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q

from events.models import Attempt, Message, MessageStatus

# The attempts the success rate is computed over.
RATE_WINDOW = timedelta(hours=24)


@dataclass
class Health:
    pending: int = 0
    failed: int = 0
    attempts: int = 0  # in the window
    successes: int = 0  # in the window

    @property
    def success_rate(self) -> float | None:
        """Successful attempts over all attempts in the window, or None without any attempt."""
        return self.successes / self.attempts if self.attempts else None


def health(endpoint_ids: list[int], now: datetime) -> dict[int, Health]:
    """Each endpoint's Health (every id given gets one)."""
    found = {pk: Health() for pk in endpoint_ids}
    for status, field in ((MessageStatus.PENDING, "pending"), (MessageStatus.FAILED, "failed")):
        rows = Message.objects.filter(endpoint_id__in=endpoint_ids, status=status)
        for endpoint_id, n in rows.values_list("endpoint_id").annotate(n=Count("id")).order_by():
            setattr(found[endpoint_id], field, n)
    recent = Attempt.objects.filter(endpoint_id__in=endpoint_ids, at__gt=now - RATE_WINDOW, at__lte=now)
    counts = recent.values_list("endpoint_id").annotate(n=Count("id"), ok=Count("id", filter=Q(success=True)))
    for endpoint_id, n, ok in counts.order_by():
        found[endpoint_id].attempts, found[endpoint_id].successes = n, ok
    return found
