"""A page whose database fails answers 503 with Retry-After, never Django's 500."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, OperationalError

from dashboard.views import deliveries


def failing(error):
    def query(*args, **kwargs):
        raise error

    return query


def test_a_page_whose_database_is_locked_answers_503_and_says_so(staff_client, monkeypatch, settings):
    settings.RETRY_AFTER_SECONDS = 9
    monkeypatch.setattr(deliveries, "_log", failing(OperationalError("database is locked")))
    response = staff_client.get("/deliveries/")
    assert (response.status_code, response["Retry-After"]) == (503, "9")
    assert "Unavailable for a moment" in response.content.decode()


def test_a_bug_that_reaches_the_database_is_still_a_500(staff_client, monkeypatch):
    monkeypatch.setattr(deliveries, "_log", failing(IntegrityError("duplicate key")))
    staff_client.raise_request_exception = True
    with pytest.raises(IntegrityError):
        staff_client.get("/deliveries/")
