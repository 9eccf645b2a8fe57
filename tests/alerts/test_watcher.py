import io
import os
import signal
import threading

import pytest
import time_machine
from delay_helpers import MIN, T0, send_at
from django.core import mail
from django.core.management import call_command
from django.db import connection
from fake_impact import SID, TOKEN, FakeImpact, action_record

from events.alerts.watcher import LOCK_KEY, Watcher
from events.models import DelayAlert, ImpactAccount, Notification, WatcherHeartbeat, sql
from tests.conftest import processed

T = T0 + 2 * 60 * MIN


def test_once_runs_one_pass_and_records_its_heartbeat(send, settings):
    settings.ALERT_EMAILS = ["ops@example.com"]
    send_at(send, T)
    out = io.StringIO()
    with time_machine.travel(T + MIN, tick=False):
        call_command("watch_delays", "--once", stdout=out)
    assert "pass 1:" in out.getvalue()
    beat = WatcherHeartbeat.objects.get()
    assert beat.last_run_at == T + MIN and beat.pid == os.getpid()
    assert beat.summary["sent"] == 1
    assert len(mail.outbox) == 1


def test_watcher_reconciles_every_reconcile_every_minutes_only(settings, db):
    settings.RECONCILE_EVERY_MINUTES = 15
    with FakeImpact() as fake:
        settings.IMPACT_API_BASE_URL = fake.base_url
        settings.IMPACT_API_ALLOW_HTTP = True
        ImpactAccount.objects.create(account_sid=SID, auth_token=TOKEN)
        fake.actions.append(action_record("A9", T))
        clock = [T + 5 * MIN]
        watcher = Watcher(clock=lambda: clock[0], sleep=pytest.fail)
        for minutes in (5, 6, 14, 20, 21, 75):  # passes at these minutes after T
            clock[0] = T + minutes * MIN
            watcher.run_pass()
        # reconciled at 5, 20 and 75 (two requests each: ActionUpdates and Actions)
        assert len(fake.requests) == 6
    assert DelayAlert.objects.get().kind == "missing"  # A9 had no postback by T + 60 min


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class SignalAfterFirstPass(io.StringIO):
    """Output stream that sends SIGTERM to this process once the first pass is reported."""

    def write(self, text):
        if text.startswith("pass 1:"):
            os.kill(os.getpid(), signal.SIGTERM)
        return super().write(text)


def test_sigterm_stops_the_loop_cleanly_after_the_current_pass(db, settings, restore_signals):
    settings.WATCH_INTERVAL_SECONDS = 3600  # would wait an hour if the signal did not wake it
    out = SignalAfterFirstPass()
    call_command("watch_delays", stdout=out)
    text = out.getvalue()
    assert "pass 1:" in text and "Signal 15" in text and text.rstrip().endswith("Stopped.")
    assert "pass 2:" not in text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_second_watcher_stands_by_while_another_holds_the_lock():
    held, release = threading.Event(), threading.Event()

    def other_host():
        with sql.advisory_lock(LOCK_KEY) as got:
            assert got
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_host)
    thread.start()
    held.wait(10)
    out = io.StringIO()
    call_command("watch_delays", "--once", stdout=out)
    release.set()
    thread.join()
    assert "standing by" in out.getvalue()
    assert not WatcherHeartbeat.objects.exists()
    call_command("watch_delays", "--once", stdout=out)  # the lock is free again
    assert WatcherHeartbeat.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_watchers_started_at_the_same_time_send_nothing_twice(settings, client):
    from events.models import Credential

    settings.ALERT_EMAILS = ["ops@example.com"]
    cred, secret = Credential.create_with_secret(label="t")
    for i in range(30):  # 30 brands, one late alert each, one email each
        with time_machine.travel(T, tick=False):
            response = processed(
                client.get(
                    "/postbacks/impact/",
                    {"ActionId": f"W{i}", "CampaignId": f"C{i}", "CreationDate": T0.isoformat(), "Payout": "1"},
                    headers={cred.header_name: secret},
                )
            )
        assert response.delivery.outcome == "applied"
    assert Notification.objects.count() == 30

    start = threading.Barrier(2)
    results, errors = [], []

    def watcher(use_lock):
        try:
            start.wait(10)
            w = Watcher(clock=lambda: T + MIN)
            if use_lock:
                with sql.advisory_lock(LOCK_KEY) as got:
                    results.append(w.run_pass()["sent"] if got else 0)
            else:  # no lock: only the guarded claims stand between them
                results.append(w.run_pass()["sent"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    for use_lock in (False, True):
        threads = [threading.Thread(target=watcher, args=(use_lock,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert errors == []
    assert sum(results) == 30
    assert len(mail.outbox) == 30
    assert sorted(m.subject for m in mail.outbox) == sorted({m.subject for m in mail.outbox})
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}
    assert not Notification.objects.filter(sent_at=None).exists()
