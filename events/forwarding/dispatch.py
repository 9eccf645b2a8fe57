"""Sending the outbox: claim the messages that are due, send them, record every attempt, retry.

Order: a message is due only when no earlier message of the same action is still pending for its
endpoint, so per (endpoint, action) the next change is sent after the previous one was
acknowledged (2xx) or given up; different actions go in parallel. Claiming takes the due rows with
`select_for_update(skip_locked=True)` and marks them claimed for a lease (long enough for the batch
and the one ahead of it even if every call times out), in a short transaction;
the HTTP calls happen outside it, on a few threads, and the results are written in one more
transaction. Several dispatchers never send the same attempt twice; one that dies mid-send leaves
its claims to expire, and the message is sent again with the same `webhook-id`.

Retries: after a failure the next attempt waits 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h, each
with up to 10 % jitter, as long as the message's first attempt is less than 3 days old; then it is
marked failed and the endpoint's forwarding alert opens. An endpoint that has answered nothing
but failures for 5 days is disabled, with an alert.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from events.alerts.state import active_alert
from events.common.times import format_moment
from events.models import AlertKind, Attempt, DelayAlert, Endpoint, Message, MessageStatus, MessageType

from . import signing, targets
from .outbox import new_msg_id, test_body

logger = logging.getLogger(__name__)

BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
JITTER = 0.10
GIVE_UP_AFTER = timedelta(days=3)
DISABLE_AFTER = timedelta(days=5)
# Messages one dispatcher claims at a time.
CLAIM_SIZE = 200

Sender = Callable[..., targets.Answer]


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1 for the first), jittered."""
    base = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    return base * (1 + (rng or random).uniform(0, JITTER))


def lease(size: int = 1) -> timedelta:
    """How long a claim of `size` messages holds: long enough for them and the batch ahead of them
    on the sending threads even if every call waits its full timeout, so that no other dispatcher
    takes over a message still queued or on the wire here."""
    rounds = math.ceil(2 * size / settings.FORWARD_CONCURRENCY)
    return timedelta(seconds=settings.FORWARD_TIMEOUT_SECONDS * rounds + 30)


def due(now: datetime):
    """Pending messages whose time has come, of active endpoints, not claimed, first of their action."""
    earlier = Message.objects.filter(
        endpoint=OuterRef("endpoint"), action=OuterRef("action"), status=MessageStatus.PENDING, seq__lt=OuterRef("seq")
    )
    return (
        Message.objects.pending()
        .filter(next_attempt_at__lte=now, endpoint__active=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .exclude(Exists(earlier))
        .order_by("next_attempt_at", "id")
    )


def claim(now: datetime, size: int = CLAIM_SIZE) -> list[Message]:
    with transaction.atomic():
        rows = due(now)
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        messages = list(rows.select_related("endpoint")[:size])
        if messages:
            Message.objects.filter(pk__in=[m.pk for m in messages]).update(claimed_until=now + lease(len(messages)))
    return messages


def dispatch_due(
    now: datetime | None = None,
    *,
    send: Sender = targets.post,
    rng: random.Random | None = None,
    size: int = CLAIM_SIZE,
) -> int:
    """One round: claim what is due, send it, record it. The number of attempts made."""
    now = now or timezone.now()
    messages = claim(now, size)
    if messages:
        deliver(messages, now, send=send, rng=rng)
    return len(messages)


def dispatch_all(
    now: datetime | None = None,
    *,
    send: Sender = targets.post,
    rng: random.Random | None = None,
    size: int = CLAIM_SIZE,
    stop: threading.Event | None = None,
) -> int:
    """Rounds until nothing is due (or `stop` is set); the number of attempts made.

    Two batches overlap: while one is on the wire, the previous one is recorded and the next one
    claimed, so the database work and the HTTP calls run side by side. Order holds as in single
    rounds: a batch on the wire is still pending, so no later change of its actions is due yet.
    `now` fixed: a message that fails waits for its retry time, so each gets one attempt here."""
    flying: deque[tuple[list[Message], datetime, list[Future]]] = deque()
    total = 0
    while True:
        moment = now or timezone.now()
        messages = [] if stop is not None and stop.is_set() else claim(moment, size)
        if messages:
            flying.append((messages, moment, start_sending(messages, send)))
            total += len(messages)
        if not flying:
            return total
        if len(flying) > 1 or not messages:
            done, at, futures = flying.popleft()
            record(done, [f.result() for f in futures], at, rng=rng)


_senders: dict[int, ThreadPoolExecutor] = {}
_senders_lock = threading.Lock()


def senders(workers: int) -> ThreadPoolExecutor:
    """The sending threads, kept between rounds (with them, their kept-alive connections stay useful)."""
    with _senders_lock:
        if workers not in _senders:
            _senders[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forward")
        return _senders[workers]


def start_sending(messages: list[Message], send: Sender = targets.post) -> list[Future]:
    """Each message's HTTP call, on the sending threads; their answers as futures, in order."""
    timeout, allow_private = settings.FORWARD_TIMEOUT_SECONDS, settings.FORWARD_ALLOW_PRIVATE_TARGETS

    def one(message: Message) -> targets.Answer:
        headers = signing.headers(message.endpoint.secrets, message.msg_id, timezone.now(), message.body)
        return send(message.endpoint.url, message.body.encode(), headers, timeout=timeout, allow_private=allow_private)

    pool = senders(settings.FORWARD_CONCURRENCY)
    return [pool.submit(one, message) for message in messages]


def deliver(messages: list[Message], now: datetime, *, send: Sender = targets.post, rng=None) -> list[Attempt]:
    """Send claimed messages (on FORWARD_CONCURRENCY threads) and record the attempts."""
    answers = [future.result() for future in start_sending(messages, send)]
    return record(messages, answers, now, rng=rng)


def record(messages: list[Message], answers: list[targets.Answer], now: datetime, rng=None) -> list[Attempt]:
    attempts, delivered, retried, given_up = [], [], [], []
    for message, answer in zip(messages, answers, strict=True):
        attempts.append(
            Attempt(
                message=message,
                endpoint_id=message.endpoint_id,
                at=now,
                status_code=answer.status_code,
                latency_ms=answer.latency_ms,
                response=answer.excerpt[: targets.RESPONSE_EXCERPT_BYTES],
                error=answer.error[:500],
                success=answer.success,
            )
        )
        message.attempts += 1
        message.claimed_until = None
        message.first_attempt_at = message.first_attempt_at or now
        if answer.success:
            message.status, message.finished_at = MessageStatus.DELIVERED, now
            delivered.append(message)
            continue
        retry_at = now + backoff(message.attempts, rng)
        if retry_at - message.first_attempt_at > GIVE_UP_AFTER:
            message.status, message.finished_at = MessageStatus.FAILED, now
            given_up.append(message)
        else:
            message.next_attempt_at = retry_at
            retried.append(message)
    with transaction.atomic():
        Attempt.objects.bulk_create(attempts)
        save_outcomes(delivered, retried + given_up, now)
        endpoints_after(delivered, retried + given_up, given_up, now)
    return attempts


def save_outcomes(delivered: list[Message], failed: list[Message], now: datetime) -> None:
    """The messages' new state: the delivered ones (usually nearly all) in one UPDATE, as every value
    is the same for them; the others, each with its own retry time, row by row in bulk."""
    if delivered:
        Message.objects.filter(pk__in=[m.pk for m in delivered]).update(
            status=MessageStatus.DELIVERED,
            finished_at=now,
            attempts=F("attempts") + 1,
            claimed_until=None,
            first_attempt_at=Coalesce("first_attempt_at", Value(now)),
        )
    if failed:
        Message.objects.bulk_update(
            failed, ["attempts", "claimed_until", "first_attempt_at", "status", "finished_at", "next_attempt_at"]
        )


def endpoints_after(delivered: list[Message], failed: list[Message], given_up: list[Message], now: datetime) -> None:
    """A success ends an endpoint's failing spell; failures only start one, alert, and may disable it."""
    succeeded = {m.endpoint_id for m in delivered}
    if succeeded:
        Endpoint.objects.filter(pk__in=succeeded).exclude(failing_since=None).update(failing_since=None)
    for endpoint_id in {m.endpoint_id for m in given_up}:
        gave_up(endpoint_id, [m for m in given_up if m.endpoint_id == endpoint_id], now)
    only_failing = {m.endpoint_id for m in failed} - succeeded
    if only_failing:
        Endpoint.objects.filter(pk__in=only_failing, failing_since=None).update(failing_since=now)
        for endpoint in Endpoint.objects.filter(pk__in=only_failing, failing_since__lte=now - DISABLE_AFTER):
            disable(endpoint, now)


def _alert(endpoint: Endpoint, summary: str, now: datetime) -> DelayAlert:
    alert = active_alert(None, AlertKind.FORWARDING, False, summary, now, endpoint=endpoint)
    DelayAlert.objects.filter(pk=alert.pk).update(summary=summary[:500], last_item_at=now)
    return alert


def gave_up(endpoint_id: int, messages: list[Message], now: datetime) -> None:
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint_id)
    failed = endpoint.messages.filter(status=MessageStatus.FAILED).count()
    logger.warning("endpoint %s: %s messages given up after %s", endpoint.pk, len(messages), GIVE_UP_AFTER)
    _alert(
        endpoint,
        f"{endpoint.url}: {failed} messages failed after {GIVE_UP_AFTER.days} days of retries "
        f"(last {format_moment(now)}); replay them from the endpoint's page",
        now,
    )


def disable(endpoint: Endpoint, now: datetime) -> None:
    reason = f"failing since {format_moment(endpoint.failing_since)}"
    Endpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_at=now, disabled_reason=reason)
    logger.warning("endpoint %s disabled: %s", endpoint.pk, reason)
    _alert(endpoint, f"{endpoint.url} disabled: every attempt {reason}; fix it and switch it back on", now)


def replay_message(message: Message, now: datetime | None = None) -> None:
    """Send a message again (same webhook-id), with a fresh 3 days of retries."""
    now = now or timezone.now()
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.PENDING, next_attempt_at=now, first_attempt_at=None, finished_at=None, claimed_until=None
    )


def replay_failed(endpoint: Endpoint, since: datetime, now: datetime | None = None) -> int:
    """Every failed message of the endpoint created since `since`, pending again; their number."""
    now = now or timezone.now()
    return endpoint.messages.filter(status=MessageStatus.FAILED, created_at__gte=since).update(
        status=MessageStatus.PENDING,
        next_attempt_at=now,
        first_attempt_at=None,
        finished_at=None,
        claimed_until=None,
    )


def send_test(endpoint: Endpoint, now: datetime | None = None, *, send: Sender = targets.post) -> Attempt:
    """A test message, sent now (and retried like any other if it fails); its first attempt."""
    now = now or timezone.now()
    message = Message.objects.create(
        endpoint=endpoint,
        msg_id=new_msg_id(),
        type=MessageType.TEST,
        body=test_body(endpoint, now),
        created_at=now,
        next_attempt_at=now,
        claimed_until=now + lease(),
    )
    return deliver([message], now, send=send)[0]
