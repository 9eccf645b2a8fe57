"""Who gets in: refusal throttle per address, the optional allow-list, X-Forwarded-For only from
trusted proxies. Everything through the real endpoint."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from events.models import AllowedNetwork, Delivery, RateWindow, RefusalCounter, RefusedAttempt
from tests.conftest import ENDPOINT, postback_params, processed

ATTACKER = "203.0.113.9"
IMPACT = "198.51.100.7"
PROXY = "10.0.0.2"


@pytest.fixture(autouse=True)
def _fresh_throttle(db, settings):
    """The throttle counts in fixed one-minute windows: the clock stands still a second into one."""
    settings.POSTBACK_REFUSAL_THROTTLE_RATE = "5/m"
    settings.TRUSTED_PROXIES = []
    with time_machine.travel(timezone.now().replace(second=1, microsecond=0), tick=False):
        yield


@pytest.fixture
def hit(client, credential):
    """A postback from an address; `secret=None` sends a wrong credential, `secret=...` sends one."""

    def _hit(remote_addr, *, valid=True, forwarded_for=None, action_id="A1"):
        headers = {credential.header_name: credential.secret if valid else "wrong-secret-0123456789"}
        if forwarded_for is not None:
            headers["X-Forwarded-For"] = forwarded_for
        query = urlencode(postback_params(action_id=action_id))
        return processed(client.get(f"{ENDPOINT}?{query}", headers=headers, REMOTE_ADDR=remote_addr))

    return _hit


def refused_count(reason):
    counter = RefusalCounter.objects.filter(reason=reason).first()
    return counter.count if counter else 0


# --- throttle ------------------------------------------------------------------------


def test_refusals_past_the_rate_are_answered_429_with_retry_after(hit):
    for _ in range(5):
        assert hit(ATTACKER, valid=False).status_code == 401
    response = hit(ATTACKER, valid=False)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert RefusedAttempt.objects.filter(remote_addr=ATTACKER).count() == 5
    assert refused_count("throttled") == 1
    assert refused_count("invalid_credential") == 5


def test_a_valid_credential_is_never_throttled_even_from_a_throttled_address(hit):
    for _ in range(20):
        hit(ATTACKER, valid=False)
    assert hit(ATTACKER, valid=False).status_code == 429
    for n in range(10):
        response = hit(ATTACKER, action_id=f"OK{n}")
        assert response.status_code == 200, response.content
        assert response.delivery.outcome == "applied"
    assert Delivery.objects.filter(remote_addr=ATTACKER).count() == 10


def test_the_throttle_is_per_address(hit):
    for _ in range(6):
        hit(ATTACKER, valid=False)
    assert hit(ATTACKER, valid=False).status_code == 429
    assert hit("203.0.113.10", valid=False).status_code == 401


def test_the_throttle_lifts_once_the_window_has_passed(hit):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(6):
            hit(ATTACKER, valid=False)
        assert hit(ATTACKER, valid=False).status_code == 429
        traveller.shift(timedelta(seconds=61))
        assert hit(ATTACKER, valid=False).status_code == 401


def test_a_failing_throttle_store_still_answers_401_logs_and_counts_it(hit, caplog):
    with connection.cursor() as cursor:  # the store's table is gone: every statement on it fails
        cursor.execute("ALTER TABLE events_ratewindow RENAME TO events_ratewindow_away")
    codes = [hit(ATTACKER, valid=False).status_code for _ in range(7)]
    assert codes == [401] * 7
    assert refused_count("invalid_credential") == 7
    assert refused_count("throttle_failed") == 7
    assert RefusedAttempt.objects.count() == 7
    assert "refusal throttle unavailable" in caplog.text


def test_throttle_windows_that_have_ended_are_deleted(hit):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        hit(ATTACKER, valid=False)
        hit("203.0.113.10", valid=False)
        assert RateWindow.objects.count() == 2
        traveller.shift(timedelta(minutes=2))
        hit(ATTACKER, valid=False)
        assert list(RateWindow.objects.values_list("key", "hits")) == [(ATTACKER, 1)]


def test_an_empty_rate_switches_the_throttle_off(hit, settings):
    settings.POSTBACK_REFUSAL_THROTTLE_RATE = ""
    assert all(hit(ATTACKER, valid=False).status_code == 401 for _ in range(12))


def test_a_spoofed_forwarded_for_does_not_change_the_throttle_key(hit):
    """From an untrusted peer, a new X-Forwarded-For on every try does not escape the throttle."""
    codes = [hit(ATTACKER, valid=False, forwarded_for=f"192.0.2.{n}").status_code for n in range(8)]
    assert codes == [401] * 5 + [429] * 3
    assert set(RefusedAttempt.objects.values_list("remote_addr", flat=True)) == {ATTACKER}


def test_behind_a_trusted_proxy_each_client_has_its_own_throttle(hit, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for _ in range(6):
        hit(PROXY, valid=False, forwarded_for=ATTACKER)
    assert hit(PROXY, valid=False, forwarded_for=ATTACKER).status_code == 429
    assert hit(PROXY, valid=False, forwarded_for="203.0.113.77").status_code == 401
    assert hit(PROXY, forwarded_for=ATTACKER).status_code == 200


# --- allow-list ----------------------------------------------------------------------


def test_an_empty_allow_list_lets_every_address_send(hit):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24", active=False)
    assert hit(ATTACKER).status_code == 200


def test_an_address_outside_the_allow_list_is_refused_403_and_recorded(hit):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24", label="impact.com")
    response = hit(ATTACKER)
    assert response.status_code == 403
    assert response.json()["reason"] == "address_not_allowed"
    assert not Delivery.objects.exists()
    attempt = RefusedAttempt.objects.get()
    assert (attempt.reason, attempt.remote_addr) == ("address_not_allowed", ATTACKER)
    assert refused_count("address_not_allowed") == 1


def test_an_address_inside_the_allow_list_is_let_in(hit):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    AllowedNetwork.objects.create(cidr="2001:db8::/32")
    assert hit(IMPACT).status_code == 200
    assert hit("2001:db8::1", action_id="A2").status_code == 200
    assert hit("::ffff:198.51.100.8", action_id="A3").status_code == 200


def test_a_spoofed_forwarded_for_does_not_pass_the_allow_list(hit):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    response = hit(ATTACKER, forwarded_for=IMPACT)
    assert response.status_code == 403
    assert RefusedAttempt.objects.get().remote_addr == ATTACKER


def test_refusals_by_the_allow_list_are_throttled_too(hit):
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    codes = [hit(ATTACKER).status_code for _ in range(7)]
    assert codes == [403] * 5 + [429] * 2


# --- X-Forwarded-For -----------------------------------------------------------------


def test_an_untrusted_peer_is_stored_as_it_is_whatever_it_forwards(hit):
    assert hit(ATTACKER, forwarded_for=IMPACT).status_code == 200
    assert Delivery.objects.get().remote_addr == ATTACKER


def test_a_trusted_proxy_forwards_the_client_address(hit, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    assert hit(PROXY, forwarded_for=IMPACT).status_code == 200
    assert Delivery.objects.get().remote_addr == IMPACT


def test_a_client_cannot_prepend_an_address_through_a_trusted_proxy(hit, settings):
    """The proxy appends the real peer: the client's own first entry is ignored."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    AllowedNetwork.objects.create(cidr="198.51.100.0/24")
    response = hit(PROXY, forwarded_for=f"{IMPACT}, {ATTACKER}")
    assert response.status_code == 403
    assert RefusedAttempt.objects.get().remote_addr == ATTACKER


def test_chained_trusted_proxies_are_skipped(hit, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "172.16.0.0/12"]
    assert hit(PROXY, forwarded_for=f"{IMPACT}, 172.16.0.5").status_code == 200
    assert Delivery.objects.get().remote_addr == IMPACT


def test_garbage_in_forwarded_for_falls_back_to_the_proxy(hit, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert hit(PROXY, forwarded_for="<script>, not-an-ip").status_code == 200
    assert Delivery.objects.get().remote_addr == PROXY


# --- admin -----------------------------------------------------------------------------


def test_admin_validates_and_normalises_networks(admin_client):
    url = "/admin/events/allowednetwork/add/"
    response = admin_client.post(url, {"cidr": "not-a-network", "label": "x", "active": "on"})
    assert response.status_code == 200
    assert "is not an IP address or a network" in response.content.decode()
    response = admin_client.post(url, {"cidr": "198.51.100.7/24", "label": "impact.com", "active": "on"})
    assert response.status_code == 302
    assert AllowedNetwork.objects.get().cidr == "198.51.100.0/24"
