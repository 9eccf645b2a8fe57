"""How often someone was refused: attempts counted per scope and key in fixed windows, the store of
every throttle (refused postbacks per client address, password-reset requests per address and email).

In the database, so `migrate` is all it needs and every worker and host sees the same counts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import F

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"([1-9][0-9]{0,8})/([smhd])\w*")


def parse_rate(rate: str) -> tuple[int, int]:
    """`30/m` -> (30, 60): so many attempts per period (s, m, h or d; `min`, `hour`... read the same)."""
    match = RATE.fullmatch(rate.strip())
    if match is None:
        raise ValueError(f"{rate!r} is not a rate such as 30/m (per s, m, h or d)")
    return int(match.group(1)), PERIODS[match.group(2)]


class RateWindowQuerySet(models.QuerySet):
    def hit(self, scope: str, key: str, rate: tuple[int, int], now: datetime) -> float | None:
        """Count one attempt for (scope, key); the seconds until its window ends when it is over `rate`.

        Windows are fixed and aligned on the epoch (a burst across a boundary may pass twice the
        rate once). Each counter row is created once per window with a guarded insert; the first
        attempt of a window also deletes the windows that have ended.
        """
        limit, seconds = rate
        start = datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)
        end = start + timedelta(seconds=seconds)
        row = self.filter(scope=scope, key=key[:255], window_start=start)
        if not row.update(hits=F("hits") + 1):
            try:
                with transaction.atomic():
                    self.create(scope=scope, key=key[:255], window_start=start, ends_at=end, hits=1)
            except IntegrityError:  # a concurrent first attempt created it
                row.update(hits=F("hits") + 1)
            else:
                self.filter(ends_at__lte=now).delete()
        hits = row.values_list("hits", flat=True).first() or 0
        if hits <= limit:
            return None
        return max(1.0, (end - now).total_seconds())


class RateWindow(models.Model):
    """Attempts of one key (a client address, an email) in one window of one throttle."""

    scope = models.CharField(max_length=40, help_text="Which throttle: postback_refusals, password_reset…")
    key = models.CharField(max_length=255)
    window_start = models.DateTimeField()
    ends_at = models.DateTimeField()
    hits = models.PositiveIntegerField(default=0)

    objects = RateWindowQuerySet.as_manager()

    class Meta:
        constraints = [
            # hit(): the key's counter in the current window, found and created once.
            models.UniqueConstraint(fields=["scope", "key", "window_start"], name="ratewindow_key_window"),
        ]
        indexes = [
            # hit(): windows that have ended, deleted.
            models.Index(fields=["ends_at"], name="ratewindow_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.hits} from {self.window_start:%Y-%m-%d %H:%M:%S}"
