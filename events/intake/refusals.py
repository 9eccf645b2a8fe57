"""Refused postbacks: counted, throttled per client address, kept (never the secret), capped.

The throttle counts in the database (`RateWindow`), so `migrate` is the only step it needs; if its
store fails anyway, the refusal is answered as if there were no throttle, logged and counted.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from events.common.networks import client_address
from events.impact import escape_nul
from events.models import RateWindow, RefusalCounter, RefusalReason, RefusedAttempt, parse_rate

from .credentials import Refusal
from .limits import content_length

logger = logging.getLogger(__name__)

MAX_INT32 = 2**31 - 1


def record_refusal(request: HttpRequest, refusal: Refusal) -> None:
    """Count the refusal and keep its metadata (never the secret), capped."""
    now = timezone.now()
    with transaction.atomic():
        attempt = RefusedAttempt.objects.create(
            at=now,
            reason=refusal.reason,
            remote_addr=client_address(request),
            method=request.method[:10],
            path=request.path[:300],
            header_names=sorted(escape_nul(name)[:200] for name in request.headers)[:100],
            size=min(content_length(request), MAX_INT32),  # the header is the sender's word
        )
        count_refusal(refusal.reason, now)
    # Keep at most REFUSED_ATTEMPTS_KEEP rows (+ 99): trim in batches, not on every request. The
    # request that created every 100th row trims (looking at the newest row instead missed batches
    # under concurrent refusals).
    keep = settings.REFUSED_ATTEMPTS_KEEP
    if attempt.pk % 100 == 0:
        cutoff = RefusedAttempt.objects.order_by("-id").values_list("id", flat=True)[keep : keep + 1]
        if cutoff:
            RefusedAttempt.objects.filter(id__lte=cutoff[0]).delete()
    logger.warning("postback refused: %s from %s", refusal.reason, client_address(request))


def count_refusal(reason: str, now=None) -> None:
    now = now or timezone.now()
    counter = RefusalCounter.objects.filter(reason=reason)
    if not counter.update(count=F("count") + 1, last_at=now):
        try:
            with transaction.atomic():
                RefusalCounter.objects.create(reason=reason, count=1, last_at=now)
        except IntegrityError:  # a concurrent first refusal created it
            counter.update(count=F("count") + 1, last_at=now)


THROTTLE_SCOPE = "postback_refusals"


def refusal_throttled(request, view=None) -> float | None:
    """Count one refusal from this address; the seconds to wait if it is over
    POSTBACK_REFUSAL_THROTTLE_RATE. Consulted only after a request was refused, so a valid
    credential is never throttled. A failing store never changes the answer: None, logged, counted."""
    rate = settings.POSTBACK_REFUSAL_THROTTLE_RATE
    if not rate:
        return None
    try:
        with transaction.atomic():
            return RateWindow.objects.hit(THROTTLE_SCOPE, client_address(request), parse_rate(rate), timezone.now())
    except DatabaseError as exc:
        logger.error("refusal throttle unavailable, refusing without it: %s", exc, exc_info=exc)
        count_refusal(RefusalReason.THROTTLE_FAILED)
        return None
