"""Faults: what the receiver does when the database, a worker or the watcher fails under load.

Each scenario runs the simulator (impact.com, with its retries) against the real gunicorn on a
throwaway PostgreSQL cluster and ends with the simulator's --verify: lost 0, wrong 0, duplicated 0.
"""

from __future__ import annotations

import os
import signal

import pytest

from .conftest import deliveries, manage, verify_again, verify_line, wait_until

pytestmark = pytest.mark.faults

CLEAN = "lost: 0, wrong: 0, duplicated: 0"


def answered(server, status: int) -> int:
    return server.statuses().get(status, 0)


def test_postgres_restarted_mid_load_answers_503_never_500_and_loses_nothing(cluster, database, gunicorn, simulate):
    server = gunicorn(workers=3)
    run = simulate(server, "--scenario", "chaos", "--actions", "200", "--seed", "21", "--concurrency", "6",
                   "--backoff", "0.2", "--pause", "0")  # fmt: skip
    wait_until(lambda: answered(server, 200) >= 100, 120, "the first 100 postbacks to be answered")

    cluster.stop()
    wait_until(lambda: answered(server, 503), 30, "a 503 while PostgreSQL is down")
    cluster.start()
    output = run.finish()

    statuses = server.statuses()
    assert run.process.returncode == 0, output
    assert verify_line(output) == CLEAN
    assert 500 not in statuses, statuses
    assert statuses[503] >= 1
    # Every 200 stands for a stored delivery (a delivery may also be stored and its answer lost).
    assert sum(deliveries(database).values()) >= statuses[200]
    print(f"\nPostgreSQL restart: answers {statuses}; {verify_line(output)}")


def test_worker_killed_mid_load_the_retries_land_without_loss_or_duplicates(gunicorn, simulate):
    server = gunicorn(workers=3)
    run = simulate(server, "--scenario", "default", "--actions", "200", "--seed", "22", "--concurrency", "6",
                   "--backoff", "0.2")  # fmt: skip
    killed = []
    for answered_before in (100, 250):
        wait_until(lambda n=answered_before: answered(server, 200) >= n, 120, f"{answered_before} answers")
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
