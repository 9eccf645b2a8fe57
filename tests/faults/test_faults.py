"""Faults: what the receiver does when the database, a worker or the watcher fails under load.

Each scenario runs the simulator (impact.com, with its retries) against the real gunicorn on a
throwaway PostgreSQL cluster and ends with the simulator's --verify: lost 0, wrong 0, duplicated 0.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from events.models import DEFAULT_HEADER

from .conftest import ROOT, deliveries, free_port, manage, stop_process, verify_again, verify_line, wait_until

pytestmark = pytest.mark.faults

CLEAN = "lost: 0, wrong: 0, duplicated: 0"


def answered(server, status: int) -> int:
    return server.statuses().get(status, 0)


def test_postgres_restarted_mid_load_answers_503_never_500_and_loses_nothing(cluster, database, gunicorn, simulate):
    server = gunicorn(workers=3)
    now = "2026-11-28T12:00:00+00:00"
    run = simulate(server, "--scenario", "chaos", "--actions", "200", "--seed", "21", "--now", now,
                   "--concurrency", "6", "--backoff", "0.2", "--pause", "0")  # fmt: skip
    wait_until(
        lambda: answered(server, 200) >= 100,
        120,
        "the first 100 postbacks to be answered",
        evidence=lambda: run.evidence(server),
    )

    cluster.stop()
    wait_until(
        lambda: answered(server, 503), 30, "a 503 while PostgreSQL is down", evidence=lambda: run.evidence(server)
    )
    cluster.start()
    output = run.finish()

    statuses = server.statuses()
    assert run.process.returncode == 0, output
    assert verify_line(output) == CLEAN
    assert 500 not in statuses, statuses
    assert statuses[503] >= 1
    # Every 200 stands for a stored delivery (a delivery may also be stored and its answer lost).
    stored = deliveries(database)
    assert sum(stored.values()) >= statuses[200]
    # A delivery stored just before the database went away, answered 503, stays `received`; its
    # retry was applied as a new delivery. Replaying the leftovers settles them as duplicates.
    replayed = manage("replay_deliveries", "--outcome", "received", env=server.env).stdout.strip().splitlines()[-1]
    assert set(deliveries(database)) <= {"applied", "duplicate", "out_of_order"}, deliveries(database)
    assert verify_again(server.env, scenario="chaos", seed=21, now=now, actions=200) == CLEAN
    print(f"\nPostgreSQL restart: answers {statuses}; deliveries {stored}; {verify_line(output)}; leftovers {replayed}")


def test_worker_killed_mid_load_the_retries_land_without_loss_or_duplicates(gunicorn, simulate):
    server = gunicorn(workers=3)
    run = simulate(server, "--scenario", "default", "--actions", "200", "--seed", "22", "--concurrency", "6",
                   "--backoff", "0.2")  # fmt: skip
    killed = []
    for answered_before in (100, 250):
        wait_until(
            lambda n=answered_before: answered(server, 200) >= n,
            120,
            f"{answered_before} answers",
            evidence=lambda: run.evidence(server),
        )
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        wait_until(
            lambda v=victim: len(server.workers()) == 3 and v not in server.workers(), 30, "gunicorn to replace it"
        )
    output = run.finish()

    statuses = server.statuses()
    assert run.process.returncode == 0, output
    assert verify_line(output) == CLEAN
    assert 500 not in statuses, statuses
    assert server.process.poll() is None
    assert "was sent SIGKILL" in server.error_log.read_text() or "exited" in server.error_log.read_text()
    print(f"\nWorkers {killed} killed: answers {statuses}; {output.split('Sent ')[1].splitlines()[0]}")


def test_events_table_refusing_inserts_leaves_failed_deliveries_that_replay_fixes(
    cluster, database, gunicorn, simulate
):
    cluster.sql(
        database.rsplit("/", 1)[1],
        """
        CREATE FUNCTION faults_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (simulated)'; END $$;
        CREATE TRIGGER faults_refuse BEFORE INSERT ON events_actionevent
            FOR EACH ROW EXECUTE FUNCTION faults_refuse();
        """,
    )
    server = gunicorn(workers=2)
    now = "2026-11-28T12:00:00+00:00"
    world = {"scenario": "default", "seed": 23, "now": now, "actions": 60}
    run = simulate(server, "--scenario", "default", "--actions", "60", "--seed", "23", "--now", now,
                   "--concurrency", "4", "--backoff", "0.2")  # fmt: skip
    output = run.finish()

    statuses = server.statuses()
    stored = deliveries(database)
    assert set(statuses) == {200}, statuses  # answered: the delivery is stored, impact.com need not retry
    assert run.process.returncode == 1, output  # nothing applied: the verification fails
    assert stored.get("failed", 0) >= 60
    assert set(stored) <= {"failed", "duplicate"}, stored
    failed = cluster.sql(database.rsplit("/", 1)[1], "SELECT reason FROM events_delivery WHERE outcome = 'failed'")
    assert all("No space left on device (simulated)" in reason for (reason,) in failed)

    cluster.sql(database.rsplit("/", 1)[1], "DROP TRIGGER faults_refuse ON events_actionevent")
    replayed = manage("replay_deliveries", "--outcome", "failed", env=server.env).stdout

    assert verify_again(server.env, **world) == CLEAN
    assert "failed" not in deliveries(database), deliveries(database)
    print(f"\nEvents table refusing inserts: before replay {stored}; {replayed.strip().splitlines()[-1]}")


class Webhook:
    """A tiny alert webhook on 127.0.0.1 that counts POSTs and can stall the first one (no answer)."""

    def __init__(self, stall_first: bool):
        self.received: list[bytes] = []
        self.acknowledged: list[bytes] = []
        self.stalled = threading.Event()
        self.release = threading.Event()
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.received.append(body)
                if stall_first and len(webhook.received) == 1:
                    webhook.stalled.set()
                    webhook.release.wait(60)  # never answered: the sender dies meanwhile
                    self.close_connection = True
                    return
                self.send_response(200)
                self.end_headers()
                webhook.acknowledged.append(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def send_late_postback(server, hours_late: int = 3) -> None:
    changed = (datetime.now(UTC) - timedelta(hours=hours_late)).isoformat(timespec="seconds")
    params = {
        "ActionId": "FAULTS-LATE-1", "CampaignId": "1001", "CampaignName": "Acme Shoes", "ActionTrackerId": "7",
        "ActionTrackerName": "Online Sale", "Status": "PENDING", "Amount": "100.00", "Payout": "10.00",
        "Currency": "USD", "CreationDate": changed, "EventDate": changed,
    }  # fmt: skip
    request = urllib.request.Request(server.url + "?" + urlencode(params), headers={DEFAULT_HEADER: server.token})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def notification(cluster, database) -> tuple:
    (row,) = cluster.sql(
        database.rsplit("/", 1)[1],
        "SELECT attempts, sent_at IS NOT NULL, next_attempt_at > now() FROM events_notification",
    )
    return row


def test_watcher_killed_mid_notification_sends_it_exactly_once_after_restart(cluster, database, gunicorn, tmp_path):
    webhook = Webhook(stall_first=True)
    try:
        server = gunicorn(workers=1, ALERT_WEBHOOK_URL=webhook.url)
        send_late_postback(server)
        assert notification(cluster, database) == (0, False, False)  # queued by the late postback, due now

        env = {**server.env, "WATCH_INTERVAL_SECONDS": "1"}

        def start_watcher(name):
            log = tmp_path / f"{name}.log"
            process = subprocess.Popen(
                [sys.executable, "manage.py", "watch_delays"],
                cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            return process, log

        first, _ = start_watcher("watcher-1")
        try:
            wait_until(webhook.stalled.is_set, 60, "the watcher to POST the notification")
            first.kill()  # SIGKILL while the webhook has not answered
            first.wait(10)
        finally:
            stop_process(first)
        webhook.release.set()
        # Claimed by the dead watcher: one attempt, not sent, its lease (CLAIM_LEASE, 5 min) not over.
        assert notification(cluster, database) == (1, False, True)
        assert (len(webhook.received), len(webhook.acknowledged)) == (1, 0)

        second, log = start_watcher("watcher-2")
        try:
            passes = lambda: len(re.findall(r"^pass \d+:", log.read_text(), re.M))  # noqa: E731
            wait_until(lambda: passes() >= 3, 60, "three passes of the restarted watcher")
            assert len(webhook.received) == 1  # the claim holds: no second sender while it lasts

            # Five minutes later the crashed claim has expired (moved here instead of waiting).
            cluster.sql(database.rsplit("/", 1)[1], "UPDATE events_notification SET next_attempt_at = now()")
            wait_until(lambda: webhook.acknowledged, 60, "the notification to be sent after the restart")
            seen = passes()
            wait_until(lambda: passes() >= seen + 3, 60, "three more passes")
        finally:
            stop_process(second)

        assert len(webhook.acknowledged) == 1
        assert len(webhook.received) == 2  # the one the first watcher died on, and the one that went out
        assert webhook.acknowledged[0] == webhook.received[0]  # the same message
        assert notification(cluster, database)[:2] == (2, True)
        print(f"\nWatcher killed mid-notification: {len(webhook.received)} POSTs, 1 acknowledged, sent once")
    finally:
        webhook.close()


def peak_kib(pid: int) -> int | None:
    """The process's peak resident set (VmHWM), in KiB; None once it is gone."""
    try:
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else None


def test_backlog_burst_after_a_maintenance_pause_is_stored_and_applied(database, gunicorn, simulate):
    size = int(os.environ.get("FAULTS_BURST_SIZE", "1000"))  # actions; the figure is 100,000 postbacks
    workers = (os.cpu_count() or 1) * 2 + 1  # gunicorn.conf.py's default
    server = gunicorn(workers=workers)
    started = time.monotonic()
    run = simulate(server, "--scenario", "burst", "--actions", size, "--seed", "25", "--concurrency", "8",
                   "--backoff", "0.2", timeout=max(300, size))  # fmt: skip
    peaks: dict[int, int] = {}
    deadline = started + max(300, size)
    while run.process.poll() is None and time.monotonic() < deadline:  # sample workers (they may be replaced)
        for pid in server.workers():
            peaks[pid] = max(peaks.get(pid, 0), peak_kib(pid) or 0)
        time.sleep(0.5)
    output = run.finish()
    elapsed = time.monotonic() - started

    statuses = server.statuses()
    stored = deliveries(database)
    assert run.process.returncode == 0, output
    assert verify_line(output) == CLEAN
    assert set(statuses) == {200}, statuses
    assert set(stored) <= {"applied", "duplicate", "out_of_order"}, stored
    sent = re.search(r"Sent (\d+) postbacks in ([\d.]+) s \((\d+)/s\)", output)
    memory = ", ".join(f"{pid}: {kib / 1024:.0f} MiB" for pid, kib in sorted(peaks.items()))
    print(
        f"\nBurst: {size} actions, {sent.group(1)} postbacks in {sent.group(2)} s ({sent.group(3)}/s, including "
        f"the maintenance pause), {elapsed:.1f} s in all; deliveries {stored}; worker peak RSS (VmHWM) {memory}"
    )
