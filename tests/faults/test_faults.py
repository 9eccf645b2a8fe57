"""Faults: what the receiver does when the database, gunicorn, the processor or the watcher fails under load.

The request path only stores a delivery and answers 200; the processor (`manage.py process_deliveries`)
applies what is stored, a batch per transaction. Each scenario runs the simulator (impact.com, with its
retries) against the real gunicorn on a throwaway PostgreSQL cluster, with a processor wherever the
deliveries must end applied, and ends with the simulator's comparison: lost 0, wrong 0, duplicated 0.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from events.models import DEFAULT_HEADER

from .conftest import (
    ENDPOINT,
    ROOT,
    attempts,
    batch_in_flight,
    deliveries,
    free_port,
    manage,
    processor_connections,
    stop_process,
    verify_again,
    verify_line,
    wait_until,
    waiting,
)

pytestmark = pytest.mark.faults

CLEAN = "lost: 0, wrong: 0, duplicated: 0"
# What a processed delivery can say; `received` is waiting for a processor, `failed` raised.
SETTLED = {"applied", "duplicate", "out_of_order"}
# The processor scenarios: a backlog (some 1,500 deliveries), taken this many at a time.
BACKLOG_ACTIONS = 1000
BATCH = 300


def present() -> str:
    """A --now for the simulator that verify_again can pass again to draw the same world. From the
    clock: with a fixed one, the suite changes by the day (a week later every postback is days late,
    and each batch slower for the late-alert work)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def answered(*servers, status: int = 200) -> int:
    return sum(server.statuses().get(status, 0) for server in servers)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_postgres_restarted_mid_load_answers_503_never_500_and_the_processor_applies_everything(
    cluster, database, gunicorn, processor, simulate
):
    """The database goes away while postbacks arrive and a processor runs: the request path answers
    503 (impact.com retries), never 500; the processor logs the error, keeps running and applies
    everything once the database is back, including deliveries stored before the outage and left
    `received` by it (no replay_deliveries)."""
    server = gunicorn(workers=3)
    worker = processor()
    now = present()
    run = simulate(server, "--scenario", "chaos", "--actions", "200", "--seed", "21", "--now", now,
                   "--concurrency", "6", "--backoff", "0.2", "--pause", "0")  # fmt: skip
    evidence = lambda: run.evidence(server, worker)  # noqa: E731
    wait_until(lambda: answered(server) >= 100, 120, "the first 100 postbacks to be answered", evidence=evidence)

    cluster.stop()
    wait_until(lambda: answered(server, status=503), 30, "a 503 while PostgreSQL is down", evidence=evidence)
    wait_until(worker.errors, 30, "the processor to log the lost database", evidence=evidence)
    cluster.start()
    output = run.finish()  # its --verify reads once the processor has applied everything (DrainedGate)

    statuses = server.statuses()
    assert run.process.returncode == 0, evidence()
    assert verify_line(output) == CLEAN
    assert 500 not in statuses, statuses
    assert statuses[503] >= 1
    # Every 200 stands for a stored delivery (a delivery may also be stored and its answer lost).
    stored = deliveries(database)
    assert sum(stored.values()) >= statuses[200]
    assert set(stored) <= SETTLED, stored  # nothing left `received` or `failed`, nobody replayed
    assert worker.running(), evidence()  # the outage did not stop it
    assert verify_again(server.env, scenario="chaos", seed=21, now=now, actions=200) == CLEAN
    assert worker.stop() == 0, worker.output
    print(
        f"\nPostgreSQL restart: answers {statuses}; deliveries {stored}; {verify_line(output)}; "
        f"processor: {len(worker.errors())} database errors logged, {len(worker.batches())} batches"
    )


def test_worker_killed_mid_load_the_retries_land_without_loss_or_duplicates(database, gunicorn, processor, simulate):
    """Two gunicorn workers are SIGKILLed mid-request: gunicorn replaces them, the simulator's retries
    land, and the processor (untouched) applies every delivery once."""
    server = gunicorn(workers=3)
    worker = processor()
    run = simulate(server, "--scenario", "default", "--actions", "200", "--seed", "22", "--concurrency", "6",
                   "--backoff", "0.2")  # fmt: skip
    killed = []
    for answered_before in (100, 250):
        wait_until(
            lambda n=answered_before: answered(server) >= n,
            120,
            f"{answered_before} answers",
            evidence=lambda: run.evidence(server, worker),
        )
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        wait_until(
            lambda v=victim: len(server.workers()) == 3 and v not in server.workers(), 30, "gunicorn to replace it"
        )
    output = run.finish()

    statuses = server.statuses()
    assert run.process.returncode == 0, run.evidence(server, worker)
    assert verify_line(output) == CLEAN
    assert 500 not in statuses, statuses
    assert server.process.poll() is None
    assert "was sent SIGKILL" in server.error_log.read_text() or "exited" in server.error_log.read_text()
    assert set(deliveries(database)) <= SETTLED
    assert worker.running() and not worker.errors(), worker.output
    print(f"\nWorkers {killed} killed: answers {statuses}; {output.split('Sent ')[1].splitlines()[0]}")


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115
    except OSError:
        return True
    return bool(re.search(r"^State:\s+Z", status, re.M))


def test_gunicorn_killed_with_its_workers_mid_load_what_was_acknowledged_is_applied(
    cluster, database, gunicorn, processor, simulate
):
    """The gunicorn master is SIGKILLed mid-load, then what is left of it (systemd's KillMode=mixed),
    and gunicorn is started again on the same port (Restart=always). Every delivery stored before
    the kill, so every postback acknowledged, is applied by the processor, which never noticed;
    the simulator's retries (connection refused meanwhile) land; nothing is lost or doubled."""
    server = gunicorn(workers=3)
    worker = processor()
    run = simulate(server, "--scenario", "default", "--actions", "300", "--seed", "26", "--concurrency", "6",
                   "--backoff", "0.2")  # fmt: skip
    wait_until(lambda: answered(server) >= 150, 120, "150 answers", evidence=lambda: run.evidence(server, worker))

    workers = server.workers()
    server.process.kill()
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    wait_until(lambda: all(map(gone, workers)), 30, f"the workers {workers} to be gone")
    acknowledged = answered(server)
    (last_stored,) = cluster.sql(database_name(database), "SELECT coalesce(max(id), 0) FROM events_delivery")[0]

    restarted = gunicorn(workers=3, port=server.port)
    output = run.finish()

    assert run.process.returncode == 0, run.evidence(restarted, worker)
    assert verify_line(output) == CLEAN
    statuses = Counter(server.statuses()) + Counter(restarted.statuses())
    assert 500 not in statuses, statuses
    before = dict(
        cluster.sql(
            database_name(database),
            "SELECT outcome, count(*) FROM events_delivery WHERE id <= %s GROUP BY outcome",
            (last_stored,),
        )
    )
    assert sum(before.values()) >= acknowledged  # each 200 is a stored delivery (some answers were lost)
    assert set(before) <= SETTLED, before  # and each of those was applied (or recognised as a retry)
    assert set(deliveries(database)) <= SETTLED, deliveries(database)
    assert worker.running() and not worker.errors(), worker.output
    print(
        f"\ngunicorn killed after {acknowledged} answers ({last_stored} deliveries stored): answers {dict(statuses)}; "
        f"stored before the kill {before}; {output.split('Sent ')[1].splitlines()[0]}"
    )


def backlog(server, simulate, seed: int):
    """The default scenario sent while no processor runs; returns once every postback is acknowledged
    (all of them waiting). The simulator then waits for a processor to apply them, and compares."""
    run = simulate(server, "--scenario", "default", "--actions", BACKLOG_ACTIONS, "--seed", seed,
                   "--concurrency", "6", "--backoff", "0.2")  # fmt: skip
    wait_until(run.acknowledged, 240, "every postback to be acknowledged", evidence=lambda: run.evidence(server))
    return run


def test_processor_killed_mid_batch_the_batch_rolls_back_and_is_taken_again(
    cluster, database, gunicorn, processor, simulate
):
    """A processor is SIGKILLed while a batch is written and not committed: the batch rolls back
    whole (what was committed is whole batches; the rest is still `received`, never counted), a
    restarted processor takes it again, and every delivery is processed exactly once (attempts 1)."""
    server = gunicorn(workers=3)
    run = backlog(server, simulate, 27)
    stored = waiting(database)
    assert stored > 3 * BATCH, deliveries(database)

    first = processor("--batch", BATCH)
    evidence = lambda: run.evidence(server, first)  # noqa: E731
    wait_until(
        lambda: first.batches() and batch_in_flight(cluster, database),
        60,
        "a batch in flight after a first one committed",
        interval=0.01,
        evidence=evidence,
    )
    first.kill()
    wait_until(lambda: processor_connections(cluster, database) == 0, 30, "its connection to end (rolled back)")
    committed = stored - waiting(database)
    logged = len(first.batches())
    assert committed % BATCH == 0 and 0 < committed < stored, (committed, first.output)
    assert committed in (logged * BATCH, (logged + 1) * BATCH)  # +1: killed between COMMIT and its log line
    assert attempts(database) == {1: committed, 0: stored - committed}

    second = processor("--batch", BATCH)
    output = run.finish()

    assert run.process.returncode == 0, run.evidence(server, first, second)
    assert verify_line(output) == CLEAN
    assert set(deliveries(database)) <= SETTLED, deliveries(database)
    assert attempts(database) == {1: stored}  # none applied twice, none skipped
    assert not second.errors(), second.output
    print(
        f"\nProcessor killed mid-batch: {stored} deliveries waiting, {committed} committed in {logged} logged "
        f"batches of {BATCH} before the kill; the restarted one applied {sum(n for n, _ in second.batches())} "
        f"in {len(second.batches())} batches; deliveries {deliveries(database)}; {verify_line(output)}"
    )


def test_postgres_restarted_during_a_batch_the_processor_carries_on_and_applies_everything(
    cluster, database, gunicorn, processor, simulate
):
    """PostgreSQL restarts while a processor's batch is written and not committed: the processor
    logs the error, keeps running (retrying every 2 s while the database is down) and, once it is
    back, applies everything, the interrupted batch included, once (attempts 1), without anyone
    running replay_deliveries."""
    server = gunicorn(workers=3)
    run = backlog(server, simulate, 28)
    stored = waiting(database)
    assert stored > 3 * BATCH, deliveries(database)

    worker = processor("--batch", BATCH)
    evidence = lambda: run.evidence(server, worker)  # noqa: E731
    wait_until(lambda: batch_in_flight(cluster, database), 60, "a batch in flight", interval=0.01, evidence=evidence)
    cluster.stop()
    wait_until(worker.errors, 30, "the processor to log the lost database", evidence=evidence)
    before = sum(n for n, _ in worker.batches())  # committed before the outage
    cluster.start()
    output = run.finish()  # it reads once the processor has applied the backlog

    assert run.process.returncode == 0, evidence()
    assert verify_line(output) == CLEAN
    assert worker.running(), worker.output
    assert set(deliveries(database)) <= SETTLED, deliveries(database)
    assert attempts(database) == {1: stored}
    errors = len(worker.errors())
    assert worker.stop() == 0, worker.output
    print(
        f"\nPostgreSQL restarted during a batch: {stored} deliveries waiting, {before} committed before "
        f"the outage; the processor logged {errors} database errors and applied the rest in "
        f"{len(worker.batches())} batches in all; deliveries {deliveries(database)}"
    )


def test_events_table_refusing_inserts_leaves_failed_deliveries_that_replay_fixes(
    cluster, database, gunicorn, processor, simulate
):
    """The events table refuses every insert (a full disk, simulated by a trigger): postbacks are
    still stored and answered 200; the processor marks each delivery `failed` with the reason
    (nothing applied, so the simulator's comparison fails); once the table accepts inserts again,
    replay_deliveries --outcome failed applies them all."""
    cluster.sql(
        database_name(database),
        """
        CREATE FUNCTION faults_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (simulated)'; END $$;
        CREATE TRIGGER faults_refuse BEFORE INSERT ON events_actionevent
            FOR EACH ROW EXECUTE FUNCTION faults_refuse();
        """,
    )
    server = gunicorn(workers=2)
    worker = processor()
    now = present()
    world = {"scenario": "default", "seed": 23, "now": now, "actions": 60}
    run = simulate(server, "--scenario", "default", "--actions", "60", "--seed", "23", "--now", now,
                   "--concurrency", "4", "--backoff", "0.2")  # fmt: skip
    output = run.finish()

    statuses = server.statuses()
    stored = deliveries(database)
    assert set(statuses) == {200}, statuses  # answered: the delivery is stored, impact.com need not retry
    assert run.process.returncode == 1, output  # nothing applied: the verification fails
    assert "received" not in stored, stored  # the processor went through every one
    assert stored.get("failed", 0) >= 60
    assert set(stored) <= {"failed", "duplicate"}, stored
    failed = cluster.sql(database_name(database), "SELECT reason FROM events_delivery WHERE outcome = 'failed'")
    assert all("No space left on device (simulated)" in reason for (reason,) in failed)

    cluster.sql(database_name(database), "DROP TRIGGER faults_refuse ON events_actionevent")
    replayed = manage("replay_deliveries", "--outcome", "failed", env=server.env).stdout

    assert verify_again(server.env, **world) == CLEAN
    assert set(deliveries(database)) <= SETTLED, deliveries(database)
    assert worker.running(), worker.output
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
        database_name(database),
        "SELECT attempts, sent_at IS NOT NULL, next_attempt_at > now() FROM events_notification",
    )
    return row


def notifications(cluster, database) -> int:
    return cluster.sql(database_name(database), "SELECT count(*) FROM events_notification")[0][0]


def test_watcher_killed_mid_notification_sends_it_exactly_once_after_restart(
    cluster, database, gunicorn, processor, tmp_path
):
    """A late postback queues a webhook notification (the processor, which applies it, queues it);
    the watcher is SIGKILLed while the webhook has not answered: its claim holds while it lasts, and
    after it the restarted watcher sends the same notification, once."""
    webhook = Webhook(stall_first=True)
    try:
        server = gunicorn(workers=1, ALERT_WEBHOOK_URL=webhook.url)
        worker = processor(ALERT_WEBHOOK_URL=webhook.url)  # the processor queues notifications: same settings
        send_late_postback(server)
        wait_until(lambda: notifications(cluster, database), 30, "the processor to queue the notification")
        assert notification(cluster, database) == (0, False, False)  # queued by the late postback, due now
        assert not worker.errors(), worker.output

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
            cluster.sql(database_name(database), "UPDATE events_notification SET next_attempt_at = now()")
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


def request_milliseconds(server) -> list[int]:
    """How long each answer to the endpoint took inside gunicorn (the access log's %(M)s)."""
    pattern = re.compile(r'"\w+ ' + re.escape(ENDPOINT) + r' [^"]*" \d{3} .* (\d+)ms$')
    return [int(m.group(1)) for line in server.access_log.read_text().splitlines() if (m := pattern.search(line))]


def test_backlog_burst_after_a_maintenance_pause_is_stored_and_applied(database, gunicorn, processor, simulate):
    """A maintenance pause, then its held postbacks in a burst on top of the live ones: every one
    answered 200 and, by the processor running beside gunicorn, applied; nothing lost or doubled.
    Prints where the wall time goes: the simulator sending (the pause included) until the last
    acknowledgement, the request path (time inside gunicorn per answer), and the processor
    draining (its backlog when the last postback was acknowledged, how long it took after that)."""
    size = int(os.environ.get("FAULTS_BURST_SIZE", "1000"))  # actions; the figure is 100,000 postbacks
    workers = (os.cpu_count() or 1) * 2 + 1  # gunicorn.conf.py's default
    server = gunicorn(workers=workers)
    worker = processor()
    budget = max(300, size)  # seconds, for the whole run
    started = time.monotonic()
    run = simulate(server, "--scenario", "burst", "--actions", size, "--seed", "25", "--concurrency", "8",
                   "--backoff", "0.2", timeout=budget, drain=budget)  # fmt: skip
    peaks: dict[int, int] = {}
    acknowledged_at = drained_at = None
    backlog_at_acknowledgement = most_waiting = 0
    deadline = started + budget
    while run.process.poll() is None and time.monotonic() < deadline:  # sample (workers may be replaced)
        for pid in [*server.workers(), worker.process.pid]:
            peaks[pid] = max(peaks.get(pid, 0), peak_kib(pid) or 0)
        now, left = time.monotonic(), waiting(database)
        most_waiting = max(most_waiting, left)
        if acknowledged_at is None and run.acknowledged():
            acknowledged_at, backlog_at_acknowledgement = now, left
        if acknowledged_at is not None and drained_at is None and left == 0:
            drained_at = now
        time.sleep(0.5)
    output = run.finish()
    finished = time.monotonic()
    drained_at = drained_at or finished  # drained between two samples, as the simulator ended

    statuses = server.statuses()
    stored = deliveries(database)
    assert run.process.returncode == 0, run.evidence(server, worker)
    assert verify_line(output) == CLEAN
    assert set(statuses) == {200}, statuses
    assert set(stored) <= SETTLED, stored
    assert not worker.errors(), worker.output
    assert acknowledged_at is not None, output
    sent = re.search(r"Sent (\d+) postbacks in ([\d.]+) s \((\d+)/s\)", output)
    requests = request_milliseconds(server)
    batches = worker.batches()
    applied = sum(n for n, _ in batches)
    in_batches = sum(ms for _, ms in batches) / 1000
    times = [ms / 1000 for _, ms in batches]
    sending = acknowledged_at - started
    during = int(sent.group(1)) - backlog_at_acknowledgement
    draining = max(0.0, drained_at - acknowledged_at)
    memory = ", ".join(
        f"{'processor ' if pid == worker.process.pid else ''}{pid}: {kib / 1024:.0f} MiB"
        for pid, kib in sorted(peaks.items())
    )
    print(
        f"\nBurst: {size} actions, {sent.group(1)} postbacks, {finished - started:.1f} s in all; deliveries {stored}; "
        f"load average {os.getloadavg()[1]:.1f} on {os.cpu_count()} CPUs (5 min, as it ends)"
        f"\n  sending: every postback acknowledged after {acknowledged_at - started:.1f} s (the simulator: "
        f"{sent.group(2)} s, {sent.group(3)}/s, the maintenance pause included)"
        f"\n  request path: {len(requests)} answers, {statistics.mean(requests):.1f} ms mean, "
        f"{statistics.quantiles(requests, n=100)[98]:.0f} ms p99, {sum(requests) / 1000:.1f} s of worker time "
        f"in all ({workers} workers)"
        f"\n  processor: {applied} deliveries in {len(batches)} batches, {in_batches:.1f} s inside batches "
        f"({applied / max(in_batches, 1e-3):.0f}/s; a batch {min(times):.1f} s to {max(times):.1f} s, median "
        f"{statistics.median(times):.1f} s); while postbacks arrived {during} applied ({during / sending:.0f}/s), "
        f"{backlog_at_acknowledgement} waiting at the last acknowledgement (at most {most_waiting}), drained "
        f"{draining:.1f} s after it ({backlog_at_acknowledgement / max(draining, 1e-3):.0f}/s)"
        f"\n  verification: {finished - drained_at:.1f} s after the drain"
        f"\n  peak RSS (VmHWM): {memory}"
    )
