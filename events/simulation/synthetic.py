"""A synthetic postback sent through the real endpoint over HTTP, like impact.com's own "Test".

Secrets are stored hashed, so the test cannot borrow the active credential's secret: it
creates a dedicated "test postback" credential that expires in minutes and is switched
off as soon as the postback has been sent. The synthetic action and its deliveries can
be removed afterwards (`remove_test_action`); its ActionId starts with TEST_PREFIX.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from events.models import Action, Brand, Credential, Delivery
from events.processing import apply_now
from events.reporting import reports, rollups

from . import world
from .sender import Target

TEST_PREFIX = Brand.TEST_ACTION_PREFIX
TEST_CAMPAIGN_ID = Brand.TEST
TEST_CAMPAIGN_NAME = "Test postback (synthetic)"
TEST_CREDENTIAL_LABEL = "test postback"
CREDENTIAL_LIFETIME = timedelta(minutes=5)


@dataclass
class TestOutcome:
    action_id: str
    status: int | None = None  # HTTP status, None when the endpoint could not be reached
    answer: str = ""
    error: str = ""
    delivery: Delivery | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def synthetic_postback(now=None) -> tuple[str, dict[str, str]]:
    """One tracked action of a fake brand, filled in like impact.com's template."""
    now = (now or timezone.now()).replace(microsecond=0)
    brand = world.Brand(
        campaign_id=TEST_CAMPAIGN_ID,
        name=TEST_CAMPAIGN_NAME,
        currency="USD",
        utc_offset=0,
        trackers=(("0", "Test"),),
        commission=Decimal("0.10"),
        typical_amount=1.0,
    )
    action_id = f"{TEST_PREFIX}{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    action = world.Action(
        action_id=action_id,
        brand=brand,
        tracker=brand.trackers[0],
        event_date=now,
        creation_date=now,
        locking_date=now + timedelta(days=30),
        oid="TEST",
        sub_id1="test-postback",
    )
    change = world.Change(
        action_id=action_id,
        index=0,
        kind=world.TRACKED,
        status="PENDING",
        status_detail="Synthetic test postback",
        amount=Decimal("1.00"),
        payout=Decimal("0.10"),
        delta_amount=None,
        delta_payout=None,
        at=now,
        delivery_delay=timedelta(0),
    )
    return action_id, action.params(change)


def send_test_postback(endpoint: str, method: str = "get", header: str | None = None, timeout: float = 10.0):
    """Send one synthetic postback to `endpoint` with a fresh short-lived credential (the expired ones
    of earlier tests are deleted first: each test would otherwise leave one behind)."""
    forget_expired_credentials()
    header = header or (
        Credential.objects.usable().exclude(label=TEST_CREDENTIAL_LABEL).values_list("header_name", flat=True).first()
        or Credential._meta.get_field("header_name").default
    )
    credential, secret = Credential.create_with_secret(
        label=TEST_CREDENTIAL_LABEL, header_name=header, expires_at=timezone.now() + CREDENTIAL_LIFETIME
    )
    action_id, params = synthetic_postback()
    outcome = TestOutcome(action_id=action_id)
    target = Target(endpoint, secret, method=method, header=header)
    verb, path, body, headers = target.request(params)
    connection = target.connect(timeout)
    try:
        connection.request(verb, path, body=body, headers=headers)
        response = connection.getresponse()
        outcome.status = response.status
        outcome.answer = response.read(2000).decode("utf-8", errors="replace")
    except OSError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        connection.close()
        Credential.objects.filter(pk=credential.pk).update(active=False)
    try:
        delivery_id = json.loads(outcome.answer).get("delivery")
    except (ValueError, AttributeError):
        delivery_id = None
    if delivery_id:
        apply_now([delivery_id])  # the page shows what became of it
        outcome.delivery = Delivery.objects.filter(pk=delivery_id).select_related("event").first()
    return outcome


def forget_expired_credentials(now=None) -> int:
    """Delete the credentials made for earlier test postbacks that have expired (their deliveries stay)."""
    now = now or timezone.now()
    deleted, _ = Credential.objects.filter(label=TEST_CREDENTIAL_LABEL, expires_at__lte=now).delete()
    return deleted


def remove_test_action(action_id: str) -> int:
    """Delete a synthetic action, its events and deliveries (and the fake brand once unused)."""
    if not action_id.startswith(TEST_PREFIX):
        raise ValueError(f"{action_id!r} is not a synthetic test action")
    with transaction.atomic():
        deliveries, _ = Delivery.objects.filter(action_id=action_id).delete()
        actions, _ = Action.objects.filter(action_id=action_id).delete()
        Brand.objects.filter(campaign_id=TEST_CAMPAIGN_ID, actions__isnull=True).delete()
        rollups.forget()  # its rows may be in days the overview already counted
        reports.forget()
    return deliveries + actions
