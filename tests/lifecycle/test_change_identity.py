"""Which API-recorded entry a postback reports (`rules.reports`), decided on the postback and on what
the history held when the entry was recorded: by impact-side time, or without one by the values it
carries; and what the entry notes when the postback's values differ from the API's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from events import impact
from events.lifecycle import rules

CREATED = datetime(2026, 11, 20, 22, 3, 11, tzinfo=UTC)
UPDATED = CREATED + timedelta(hours=2)


@dataclass
class Entry:
    """An entry recorded from the API, as `rules.reports` reads it."""

    kind: str
    changed_at: datetime
    status: str = "APPROVED"
    amount: Decimal | None = Decimal("80.00")
    payout: Decimal | None = Decimal("8.00")
    delta_amount: Decimal | None = Decimal("-20.00")
    delta_payout: Decimal | None = Decimal("-2.00")
    seq: int = 2
    postback_fingerprint: str | None = None  # set once its postback joined it
    anomaly: str = ""


def postback(**params) -> impact.Postback:
    base = {"ActionId": "A1", "CreationDate": CREATED.isoformat(), "Status": "APPROVED", "Amount": "80", "Payout": "8"}
    return impact.normalise([(k, v) for k, v in {**base, **params}.items() if v is not None])


MODIFIED = Entry("modified", UPDATED)
REVERSED = Entry("reversed", UPDATED, status="REVERSED", amount=None, payout=Decimal("0"), delta_amount=None)
PENDING_MODIFIED = Entry("modified", UPDATED, status="PENDING")
TRACKED = Entry("tracked", CREATED, status="PENDING", amount=Decimal("100"), payout=Decimal("10"), delta_amount=None)


@pytest.mark.parametrize(
    ("params", "entry", "reports"),
    [
        # With an update time, the time identifies the change (within a second), whatever the values:
        # one that differs is the postback's word against the API's, not another change.
        ({"UpdateDate": UPDATED.isoformat()}, MODIFIED, True),
        ({"UpdateDate": (UPDATED + timedelta(seconds=1)).isoformat(), "Status": None, "Amount": None}, MODIFIED, True),
        ({"UpdateDate": (UPDATED + timedelta(seconds=1)).isoformat(), "Amount": "70"}, MODIFIED, True),
        ({"UpdateDate": UPDATED.isoformat(), "Status": "LOCKED", "Amount": "80.01"}, MODIFIED, True),
        ({"UpdateDate": (UPDATED + timedelta(seconds=2)).isoformat()}, MODIFIED, False),
        ({"UpdateDate": CREATED.isoformat(), "Status": "PENDING", "Amount": "90"}, TRACKED, True),
        # Without one, the values: every value both carry must agree, and one at least.
        ({}, MODIFIED, True),
        ({"DeltaAmount": "-20.00", "DeltaPayout": "-2"}, MODIFIED, True),
        ({"Amount": "60"}, MODIFIED, False),
        ({"Status": "LOCKED"}, MODIFIED, False),
        ({"DeltaPayout": "-3"}, MODIFIED, False),
        ({"Status": None, "Amount": None, "Payout": None}, MODIFIED, False),
        # A kind the postback states is the entry's; a reversal is never reported by a postback that
        # does not say so.
        ({"Status": "REVERSED", "UpdateDate": UPDATED.isoformat()}, MODIFIED, False),
        (
            {"EventType": "reversed", "Status": "REVERSED", "Payout": "0", "UpdateDate": UPDATED.isoformat()},
            REVERSED,
            True,
        ),
        ({"Status": "REVERSED", "Amount": None, "Payout": "0"}, REVERSED, True),
        ({"Status": "REVERSED", "Amount": None, "Payout": "1"}, REVERSED, False),
        ({"Status": None, "Amount": None, "Payout": "0", "UpdateDate": UPDATED.isoformat()}, REVERSED, False),
        # A tracking's time is the CreationDate, which later postbacks carry too: the deltas of a
        # creation or the values tell it apart.
        ({"Status": "PENDING", "Amount": "100", "Payout": "10"}, TRACKED, True),
        (
            {"Status": "APPROVED", "Amount": "100", "Payout": "10", "DeltaAmount": "100", "DeltaPayout": "10"},
            TRACKED,
            True,
        ),
        ({}, TRACKED, False),
        ({"Status": "PENDING", "Amount": "100", "Payout": "10", "CreationDate": UPDATED.isoformat()}, TRACKED, False),
        ({"Status": "PENDING", "Amount": "100", "Payout": "10", "CreationDate": None}, TRACKED, False),
        ({"UpdateDate": CREATED.isoformat()}, TRACKED, True),
        # Without a time, a postback that could be the tracking (pending, no delta but the whole values)
        # does not report a modification by its values: they may be the tracking's. A partial delta, a
        # stated kind or an update time says it is the modification.
        ({"Status": "PENDING"}, PENDING_MODIFIED, False),
        (
            {"Status": "PENDING", "DeltaAmount": "0", "DeltaPayout": "0"},
            Entry("modified", UPDATED, "PENDING", delta_amount=Decimal(0), delta_payout=Decimal(0)),
            False,
        ),
        (
            {"Status": "PENDING", "DeltaAmount": "80", "DeltaPayout": "8"},
            Entry("modified", UPDATED, "PENDING", delta_amount=None, delta_payout=None),
            False,
        ),
        ({"Status": "PENDING", "DeltaAmount": "-20.00", "DeltaPayout": "-2"}, PENDING_MODIFIED, True),
        ({"Status": "PENDING", "EventType": "modified"}, PENDING_MODIFIED, True),
        ({"Status": "PENDING", "UpdateDate": UPDATED.isoformat()}, PENDING_MODIFIED, True),
    ],
)
def test_a_postback_reports_an_api_entry_by_time_or_else_by_its_values(params, entry, reports):
    assert rules.reports(postback(**params), entry) is reports


def test_of_several_entries_it_reports_the_earliest_it_matches():
    later = Entry("modified", UPDATED + timedelta(minutes=5), seq=3)
    other = Entry("modified", UPDATED - timedelta(minutes=5), amount=Decimal("60"), seq=4)
    assert rules.reported_change(postback(), [later, MODIFIED, other]) is MODIFIED
    assert rules.reported_change(postback(Amount="60"), [later, MODIFIED, other]) is other
    assert rules.reported_change(postback(Amount="50"), [later, MODIFIED, other]) is None


def test_of_entries_at_the_same_time_it_reports_the_one_with_its_values():
    """Two changes at one update time (within a second): each postback joins the one with its values;
    one with neither's, the earliest."""
    first = Entry("modified", UPDATED, seq=2)
    second = Entry("modified", UPDATED + timedelta(milliseconds=500), amount=Decimal("60"), seq=3)
    assert rules.reported_change(postback(UpdateDate=UPDATED.isoformat(), Amount="60"), [first, second]) is second
    assert rules.reported_change(postback(UpdateDate=UPDATED.isoformat()), [second, first]) is first
    assert rules.reported_change(postback(UpdateDate=UPDATED.isoformat(), Amount="50"), [second, first]) is first


def test_an_entry_its_postback_joined_is_reported_again_only_by_its_time():
    """Another postback of a joined change (same kind and update time, other bytes) reports it; one
    still awaiting comes first. Without a time a postback is known by its values only, which a later
    change may share: it never reports an entry already joined."""
    joined = Entry("modified", UPDATED, postback_fingerprint="f" * 64)
    awaiting = Entry("modified", UPDATED + timedelta(milliseconds=500), amount=Decimal("60"), seq=3)
    timed = postback(UpdateDate=UPDATED.isoformat())
    assert rules.reported_change(timed, [joined]) is joined
    assert rules.reported_change(timed, [joined, awaiting]) is awaiting
    assert rules.reported_change(postback(), [joined]) is None
    assert rules.reported_change(postback(), [joined, Entry("modified", UPDATED + timedelta(minutes=5))]).seq == 2


# --- Without a time, a postback that could be the tracking (pending, no delta but the whole values) ---

TRACKING = Entry("tracked", CREATED, status="PENDING", amount=Decimal("100"), payout=Decimal("10"), seq=1)
LATE_TRACKING = Entry("tracked", CREATED, status="PENDING", amount=Decimal("100"), payout=Decimal("10"), seq=3)
PENDING_80 = Entry("modified", UPDATED, status="PENDING", delta_amount=None, delta_payout=None, seq=2)
UNCHANGED = Entry("modified", UPDATED, "PENDING", Decimal("100"), Decimal("10"), None, None, seq=2)


@pytest.mark.parametrize(
    ("params", "entry", "history", "reports"),
    [
        # The tracking was recorded before the modification and its values are not the postback's:
        # the postback is the modification's.
        ({"Status": "PENDING"}, PENDING_80, [TRACKING], True),
        ({"Status": "PENDING", "DeltaAmount": "0", "DeltaPayout": "0"}, PENDING_80, [TRACKING], True),
        # Nothing recorded the tracking before the modification (the modification created the action,
        # or the tracking came after it): which postback came first would decide.
        ({"Status": "PENDING"}, PENDING_80, [], False),
        ({"Status": "PENDING"}, PENDING_80, [LATE_TRACKING], False),
        # The tracking's values are the postback's too: a modification that changed nothing.
        ({"Status": "PENDING", "Amount": "100", "Payout": "10"}, UNCHANGED, [TRACKING], False),
        # Its values must still be the modification's.
        ({"Status": "PENDING", "Amount": "70"}, PENDING_80, [TRACKING], False),
    ],
)
def test_an_untimed_postback_that_could_be_the_tracking_reports_a_modification_the_tracking_cannot_be(
    params, entry, history, reports
):
    assert rules.needs_history(postback(**params))
    assert rules.reports(postback(**params), entry, history) is reports


def test_a_postback_whose_values_differ_is_noted_on_the_entry():
    """The entry keeps the API's values; its anomaly says what the postback said, each postback's once,
    in one order whatever order they came in."""
    entry = Entry("modified", UPDATED, amount=Decimal("10.000000"), status="APPROVED")
    one = rules.differences(postback(UpdateDate=UPDATED.isoformat(), Amount="10.01"), entry)
    two = rules.differences(postback(UpdateDate=UPDATED.isoformat(), Amount="10", Status="LOCKED"), entry)
    assert one == "postback differs from impact.com's API: amount 10.00 → 10.01"
    assert two == "postback differs from impact.com's API: status APPROVED → LOCKED"
    assert rules.differences(postback(UpdateDate=UPDATED.isoformat(), Amount="10.00"), entry) == ""
    assert rules.differences(postback(Status="PENDING", Amount="90"), TRACKED) == ""  # the API's are today's
    base = "first postback seen for this action is modified, not tracked"
    both = rules.noted(rules.noted(base, two), one)
    assert both == rules.noted(rules.noted(base, one), two) == f"{base}; {one}; {two}"
    assert rules.noted(both, one) == both
    assert rules.noted("", "") == ""
