"""The demo's history, moved back in time: a month of postbacks all go out now, and are then given
the receive times impact.com would have sent them at. Their lateness is judged after that, never
on arrival (they go out with a credential marked `simulated_history`): sent now, the whole month
would look a month late."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from events.alerts.late import judge_backdated
from events.models import Action, ActionEvent, Delivery
from events.reporting import reports, rollups

from .world import Plan


def backdate(world, plan: Plan) -> tuple[int, int]:
    """Move receive times of the world's events (and deliveries) back to their planned sending time,
    then judge their delays. Returns (events moved, postbacks that joined a delay alert).

    The postbacks of a month of history all go out now; for the demo dashboard they are
    moved back to when impact.com would have sent each one, delays recomputed. Only
    receive times change: states, money and histories are as the receiver made them.
    """
    planned: dict[tuple[str, datetime], list[datetime]] = {}
    for send in plan.sends:
        planned.setdefault((send.change.action_id, send.change.at), []).append(send.send_at)
    ids = [action.action_id for action in world.actions]
    moved = 0
    with transaction.atomic():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            events = list(ActionEvent.objects.filter(action__action_id__in=chunk).select_related("action"))
            deliveries: dict[int, list] = {}
            for delivery in Delivery.objects.filter(event__in=events).order_by("id"):
                deliveries.setdefault(delivery.event_id, []).append(delivery)
            changed_events, changed_deliveries = [], []
            for event in events:
                times = sorted(planned.get((event.action.action_id, event.changed_at), []))
                if not times or times[0] >= event.received_at:
                    continue
                event.received_at = times[0]
                event.delay_seconds = int((times[0] - event.changed_at).total_seconds())
                changed_events.append(event)
                for delivery, at in zip(deliveries.get(event.pk, []), times + [times[-1]] * 20, strict=False):
                    delivery.received_at = at
                    changed_deliveries.append(delivery)
            ActionEvent.objects.bulk_update(changed_events, ["received_at", "delay_seconds"], batch_size=500)
            Delivery.objects.bulk_update(changed_deliveries, ["received_at"], batch_size=500)
            moved += len(changed_events)
            for action in Action.objects.filter(action_id__in=chunk).prefetch_related("events"):
                received = [event.received_at for event in action.events.all()]
                if received:
                    action.first_received_at, action.last_received_at = min(received), max(received)
                    action.save(update_fields=["first_received_at", "last_received_at"])
            reports.refresh(Action.objects.filter(action_id__in=chunk).values_list("pk", flat=True))
        rollups.forget()  # the moved rows now belong to days the overview may have counted
        reports.forget()
    judged = judge_backdated(ActionEvent.objects.filter(action__action_id__in=ids))
    return moved, judged
