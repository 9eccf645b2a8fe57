"""ActionUpdates records from impact.com's API: the same reversal words as postbacks."""

from __future__ import annotations

import pytest

from events.alerts.reconcile import change_from_update

RECORD = {"ActionId": "A1", "CampaignId": "1001", "UpdateDate": "2026-11-21T10:00:00-08:00"}


@pytest.mark.parametrize(("state", "kind"), [("REVERSED", "reversed"), ("REJECTED", "reversed"),
                                             ("declined", "reversed"), ("APPROVED", "modified"),
                                             ("LOCKED", "modified")])  # fmt: skip
def test_an_update_is_a_reversal_when_its_state_is_a_reversal_word(state, kind):
    change = change_from_update({**RECORD, "State": state})
    assert (change.kind, change.state) == (kind, state.upper())


@pytest.mark.parametrize(
    ("money", "kind"),
    [
        ({"Amount": "17.29", "Payout": "0.26", "DeltaAmount": "17.29", "DeltaPayout": "0.26"}, "tracked"),
        ({"Amount": "17.29", "Payout": "0.26", "DeltaAmount": "-2.71", "DeltaPayout": "-0.04"}, "modified"),
        ({"Amount": "17.29", "Payout": "0.26", "DeltaAmount": "0", "DeltaPayout": "0"}, "modified"),
        ({"Amount": "17.29", "Payout": "0.26"}, "modified"),
        # Later than the action's creation: a change after it, whatever its deltas say.
        (
            {"Amount": "17.29", "DeltaAmount": "17.29", "CreationDate": "2026-11-21T09:00:00-08:00"},
            "modified",
        ),
    ],
)
def test_the_update_that_creates_an_action_is_its_tracking(money, kind):
    """impact.com's ActionUpdates sample: state PENDING, "Action comes in DEFAULT", whole values as deltas."""
    change = change_from_update({**RECORD, "State": "PENDING", **money})
    assert change.kind == kind
