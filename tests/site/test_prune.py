"""Retention: `manage.py prune --deliveries-older-than 90d` empties old payloads in batches and keeps
the history; `--delete-rows` removes the rows; `--dry-run` changes nothing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from events.models import Action, ActionEvent, Delivery, RefusedAttempt


@pytest.fixture
def history(send, client):
    """Five postbacks 100 days ago, two today, and one refusal 100 days ago."""
    old = timezone.now() - timedelta(days=100)
    with time_machine.travel(old, tick=False):
        for n in range(5):
            send(action_id=f"OLD{n}")
        client.get("/postbacks/impact/?ActionId=X")
    for n in range(2):
        send(action_id=f"NEW{n}")
    return old


def prune(*args):
    out = StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue()


def test_prune_empties_old_payloads_and_keeps_everything_else(history):
    before = {d.pk: (d.outcome, d.action_id, d.event_id, d.remote_addr) for d in Delivery.objects.all()}
    output = prune("--deliveries-older-than", "90d", "--batch-size", "2")

    assert "2 deliveries pruned" in output and "4 deliveries pruned" in output and "5 deliveries pruned" in output
    assert "Done: 5 deliveries payloads emptied" in output
    old = Delivery.objects.filter(received_at__lt=timezone.now() - timedelta(days=90))
    assert old.count() == 5
    for delivery in old:
        assert (bytes(delivery.body), delivery.query_string, delivery.headers) == (b"", "", {})
        assert delivery.pruned_at is not None
    for delivery in Delivery.objects.filter(received_at__gte=timezone.now() - timedelta(days=1)):
        assert delivery.query_string and delivery.headers and delivery.pruned_at is None
    after = {d.pk: (d.outcome, d.action_id, d.event_id, d.remote_addr) for d in Delivery.objects.all()}
    assert after == before
    assert Action.objects.count() == ActionEvent.objects.count() == 7
    assert RefusedAttempt.objects.count() == 1


def test_pruned_deliveries_are_not_replayable(history):
    prune("--deliveries-older-than", "90d")
    Delivery.objects.update(outcome="invalid")
    assert set(Delivery.objects.replayable().values_list("action_id", flat=True)) == {"NEW0", "NEW1"}


def test_prune_twice_does_nothing_the_second_time(history):
    prune("--deliveries-older-than", "90d")
    assert "Done: 0 deliveries" in prune("--deliveries-older-than", "90d")


def test_dry_run_counts_and_changes_nothing(history):
    output = prune("--deliveries-older-than", "2160h", "--dry-run")
    assert "would empty the payload of 5 deliveries" in output
    assert not Delivery.objects.exclude(pruned_at=None).exists()


def test_delete_rows_removes_old_deliveries_but_keeps_events(history):
    output = prune("--deliveries-older-than", "90d", "--delete-rows")
    assert "Done: 5 deliveries deleted" in output
    assert Delivery.objects.count() == 2
    assert ActionEvent.objects.count() == 7
    assert ActionEvent.objects.filter(delivery=None).count() == 5


@pytest.mark.parametrize("value", ["90", "0d", "3y", "d", "", "1.5d"])
def test_bad_durations_are_refused(db, value):
    with pytest.raises(CommandError, match="not a duration"):
        prune(f"--deliveries-older-than={value}")


def test_replaying_a_pruned_delivery_from_admin_keeps_its_outcome(history, admin_client):
    prune("--deliveries-older-than", "90d")
    pruned = Delivery.objects.exclude(pruned_at=None)
    ids = [str(pk) for pk in pruned.values_list("pk", flat=True)]
    response = admin_client.post(
        "/admin/events/delivery/", {"action": "replay_deliveries", "_selected_action": ids}, follow=True
    )
    assert response.status_code == 200
    assert set(pruned.values_list("outcome", flat=True)) == {"applied"}
    assert set(pruned.values_list("attempts", flat=True)) == {1}
