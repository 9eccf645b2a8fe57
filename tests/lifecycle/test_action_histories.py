"""Action histories: tracked -> modified -> reversed, duplicates, out-of-order arrivals and delays."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from events import processing
from events.impact.promises import is_alert_late, is_late
from events.models import Action, ActionEvent, Brand, Delivery
from tests.lifecycle.conftest import CREATED


def at(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat()


@pytest.fixture
def post(send, time_machine):
    """Send a postback for action A1 received `received` minutes after its creation."""

    def _post(received: float = 1, **params):
        time_machine.move_to(at(received), tick=False)
        response = send(**params)
        assert response.status_code == 200, response.content
        return response.delivery.outcome

    return _post


def action() -> Action:
    return Action.objects.get(action_id="A1")


def history() -> list[ActionEvent]:
    return list(ActionEvent.objects.filter(action__action_id="A1").order_by("seq"))


def test_the_first_postback_for_an_action_id_is_tracked(post):
    assert post() == "applied"
    a = action()
    assert (a.state, a.status, a.amount, a.payout, a.currency) == ("tracked", "PENDING", 100, 10, "USD")
    assert a.brand == Brand.objects.get(campaign_id="1001", name="Acme Shoes")
    assert a.creation_date == CREATED
    [event] = history()
    assert (event.kind, event.from_state, event.to_state, event.seq) == ("tracked", "", "tracked", 1)
    assert event.changes["payout"] == [None, "10.00"]
    assert not (event.superseded or event.out_of_order or event.order_uncertain or event.anomaly)


def test_status_reversed_makes_a_reversal(post):
    post()
    assert post(received=60, Status="REVERSED", Payout="0", DeltaPayout="-10.00") == "applied"
    assert (action().state, action().payout) == ("reversed", 0)
    reversal = history()[-1]
    assert (reversal.kind, reversal.from_state, reversal.to_state) == ("reversed", "tracked", "reversed")
    assert reversal.delta_payout == Decimal("-10.00")


@pytest.mark.parametrize(
    ("changed", "field", "old", "new"),
    [
        ({"Amount": "120.00"}, "amount", Decimal(100), Decimal(120)),
        ({"Payout": "12.00"}, "payout", Decimal(10), Decimal(12)),
        ({"Status": "APPROVED"}, "status", "PENDING", "APPROVED"),
        ({"LockingDate": "2026-12-31T00:00:00Z"}, "locking_date", None, "2026-12-31T00:00:00+00:00"),
        ({"EventDate": "2026-11-20T23:00:00Z"}, "event_date", "2026-11-20T22:00:00+00:00", "2026-11-20T23:00:00+00:00"),
    ],
)
def test_a_later_change_is_modified_with_its_diff(post, changed, field, old, new):
    post()
    assert post(received=30, **changed) == "applied"
    event = history()[-1]
    assert (event.kind, event.from_state, event.to_state, event.seq) == ("modified", "tracked", "modified", 2)
    assert list(event.changes) == [field]
    before, after = event.changes[field]
    if isinstance(old, Decimal):
        before, after = Decimal(before), Decimal(after)
    assert (before, after) == (old, new)
    assert action().state == "modified"


def test_a_modification_without_deltas_gets_its_deltas_computed(post):
    post()
    post(received=30, Amount="80.00", Payout="8.00")
    event = history()[-1]
    assert (event.delta_amount, event.delta_payout) == (Decimal("-20"), Decimal("-2"))


def test_the_same_postback_again_is_a_duplicate_and_changes_nothing(post):
    post()
    post(received=30, Amount="120.00")
    before = [(e.pk, e.seq, e.kind) for e in history()]
    assert post(received=31, Amount="120.00") == "duplicate"
    assert post(received=32) == "duplicate"
    assert [(e.pk, e.seq, e.kind) for e in history()] == before
    assert [e.duplicate_count for e in history()] == [1, 1]
    assert (action().amount, action().event_count) == (120, 2)
    assert Delivery.objects.filter(outcome="duplicate").count() == 2


def test_replaying_a_duplicate_delivery_does_not_count_it_twice(post):
    post()
    post(received=5)
    duplicate = Delivery.objects.get(outcome="duplicate")
    for _ in range(3):
        assert processing.replay(Delivery.objects.filter(pk=duplicate.pk)) == {"duplicate": 1}
    assert history()[0].duplicate_count == 1


def test_replaying_an_applied_delivery_leaves_it_applied_once(post):
    post()
    delivery = Delivery.objects.get()
    assert processing.replay(Delivery.objects.filter(pk=delivery.pk)) == {"applied": 1}
    assert len(history()) == 1
    assert history()[0].duplicate_count == 0


def test_a_reversal_is_terminal_and_a_later_modification_is_kept_as_superseded(post):
    post()
    post(received=60, Status="REVERSED", Payout="0", UpdateDate=iso(50))
    assert post(received=90, Status="APPROVED", Payout="15.00", UpdateDate=iso(80)) == "applied"
    a = action()
    assert (a.state, a.status, a.payout) == ("reversed", "REVERSED", 0)
    late = history()[-1]
    assert (late.kind, late.from_state, late.to_state) == ("modified", "reversed", "reversed")
    assert late.superseded
    assert not late.applied
    assert late.anomaly == "modified after the reversal (reversal is terminal)"


def test_a_modification_older_than_the_reversal_arriving_after_it_is_out_of_order(post):
    post()
    post(received=60, Status="REVERSED", Payout="0", UpdateDate=iso(50))
    post(received=90, Payout="15.00", UpdateDate=iso(20))
    late = history()[-1]
    assert (late.superseded, late.out_of_order, late.to_state) == (True, True, "reversed")
    assert action().payout == 0


def test_a_reversal_arriving_first_creates_the_action_as_reversed(post):
    assert post(received=60, Status="REVERSED", Payout="0", UpdateDate=iso(50)) == "applied"
    assert action().state == "reversed"
    [event] = history()
    assert (event.kind, event.from_state, event.to_state) == ("reversed", "", "reversed")
    assert event.out_of_order
    assert "reversed, not tracked" in event.anomaly

    assert post(received=61) == "applied"
    tracked = history()[-1]
    assert (tracked.kind, tracked.from_state, tracked.to_state) == ("tracked", "reversed", "reversed")
    assert tracked.out_of_order
    assert tracked.superseded
    a = action()
    assert (a.state, a.payout, a.amount) == ("reversed", 0, 100)  # the tracked fills in what was unknown


def test_a_modification_arriving_before_its_tracked_creates_the_action_flagged(post):
    assert post(received=40, Amount="150.00", DeltaAmount="50.00", UpdateDate=iso(30)) == "applied"
    [event] = history()
    assert (event.kind, event.to_state, event.out_of_order) == ("modified", "modified", True)
    assert "modified, not tracked" in event.anomaly
    assert action().state == "modified"

    post(received=41)
    tracked = history()[-1]
    assert (tracked.kind, tracked.to_state, tracked.out_of_order, tracked.superseded) == (
        "tracked",
        "modified",
        True,
        True,
    )
    assert (action().state, action().amount) == ("modified", 150)


def test_an_approval_with_zero_deltas_arriving_before_its_tracked_is_a_modification(post):
    approval = {"Status": "APPROVED", "DeltaAmount": "0", "DeltaPayout": "0.00", "UpdateDate": iso(600)}
    post(received=601, **approval)
    post(received=602)
    assert [(e.kind, e.to_state) for e in history()] == [("modified", "modified"), ("tracked", "modified")]
    assert (action().state, action().status) == ("modified", "APPROVED")


def test_a_tracked_postback_that_carries_its_own_update_time_is_still_tracked(post):
    post(UpdateDate=iso(0))
    assert history()[0].kind == "tracked"


def test_with_an_update_time_the_latest_change_wins_whatever_the_arrival_order(post):
    post()
    post(received=100, Amount="300.00", UpdateDate=iso(90))
    post(received=101, Amount="200.00", UpdateDate=iso(45))
    assert action().amount == 300
    older = history()[-1]
    assert (older.superseded, older.out_of_order, older.order_uncertain) == (True, True, False)
    assert action().money_changed_at == at(90)


def test_without_an_update_time_the_latest_arrival_wins_and_the_order_is_marked_uncertain(post):
    post()
    post(received=100, Amount="300.00", Status="APPROVED")
    post(received=101, Amount="200.00", Status="APPROVED")
    assert action().amount == 200
    last = history()[-1]
    assert last.applied
    assert last.order_uncertain


def test_an_explicit_event_type_wins_over_inference(post):
    post(EventType="modified")
    assert history()[0].kind == "modified"
    post(received=2, EventType="reversed", Amount="90.00")
    assert (history()[-1].kind, action().state) == ("reversed", "reversed")


def test_the_delay_of_a_tracked_postback_is_measured_from_its_creation_date(post):
    post(received=20)
    event = history()[0]
    assert event.changed_at == CREATED
    assert event.received_at == at(20)
    assert event.delay_seconds == 20 * 60
    assert (is_late(event.delay_seconds), is_alert_late(event.delay_seconds)) == (True, False)


def test_the_delay_of_a_change_is_measured_from_its_update_time(post):
    post()
    post(received=200, Amount="1.00", UpdateDate=iso(130))
    event = history()[-1]
    assert event.delay_seconds == 70 * 60
    assert (is_late(event.delay_seconds), is_alert_late(event.delay_seconds)) == (True, True)


def test_a_configured_update_time_name_measures_the_delay(post, settings):
    settings.POSTBACK_UPDATE_TIME_FIELDS = ["LastChange"]
    post()
    post(received=50, Amount="1.00", LastChange=iso(45))
    event = history()[-1]
    assert event.changed_at == at(45)
    assert event.delay_seconds == 5 * 60
    assert not is_late(event.delay_seconds)
    assert "LastChange" not in event.extra


def test_a_change_without_an_impact_side_time_has_no_delay(post):
    post()
    post(received=50, Amount="1.00")
    assert history()[-1].delay_seconds is None
    assert not is_late(history()[-1].delay_seconds)


def test_late_and_alert_thresholds_are_settings(post, settings):
    post(received=20)
    event = history()[0]
    assert is_late(event.delay_seconds)
    assert ActionEvent.objects.late().count() == 1
    settings.DELAY_LATE_AFTER_MINUTES = 30
    settings.DELAY_ALERT_AFTER_MINUTES = 19
    assert not is_late(event.delay_seconds)
    assert is_alert_late(event.delay_seconds)
    assert ActionEvent.objects.late().count() == 0
    assert ActionEvent.objects.filter(delay_seconds__gt=19 * 60).count() == 1


def test_a_postback_without_campaign_goes_to_the_unknown_brand_and_a_new_name_renames_the_brand(post):
    post(CampaignId=None, CampaignName=None)
    assert action().brand.campaign_id == Brand.UNKNOWN
    post(ActionId="A2", CampaignName="Acme Shoes & Co")
    assert Brand.objects.get(campaign_id="1001").name == "Acme Shoes & Co"


def test_unknown_parameters_are_kept_in_the_events_extra(post):
    post(my_tag="black-friday")
    assert history()[0].extra == {"my_tag": "black-friday"}


def test_a_modification_older_than_the_tracked_values_does_not_override_them(post):
    # The tracked postback already carries the latest values (its UpdateDate is an hour after creation);
    # a modification from before that, delivered late, is kept as superseded.
    post(received=61, EventType="tracked", UpdateDate=iso(60), Amount="80.00", Payout="8.00")
    assert post(received=62, Amount="90.00", Payout="9.00", DeltaPayout="-1.00", UpdateDate=iso(30)) == "applied"
    a = action()
    assert (a.state, a.amount, a.payout) == ("modified", 80, 8)
    late = history()[1]
    assert (late.kind, late.superseded, late.applied, late.out_of_order) == ("modified", True, False, True)


@pytest.mark.parametrize("order", ["MR", "RM"])
def test_a_reversal_without_amount_keeps_the_newest_modifications_amount_whatever_the_order(post, order):
    post()
    changes = {
        "M": {"Amount": "150.00", "DeltaAmount": "50.00", "UpdateDate": iso(30)},
        "R": {"Status": "REVERSED", "Amount": "{Amount}", "Payout": "0", "UpdateDate": iso(60)},
    }
    for n, name in enumerate(order):
        post(received=100 + n, **changes[name])
    a = action()
    assert (a.state, a.amount, a.payout) == ("reversed", 150, 0)
