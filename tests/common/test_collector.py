"""The garbage collector of long-running processes: start-up frozen, young objects collected less often."""

from __future__ import annotations

import gc
import runpy
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from events.common import collector

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_settled_freezes_and_raises_the_thresholds_for_the_block_only():
    before = gc.get_threshold()
    with collector.settled():
        assert gc.get_threshold() == collector.THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_processor_applies_its_batches_with_the_collector_settled(store):
    store(action_id="A1")
    seen = set()

    def observe(execute, sql, params, many, context):
        seen.add((gc.get_threshold(), gc.get_freeze_count() > 0))
        return execute(sql, params, many, context)

    before = gc.get_threshold()
    with connection.execute_wrapper(observe):
        call_command("process_deliveries", "--once", stdout=StringIO())
    assert seen == {(collector.THRESHOLDS, True)}
    assert gc.get_threshold() == before


def test_each_gunicorn_worker_settles_once_the_application_is_loaded(collector_restored):
    config = runpy.run_path(str(ROOT / "postbacks_site" / "gunicorn.conf.py"))
    config["post_worker_init"](None)
    assert gc.get_threshold() == collector.THRESHOLDS
    assert gc.get_freeze_count() > 0
