"""A replay writing into a day while an overview counts that day: the rollup never misses it.

Two real connections on PostgreSQL (threads), stepped with events, never timed sleeps.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction

from events.reporting import rollups
from tests.reporting.test_rollups import NOW, add_events, event, tracked

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PERIOD = (NOW - timedelta(days=7), NOW, "day", ZoneInfo("UTC"))
REPLAYED = NOW - timedelta(days=3)


class Step(threading.Thread):
    """Runs `work(step)` on its own connection; `step.reached(name)` / `step.go(name)` pace it."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.error, self.result = work, None, None
        self.signals: dict[str, threading.Event] = {}

    def event(self, name: str) -> threading.Event:
        return self.signals.setdefault(name, threading.Event())

    def pause(self, name: str) -> None:
        self.event(f"{name}:reached").set()
        assert self.event(f"{name}:go").wait(30), f"never released from {name}"

    def reached(self, name: str) -> None:
        assert self.event(f"{name}:reached").wait(30), f"never reached {name}"

    def go(self, name: str) -> None:
        self.event(f"{name}:go").set()

    def run(self):
        try:
            self.result = self.work(self)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            connection.close()

    def finish(self):
        self.join(30)
        assert not self.is_alive(), "a connection never finished (deadlock?)"
        if self.error:
            raise self.error
        return self.result


def waiting_for_the_rollup_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


def test_an_overview_counting_while_a_replay_holds_the_lock_waits_and_sees_it():
    def replay(step):
        with transaction.atomic():
            add_events([event(REPLAYED)])
            rollups.changed(REPLAYED, now=NOW)  # takes the lock until commit
            step.pause("before commit")

    def overview(step):
        return tracked(rollups.figures(*PERIOD, now=NOW))

    writer = Step(replay)
    writer.start()
    writer.reached("before commit")
    reader = Step(overview)
    reader.start()
    while not waiting_for_the_rollup_lock():  # the reader is blocked: the writer has not committed
        assert reader.is_alive()
    writer.go("before commit")
    writer.finish()
    assert reader.finish() == 1
    assert tracked(rollups.figures(*PERIOD, now=NOW)) == 1  # the stored rollup has it


def test_a_replay_committing_after_the_count_drops_the_rollup_it_missed():
    def replay(step):
        with transaction.atomic():
            add_events([event(REPLAYED)])
            step.pause("inserted")  # not visible to others yet
            rollups.changed(REPLAYED, now=NOW)

    writer = Step(replay)
    writer.start()
    writer.reached("inserted")
    assert tracked(rollups.figures(*PERIOD, now=NOW)) == 0  # counted without the uncommitted event
    writer.go("inserted")
    writer.finish()
    assert tracked(rollups.figures(*PERIOD, now=NOW)) == 1


def test_a_write_that_says_so_after_committing_drops_a_rollup_counted_before():
    def overview(step):
        with transaction.atomic():
            figures = rollups.figures(*PERIOD, now=NOW)  # counts and stores, holding the lock
            step.pause("counted")
        return tracked(figures)

    def replay(step):
        step.pause("start")
        add_events([event(REPLAYED)])  # autocommit: committed before it says so
        rollups.changed(REPLAYED, now=NOW)

    reader, writer = Step(overview), Step(replay)
    reader.start()
    writer.start()
    reader.reached("counted")
    writer.go("start")
    while not waiting_for_the_rollup_lock():  # changed() waits for the reader's commit
        assert writer.is_alive()
    reader.go("counted")
    assert reader.finish() == 0  # counted before the write
    writer.finish()
    assert tracked(rollups.figures(*PERIOD, now=NOW)) == 1  # and its rollup is gone
