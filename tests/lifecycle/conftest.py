"""What the lifecycle tests share: the template postback's creation time, and posting a change
of it a given number of minutes later through the real endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

CREATED = datetime(2026, 11, 20, 22, 3, 11, tzinfo=UTC)  # CreationDate in postback_params, in UTC


def update(minutes: float) -> str:
    """An UpdateDate `minutes` after the creation, as impact.com writes it."""
    return (CREATED + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def post(send, time_machine):
    """`post(received_minutes, **params)`: one postback received that long after the creation,
    applied (anything else fails the test)."""

    def _post(received_minutes: float = 1, **params):
        time_machine.move_to(CREATED + timedelta(minutes=received_minutes), tick=False)
        response = send(**params)
        assert response.status_code == 200, response.content
        assert response.delivery.outcome == "applied", response.delivery.reason

    return _post
