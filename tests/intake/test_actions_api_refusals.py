"""`GET /api/actions/`, the other door a credential opens: a wrong one is refused the endpoint's way
(throttled per address, recorded, counted, never logged), and staff sessions still get in."""

from __future__ import annotations

import logging

import pytest
import time_machine
from django.db import OperationalError
from django.utils import timezone

from events.intake import actions_api
from events.models import AllowedNetwork, RefusalCounter, RefusedAttempt

API = "/api/actions/?ids=A1"
ATTACKER = "203.0.113.9"


@pytest.fixture(autouse=True)
def _throttle(db, settings):
    settings.POSTBACK_REFUSAL_THROTTLE_RATE = "3/m"
    settings.TRUSTED_PROXIES = []
    with time_machine.travel(timezone.now().replace(second=1, microsecond=0), tick=False):
        yield


def counted(reason: str) -> int:
    counter = RefusalCounter.objects.filter(reason=reason).first()
    return counter.count if counter else 0


def test_a_wrong_credential_is_recorded_counted_and_throttled(client, credential, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = {credential.header_name: "wrong-credential-0123456789"}
    responses = [client.get(API, headers=wrong, REMOTE_ADDR=ATTACKER) for _ in range(5)]
    assert [r.status_code for r in responses] == [401, 401, 401, 429, 429]
    assert responses[0].json()["reason"] == "invalid_credential"
    assert int(responses[3]["Retry-After"]) >= 1
    attempts = RefusedAttempt.objects.all()
    assert [(a.path, a.remote_addr, a.reason) for a in attempts] == [
        ("/api/actions/", ATTACKER, "invalid_credential")
    ] * 3
    assert (counted("invalid_credential"), counted("throttled")) == (3, 2)
    assert "wrong-credential-0123456789" not in caplog.text


def test_a_wrong_token_parameter_is_refused_the_same_way_and_not_logged(client, credential, caplog):
    caplog.set_level(logging.DEBUG)
    response = client.get(API + "&token=wrong-token-0123456789", REMOTE_ADDR=ATTACKER)
    assert response.status_code == 401
    assert RefusedAttempt.objects.get().reason == "invalid_credential"
    assert "wrong-token-0123456789" not in caplog.text


def test_the_right_credential_still_reads_the_actions(client, credential):
    response = client.get(API, headers={credential.header_name: credential.secret})
    assert response.status_code == 200 and response.json() == {"actions": [], "missing": ["A1"], "pending": 0}
    assert not RefusedAttempt.objects.exists()


def test_staff_without_a_credential_get_in_even_from_outside_the_allow_list(staff_client, credential):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    assert staff_client.get(API, REMOTE_ADDR=ATTACKER).status_code == 200
    assert not RefusedAttempt.objects.exists()


def test_a_credential_from_outside_the_allow_list_is_refused_403_and_recorded(client, credential):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    response = client.get(API, headers={credential.header_name: credential.secret}, REMOTE_ADDR=ATTACKER)
    assert response.status_code == 403
    assert RefusedAttempt.objects.get().reason == "address_not_allowed"


def test_no_credential_and_no_session_is_401_like_any_anonymous_visit(client, credential):
    assert client.get(API).status_code == 401
    assert not RefusedAttempt.objects.exists()


def test_a_database_error_answers_503_with_retry_after_not_500(client, credential, send, monkeypatch, settings):
    settings.RETRY_AFTER_SECONDS = 7

    def locked(*args, **kwargs):
        raise OperationalError("database table is locked")

    monkeypatch.setattr(actions_api, "action_state", locked)
    send()  # A1, applied
    response = client.get(API, headers={credential.header_name: credential.secret})
    assert (response.status_code, response["Retry-After"], response.json()["error"]) == (503, "7", "unavailable")
