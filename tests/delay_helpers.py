"""Builders for the delay-alert tests: postbacks sent at a chosen time through the real endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from events.alerts import reconcile
from events.models import ImpactAccount

# The CreationDate of conftest.postback_params: 2026-11-20T14:03:11-08:00.
T0 = datetime(2026, 11, 20, 22, 3, 11, tzinfo=UTC)
MIN = timedelta(minutes=1)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def send_at(send, moment: datetime, **params):
    """Send one postback through the real endpoint with the clock at `moment`."""
    with time_machine.travel(moment, tick=False):
        response = send(**params)
    assert response.status_code == 200, response.content
    assert response.delivery.outcome == "applied", response.delivery.reason
    return response


def tracked(send, action_id: str, changed_at: datetime, received_at: datetime, **params):
    return send_at(send, received_at, action_id=action_id, CreationDate=iso(changed_at), **params)


def reconcile_at(impact, moment: datetime):
    """One reconciliation with impact.com's API (the local fake `impact`) with the clock at `moment`."""
    with time_machine.travel(moment, tick=False):
        account = ImpactAccount.objects.get(pk=impact.account.pk)
        return reconcile.reconcile(account, reconcile.client_for(account, sleep=lambda s: None))
