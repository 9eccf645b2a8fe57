"""Builders for dashboard tests: histories bulk-created at any size, logged-in clients."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from tests_dashboard_common import NOW

from events.models import Action, ActionEvent, Brand, Delivery
from tests.conftest import OPERATOR_PERMISSIONS, grant


@pytest.fixture(autouse=True)
def frozen_now(time_machine):
    time_machine.move_to(NOW, tick=False)
    return NOW


@pytest.fixture
def staff_client(client, db):
    user = User.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    grant(user, *OPERATOR_PERMISSIONS)
    client.force_login(user)
    return client


@pytest.fixture
def user_client(client, db):
    user = User.objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(user)
    return client


@pytest.fixture
def make_history(db):
    """make_history(n_events, brands=3): a realistic history, bulk-created."""
    return build_history


def build_history(n_events: int, *, brands: int = 3, now: datetime = NOW, span: timedelta = timedelta(days=6)):
    """`n_events` events over `span` before `now`: each action tracked, every third modified,
    every fifth reversed; one delivery per event, some duplicates, some invalid/failed ones."""
    brand_rows = Brand.objects.bulk_create(
        [Brand(campaign_id=str(1001 + i), name=f"Brand {chr(65 + i)}") for i in range(brands)]
    )
    plan = []  # (action index, kind)
    a = 0
    while len(plan) < n_events:
        plan.append((a, "tracked"))
        if a % 3 == 0 and len(plan) < n_events:
            plan.append((a, "modified"))
        if a % 5 == 0 and len(plan) < n_events:
            plan.append((a, "reversed"))
        a += 1
    n_actions = a
    step = span / max(n_events, 1)
    actions = []
    for i in range(n_actions):
        brand = brand_rows[i % brands]
        actions.append(
            Action(
                action_id=f"{brand.campaign_id}.{i:06d}",
                brand=brand,
                state="tracked",
                status="PENDING",
                amount=Decimal("100.00"),
                payout=Decimal("10.00"),
                currency="USD",
                oid=f"ORD-{i}",
                action_tracker_id=str(7 + i % 2),
                sub_id1=f"sub{i % 4}",
                first_received_at=now - span,
                last_received_at=now - span,
            )
        )
    Action.objects.bulk_create(actions, batch_size=500)
    actions = {x.action_id: x for x in Action.objects.all()}
    ordered = sorted(actions.values(), key=lambda x: x.action_id)
    by_index = {int(x.action_id.split(".")[1]): x for x in ordered}

    events, seqs = [], {}
    for k, (i, kind) in enumerate(plan):
        action = by_index[i]
        seq = seqs[i] = seqs.get(i, 0) + 1
        received = now - span + step * k
        delay = [30, 120, 600, 1200, 4000][k % 5]
        if kind == "tracked":
            changes = {"status": [None, "PENDING"], "payout": [None, "10.000000"], "amount": [None, "100.000000"]}
            payout, delta, to_state, from_state = Decimal("10.00"), None, "tracked", ""
        elif kind == "modified":
            changes = {"payout": ["10.000000", "12.500000"], "amount": ["100.000000", "125.000000"]}
            payout, delta, to_state, from_state = Decimal("12.50"), Decimal("2.50"), "modified", "tracked"
        else:
            changes = {"status": ["PENDING", "REVERSED"], "payout": ["10.000000", "0.000000"]}
            payout, delta, to_state, from_state = Decimal("0"), Decimal("-10.00"), "reversed", "tracked"
        events.append(
            ActionEvent(
                action=action,
                brand_id=action.brand_id,
                seq=seq,
                kind=kind,
                from_state=from_state,
                to_state=to_state,
                changes=changes,
                status="REVERSED" if kind == "reversed" else "PENDING",
                amount=Decimal("100.00"),
                payout=payout,
                delta_payout=delta,
                currency="USD",
                changed_at=received - timedelta(seconds=delay),
                received_at=received,
                delay_seconds=delay,
                fingerprint=f"fp-{i}-{seq}",
                duplicate_count=1 if k % 7 == 0 else 0,
                out_of_order=k % 11 == 0,
            )
        )
    ActionEvent.objects.bulk_create(events, batch_size=500)
    created = list(ActionEvent.objects.select_related("action").order_by("id"))
    deliveries = [
        Delivery(
            received_at=e.received_at,
            method="GET",
            path="/postbacks/impact/",
            query_string=f"ActionId={e.action.action_id}&Status={e.status}&Payout={e.payout}&token=[redacted]",
            outcome="applied",
            action_id=e.action.action_id,
            event=e,
            attempts=1,
            processed_at=e.received_at,
        )
        for e in created
    ]
    deliveries += [
        Delivery(
            received_at=e.received_at + timedelta(seconds=5),
            method="GET",
            path="/postbacks/impact/",
            query_string=f"ActionId={e.action.action_id}&Status={e.status}",
            outcome="duplicate",
            action_id=e.action.action_id,
            event=e,
            attempts=1,
        )
        for e in created
        if e.duplicate_count
    ]
    deliveries += [
        Delivery(received_at=now - timedelta(hours=h + 1), method="GET", path="/postbacks/impact/",
                 query_string="Status=PENDING", outcome="invalid", reason="ActionId is missing", attempts=1)
        for h in range(3)
    ]  # fmt: skip
    Delivery.objects.bulk_create(deliveries, batch_size=500)
    return brand_rows


@pytest.fixture
def later(time_machine):
    """Look at the pages a minute after the postbacks arrived (periods end now, exclusive)."""

    def _later(minutes: int = 1):
        time_machine.move_to(NOW + timedelta(minutes=minutes), tick=False)

    return _later
