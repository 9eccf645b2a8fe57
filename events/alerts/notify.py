"""Sending notifications: email and a Slack-compatible webhook, each outbox row claimed with a
guarded update so several watchers never send one twice; reminders for alerts still open."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from events.common.times import format_duration, format_moment
from events.models import AlertItem, AlertStatus, DelayAlert, Notification, NotificationChannel, NotificationReason

from .state import queue_notifications

logger = logging.getLogger(__name__)

# A claim lasts this long (a crashed sender's claim expires); retries back off.
CLAIM_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8


def message(alert: DelayAlert, reason: str, items: list[AlertItem] | None = None) -> tuple[str, str]:
    """Subject and body of a notification: what support and the team need to act."""
    verb = {"opened": "OPEN", "resolved": "RESOLVED", "reminder": "STILL OPEN"}[reason]
    # One line: a brand name or an ActionId is whatever impact.com sent, and a line break in a mail
    # subject raises (BadHeaderError) on every try until the email is given up.
    subject = " ".join(f"[{verb}] {alert.title}".split())[:200]
    url = f"{settings.PUBLIC_URL}/alerts/{alert.pk}/"
    lines = [subject, "", f"Opened {format_moment(alert.opened_at)}; {alert.item_count} change(s)."]
    if alert.max_delay_seconds is not None:
        lines.append(f"Longest delay: {format_duration(alert.max_delay_seconds)}.")
    if alert.resolved_at:
        lines.append(f"Resolved {format_moment(alert.resolved_at)}.")
    for item in items if items is not None else alert.items.all()[:10]:
        received = format_moment(item.received_at) if item.received_at else "no postback"
        lines.append(f"- action {item.action_id} {item.change} at {format_moment(item.changed_at)}: {received}")
    lines += ["", f"Evidence and CSV: {url}"]
    return subject, "\n".join(lines)


def _send_email(alert: DelayAlert, reason: str, items: list[AlertItem] | None = None) -> None:
    subject, body = message(alert, reason, items)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, settings.ALERT_EMAILS, fail_silently=False)


def slack_escape(text: str) -> str:
    """Slack reads `<...>` as links and mentions (`<!channel>` pings everyone) and `&` as an entity:
    outside text is escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _send_webhook(alert: DelayAlert, reason: str, items: list[AlertItem] | None = None) -> None:
    _subject, body = message(alert, reason, items)
    # Redirects are not followed: a 3xx is a failure to deliver, like any non-2xx.
    response = httpx.post(settings.ALERT_WEBHOOK_URL, json={"text": slack_escape(body)}, timeout=10)
    if not response.is_success:
        raise OSError(f"webhook answered {response.status_code}")


SENDERS: dict[str, Callable[..., None]] = {
    NotificationChannel.EMAIL: _send_email,
    NotificationChannel.WEBHOOK: _send_webhook,
}


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(2 ** (attempts - 1), 60))


def send_due_notifications(now: datetime | None = None, limit: int = 100) -> dict[str, int]:
    """Send what is due; each row is claimed with a guarded update first, so it goes out once."""
    now = now or timezone.now()
    sent: list[int] = []
    failed = 0
    due = list(
        Notification.objects.filter(sent_at=None, gave_up=False, next_attempt_at__lte=now)
        .select_related("alert__brand")
        .order_by("next_attempt_at")[:limit]
    )
    # The first items of every alert concerned, in one query.
    first_items: dict[int, list[AlertItem]] = {}
    rank = Window(RowNumber(), partition_by=F("alert_id"), order_by=[F("changed_at").asc(), F("id").asc()])
    ranked = AlertItem.objects.filter(alert_id__in={n.alert_id for n in due}).annotate(rank=rank)
    for item in ranked.filter(rank__lte=10).order_by("alert_id", "rank"):
        first_items.setdefault(item.alert_id, []).append(item)
    for notification in due:
        claimed = Notification.objects.filter(
            id=notification.id, sent_at=None, next_attempt_at=notification.next_attempt_at
        ).update(next_attempt_at=now + CLAIM_LEASE, attempts=F("attempts") + 1)
        if not claimed:
            continue  # another watcher has it
        attempts = notification.attempts + 1
        alert = notification.alert
        try:
            SENDERS[notification.channel](alert, notification.reason, first_items.get(alert.pk, []))
        except (OSError, httpx.HTTPError, ValueError) as exc:
            failed += 1
            error = f"attempt {attempts} at {format_moment(now)}: {type(exc).__name__}: {exc}"[:2000]
            logger.warning("notification %s failed: %s", notification.pk, error)
            Notification.objects.filter(pk=notification.pk).update(
                last_error=error, next_attempt_at=now + backoff(attempts), gave_up=attempts >= MAX_ATTEMPTS
            )
            continue
        sent.append(notification.pk)
    Notification.objects.filter(pk__in=sent).update(sent_at=now, last_error="")
    return {"sent": len(sent), "failed": failed}


def queue_reminders(now: datetime) -> int:
    """Alerts still open after ALERT_REPEAT_EVERY: remind (claimed by moving remind_at, guarded)."""
    if not settings.ALERT_REPEAT_EVERY_MINUTES:
        return 0
    every = timedelta(minutes=settings.ALERT_REPEAT_EVERY_MINUTES)
    count = 0
    due = DelayAlert.objects.filter(status=AlertStatus.OPEN, expected=False, remind_at__lte=now)
    for alert in due:
        with transaction.atomic():
            if DelayAlert.objects.filter(pk=alert.pk, remind_at=alert.remind_at).update(remind_at=now + every):
                count += queue_notifications(alert, NotificationReason.REMINDER, now) > 0
    return count
