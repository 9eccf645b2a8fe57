"""The watcher: one pass reconciles (when an account is due), checks, notifies and counts the
dashboard's rollups ahead; `manage.py watch_delays` runs passes under an advisory lock."""

from __future__ import annotations

import logging
import os
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from events.impact import api
from events.models import ImpactAccount, WatcherHeartbeat
from events.reporting import reports, rollups

from .late import resolve_quiet_late
from .missing import open_missing
from .notify import queue_reminders, send_due_notifications
from .reconcile import client_for, reconcile, reconcile_due
from .silent import check_silent
from .stalled import check_processing

logger = logging.getLogger(__name__)

LOCK_KEY = zlib.crc32(b"events.watch_delays")


def check(now: datetime | None = None) -> dict[str, int]:
    """One full pass without the API."""
    now = now or timezone.now()
    summary = {"missing": open_missing(now), "late_resolved": resolve_quiet_late(now)}
    summary.update(check_silent(now))
    summary.update(check_processing(now))
    summary["reminders"] = queue_reminders(now)
    return summary


def heartbeat(now: datetime, summary: dict, error: str = "") -> None:
    WatcherHeartbeat.objects.update_or_create(
        name=WatcherHeartbeat.DELAY_WATCHER,
        defaults={
            "last_run_at": now,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "summary": summary,
            "last_error": error,
        },
    )


@dataclass
class Watcher:
    """One pass: reconcile (when an account is configured and it is due), check, notify."""

    clock: Callable[[], datetime] = timezone.now
    sleep: Callable[[float], None] | None = None  # for Retry-After waits in the API client
    client_factory: Callable[..., api.ImpactClient] = client_for
    log: Callable[[str], None] = logger.info
    passes: int = 0
    last_summary: dict = field(default_factory=dict)

    def run_pass(self) -> dict:
        now = self.clock()
        summary: dict = {}
        error = ""
        for account in ImpactAccount.objects.filter(active=True):
            if reconcile_due(account, now):
                kwargs = {"clock": self.clock}
                if self.sleep is not None:
                    kwargs["sleep"] = self.sleep
                try:
                    report = reconcile(account, self.client_factory(account, **kwargs), now)
                except DatabaseError:
                    raise
                except Exception as exc:  # a bug in reconciliation must not stop the checks
                    logger.exception("reconciliation of %s failed", account)
                    error = f"reconcile {account.account_sid}: {type(exc).__name__}: {exc}"
                    summary[f"reconcile {account.account_sid}"] = error
                    continue
                summary[f"reconcile {account.account_sid}"] = str(report)
                error = report.error or error
                self.log(f"reconcile {account}: {report}")
        summary.update(check(now))
        summary.update(send_due_notifications(now))
        summary["rollups counted"] = rollups.warm(now)  # the dashboard's first view of the day stays fast
        reports.ensure_totals(now)  # and the money by status's first view (one query once counted)
        heartbeat(now, summary, error)
        self.passes += 1
        self.last_summary = summary
        return summary
