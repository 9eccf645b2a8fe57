"""Faults: what the receiver does when the database, a worker or the watcher fails under load.

Each scenario runs the simulator (impact.com, with its retries) against the real gunicorn on a
throwaway PostgreSQL cluster and ends with the simulator's --verify: lost 0, wrong 0, duplicated 0.
"""

from __future__ import annotations

import pytest

from .conftest import deliveries, verify_line, wait_until

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
