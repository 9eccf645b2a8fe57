"""The ingest benchmark's backlog, small: what it plans is what the processor makes of it.

The benchmark only runs by hand; this keeps its planning and its verdict honest in the suite.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bench import ingest
from events.models import Delivery
from events.processing import process_pending


def test_the_benchmark_backlog_drains_to_what_it_expects(credential):
    backlog = ingest.plan_backlog(400, datetime.now(UTC))
    first, last = ingest.load_backlog(backlog, credential)
    assert last - first + 1 == len(backlog.rows) == 400

    process_pending()

    assert not Delivery.objects.filter(outcome="received").exists()
    assert ingest.check_backlog(backlog, first, last) == []


def test_the_verdict_sees_a_delivery_gone_wrong(credential):
    backlog = ingest.plan_backlog(200, datetime.now(UTC))
    first, last = ingest.load_backlog(backlog, credential)
    process_pending()
    Delivery.objects.filter(pk=last).update(outcome="failed")

    assert ingest.check_backlog(backlog, first, last)
