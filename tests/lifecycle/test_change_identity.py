"""Which API-recorded entry a postback reports (`rules.reports`), decided on the postback alone:
by impact-side time, or without one by the values it carries."""

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
        # With an update time, the time identifies the change (within a second), unless a value differs
        # (two changes at one time); a tracking whatever its values (the API's are today's).
        ({"UpdateDate": UPDATED.isoformat()}, MODIFIED, True),
        ({"UpdateDate": (UPDATED + timedelta(seconds=1)).isoformat(), "Status": None, "Amount": None}, MODIFIED, True),
        ({"UpdateDate": (UPDATED + timedelta(seconds=1)).isoformat(), "Amount": "70"}, MODIFIED, False),
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
    """Two changes at one update time (the tie-break of their money): each postback joins its own."""
    first = Entry("modified", UPDATED, seq=2)
    second = Entry("modified", UPDATED, amount=Decimal("60"), seq=3)
    assert rules.reported_change(postback(UpdateDate=UPDATED.isoformat(), Amount="60"), [first, second]) is second
    assert rules.reported_change(postback(UpdateDate=UPDATED.isoformat()), [first, second]) is first
    assert rules.reported_change(postback(UpdateDate=UPDATED.isoformat(), Amount="50"), [second, first]) is None
