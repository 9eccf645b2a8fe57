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
