"""`manage.py process_deliveries`: stored postbacks applied in batches, a bad one isolated."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from events import lifecycle
from events.models import Action, Delivery
from events.processing import process_next_batch


def process(*args) -> str:
    out = StringIO()
    call_command("process_deliveries", *args, stdout=out)
    return out.getvalue()


def test_once_applies_everything_pending_in_batches_and_exits(store):
    for n in range(5):
        store(action_id=f"A{n}")
    output = process("--once", "--batch", "2")
    assert [line.split(" in ")[0] for line in output.splitlines()[:3]] == [
        "2 deliveries",
        "2 deliveries",
        "1 deliveries",
    ]
    assert output.splitlines()[-1] == "Applied 5 deliveries; 0 still waiting."
    assert set(Delivery.objects.values_list("outcome", "attempts")) == {("applied", 1)}
    assert Action.objects.count() == 5


def test_nothing_pending_is_said_plainly(db):
    assert process("--once") == "Applied 0 deliveries; 0 still waiting.\n"


def test_a_delivery_that_raises_is_failed_with_its_traceback_and_the_rest_of_its_batch_is_applied(store, monkeypatch):
    for action_id in ("A1", "BAD", "A2"):
        store(action_id=action_id)
    real = lifecycle.apply_batch

    def crashing_on_bad(changes):
        if any(change.postback.action_id == "BAD" for change in changes):
            raise RuntimeError("a bug that only BAD triggers")
        return real(changes)

    monkeypatch.setattr(lifecycle, "apply_batch", crashing_on_bad)
    report = process_next_batch(10)
    assert dict(report.outcomes) == {"applied": 2, "failed": 1}
    bad = Delivery.objects.get(action_id="BAD")
    assert (bad.outcome, bad.reason) == ("failed", "RuntimeError: a bug that only BAD triggers")
    assert "crashing_on_bad" in bad.traceback
    assert sorted(Action.objects.values_list("action_id", flat=True)) == ["A1", "A2"]


def test_the_outcome_records_the_action_and_event_of_each_delivery(store):
    first = store(action_id="A1").json()["delivery"]
    retry = store(action_id="A1").json()["delivery"]
    invalid = store(ActionId="").json()["delivery"]
    process_next_batch(10)
    deliveries = Delivery.objects.in_bulk([first, retry, invalid])
    assert (deliveries[first].outcome, deliveries[first].action_id) == ("applied", "A1")
    assert (deliveries[retry].outcome, deliveries[retry].event_id) == ("duplicate", deliveries[first].event_id)
    assert deliveries[first].event.delivery_id == first
    assert (deliveries[invalid].outcome, deliveries[invalid].event_id) == ("invalid", None)
    assert "ActionId is missing" in deliveries[invalid].reason
