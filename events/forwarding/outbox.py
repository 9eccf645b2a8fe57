"""The outbox: a message per change, per endpoint that subscribed to it, written in the processed
batch's transaction (never a change without its messages, never a message without its change).

A change is a history entry this batch wrote whose values became the action's (`applied`): not a
duplicate (no new entry), not a replay of the delivery that wrote it (written before), not a
superseded entry (a late modification after a newer one or after the reversal: `applied` False,
`superseded` True; it changes nothing the action shows).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from events.impact import Lifecycle
from events.models import ActionEvent, Brand, Endpoint, Message, MessageType

# A modification that only moves these is a status change.
STATUS_FIELDS = {"status", "status_detail"}


def is_change(result) -> bool:
    event = result.event
    return result.new and event.applied and not event.superseded


def kind_of(event: ActionEvent) -> str:
    """tracked, modified, reversed or status_changed (what endpoints subscribe to)."""
    if event.kind == Lifecycle.MODIFIED and event.changes and set(event.changes) <= STATUS_FIELDS:
        return "status_changed"
    return event.kind


def new_msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _json(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def body(event: ActionEvent, action: dict, brand: Brand, now: datetime) -> str:
    """The message body: what happened to the action, and the action as it left it."""
    kind = kind_of(event)
    data = {
        "action": {
            "id": event.action.action_id,
            "brand": {"campaign_id": brand.campaign_id, "name": brand.name},
            "state": action["state"],
            "status": action["status"],
            "status_detail": action["status_detail"],
            "amount": _json(action["amount"]),
            "payout": _json(action["payout"]),
            "currency": action["currency"],
            "dates": {
                name: _json(action[f"{name}_date"]) for name in ("event", "creation", "locking", "referring", "cleared")
            },
            "sub_ids": [action["sub_id1"], action["sub_id2"], action["sub_id3"]],
            "order_id": action["oid"],
        },
        "event": {
            "kind": kind,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "changes": event.changes,
            "changed_at": _json(event.changed_at),
            "received_at": _json(event.received_at),
            "sequence": event.seq,
        },
    }
    return json.dumps(
        {"type": f"action.{kind}", "timestamp": now.isoformat(), "data": data}, separators=(",", ":"), default=_json
    )


def test_body(endpoint: Endpoint, now: datetime) -> str:
    data = {"endpoint": endpoint.url, "message": "A test message from impact.com postbacks: this endpoint works."}
    return json.dumps({"type": MessageType.TEST.value, "timestamp": now.isoformat(), "data": data})


def write_messages(results, now: datetime | None = None) -> int:
    """Queue a message per change among `results` (lifecycle results, their events written) for each
    active endpoint that wants it. Call inside the batch's transaction."""
    changes = [r for r in results if is_change(r)]
    if not changes:
        return 0
    endpoints = list(Endpoint.objects.filter(active=True))
    if not endpoints:
        return 0
    now = now or timezone.now()
    brands = Brand.objects.in_bulk({r.event.brand_id for r in changes})
    messages = []
    for result in changes:
        event = result.event
        kind = kind_of(event)
        wanting = [e for e in endpoints if e.wants(kind, event.brand_id)]
        if not wanting:
            continue
        text = body(event, result.action, brands[event.brand_id], now)
        for endpoint in wanting:
            messages.append(
                Message(
                    endpoint=endpoint,
                    msg_id=new_msg_id(),
                    type=MessageType(f"action.{kind}"),
                    action_id=event.action_id,
                    event=event,
                    seq=event.seq,
                    body=text,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    Message.objects.bulk_create(messages)
    return len(messages)
