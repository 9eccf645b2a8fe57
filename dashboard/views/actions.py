"""An action's page: its history newest first, each event's field-by-field diff, and the deliveries
behind each event (query string or pretty-printed body, credentials redacted when stored)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from events.intake.credentials import TOKEN_PARAMETER
from events.intake.redaction import REDACTED
from events.models import MONEY_FIELDS, Action, Delivery

from .. import money
from ..access import REPLAY, can
from ..labels import field_label
from ..templatetags.dashboard import when_text
from ..timezones import display_zone

DATE_FIELDS = {"event_date", "creation_date", "locking_date", "referring_date", "cleared_date"}


@login_required
@require_GET
def action_detail(request, action_id):
    action = get_object_or_404(Action.objects.select_related("brand"), action_id=action_id)
    events = list(action.events.order_by("seq"))
    deliveries = list(Delivery.objects.for_action(action, [e.pk for e in events]).order_by("received_at", "id"))
    by_event: dict[int, list] = {}
    unattached = []
    for delivery in deliveries:
        delivery.pretty = pretty_payload(delivery)
        if delivery.event_id:
            by_event.setdefault(delivery.event_id, []).append(delivery)
        else:
            unattached.append(delivery)
    timeline = []
    for event in events:
        attached = by_event.get(event.pk, [])
        timeline.append(
            {
                "event": event,
                "diff": diff_rows(event.changes, event.currency or action.currency),
                "deliveries": attached,
                "duplicates": [d for d in attached if d.pk != event.delivery_id],
            }
        )
    timeline.reverse()  # newest first, like every other list
    return render(
        request,
        "dashboard/action.html",
        {"action": action, "timeline": timeline, "unattached": unattached, "can_replay": can(request.user, REPLAY)},
    )


def diff_rows(changes: dict, currency: str) -> list[dict]:
    rows = []
    for name, pair in (changes or {}).items():
        old, new = [*pair, None, None][:2] if isinstance(pair, list) else (None, pair)
        rows.append({"field": field_label(name), "old": _show(name, old, currency), "new": _show(name, new, currency)})
    return rows


def _show(name: str, value, currency: str) -> str:
    if value in (None, ""):
        return "—"
    if name in MONEY_FIELDS:
        try:
            return money.format_money(Decimal(str(value)), currency)
        except ArithmeticError:
            return str(value)
    if name in DATE_FIELDS:
        try:
            return when_text(datetime.fromisoformat(str(value))) + " " + display_zone().key
        except ValueError:
            return str(value)
    return str(value)


def pretty_payload(delivery) -> dict:
    """Query parameters as pairs, a JSON body indented; credentials were redacted when stored."""
    pairs = [
        (name, REDACTED if name == TOKEN_PARAMETER else value)
        for name, value in parse_qsl(delivery.query_string, keep_blank_values=True)
    ]
    body = delivery.body_text
    if body.strip():
        with contextlib.suppress(ValueError, RecursionError):
            body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    headers = sorted((delivery.headers or {}).items()) if isinstance(delivery.headers, dict) else []
    return {"pairs": pairs, "body": body, "headers": headers}
